package org.krun.device.virtiofs.internal;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.KrunException;
import org.krun.api.VirtualMachine;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One Linux boot with its root on virtio-fs: the guest holds inodes and open files of its root, which a
 * snapshot cannot carry, so pausing and snapshotting it is refused with one line naming the device and why;
 * the VM resumes and goes on as if nothing happened.
 */
class VirtioFsSnapshotLinuxTest {
    private static final Duration BOOT = Duration.ofSeconds(300);
    private static final Pattern TICK = Pattern.compile("tick (\\d+)\n");

    @TempDir
    Path tmp;

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isSymbolicLink(p)) {
                    Files.createSymbolicLink(target, Files.readSymbolicLink(p));
                } else if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target, StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
    }

    private static long lastTick(ByteArrayOutputStream b) {
        String out;
        synchronized (b) {
            out = b.toString(UTF_8);
        }
        Matcher m = TICK.matcher(out);
        long last = -1;
        while (m.find()) {
            last = Long.parseLong(m.group(1));
        }
        return last;
    }

    private static boolean await(VirtualMachine vm, Duration timeout, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (vm.exit().isDone() || System.nanoTime() - deadline > 0) {
                return condition.getAsBoolean();
            }
            Thread.sleep(50);
        }
        return true;
    }

    @Test
    void aGuestWithItsRootOnVirtioFsIsRefusedASnapshotWithOneLineAndGoesOn() throws Exception {
        LinuxGuest.assumeKvm();
        Path root = tmp.resolve("root");
        copyTree(LinuxGuest.rootfs().toRealPath(), root);
        KrunService krun = LinuxGuest.krun(new FsFactory());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        try (VirtualMachine vm = krun.create(LinuxGuest.config("/bin/sh", "-c",
                "i=0; while :; do i=$((i+1)); echo tick $i; read -t 1 x; done")
                .root(root).console(ConsoleSpec.pipes(out, err, true)).build())) {
            vm.start();
            assertTrue(await(vm, BOOT, () -> lastTick(out) >= 2), () -> "no tick: " + out.toString(UTF_8) + err.toString(UTF_8));
            vm.pause();
            KrunException e = assertThrows(KrunException.class, () -> vm.snapshot(tmp.resolve("snap")));
            String message = e.getMessage();
            System.out.println("VirtioFsSnapshotLinuxTest refusal: " + message);
            assertFalse(message.contains("\n"), message);
            assertTrue(message.matches("cannot snapshot VM \\S+: virtio-fs /dev/root: the guest holds \\d+ inodes, \\d+ open files"
                    + " and \\d+ lock owners \\(host descriptors cannot go into a snapshot\\)"), message);
            assertFalse(Files.exists(tmp.resolve("snap").resolve("state")), "no state written");
            long before = lastTick(out);
            vm.resume();
            assertTrue(await(vm, Duration.ofSeconds(60), () -> lastTick(out) >= before + 2),
                    () -> "the resumed guest stopped: " + out.toString(UTF_8));
            vm.kill();
        }
    }
}
