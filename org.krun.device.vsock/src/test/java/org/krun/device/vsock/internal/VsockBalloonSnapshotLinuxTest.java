package org.krun.device.vsock.internal;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.BalloonSpec;
import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VsockSpec;
import org.krun.device.balloon.internal.BalloonFactory;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One Linux boot with vsock (TSI on, as `krun run` has it without a NIC) and a balloon with free page
 * reporting: with no socket open, the guest's vsock and balloon are idle, so a snapshot of the VM paused in
 * its command is taken, and a VM restored from it goes on from the next line.
 */
class VsockBalloonSnapshotLinuxTest {
    private static final Duration BOOT = Duration.ofSeconds(300);
    private static final Pattern TICK = Pattern.compile("tick (\\d+)\n");

    @TempDir
    Path dir;

    private static String text(ByteArrayOutputStream b) {
        synchronized (b) {
            return b.toString(UTF_8);
        }
    }

    private static long tick(ByteArrayOutputStream b, boolean first) {
        Matcher m = TICK.matcher(text(b));
        long t = -1;
        while (m.find()) {
            t = Long.parseLong(m.group(1));
            if (first) {
                break;
            }
        }
        return t;
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

    private static VmConfig config(ByteArrayOutputStream out, ByteArrayOutputStream err) {
        return LinuxGuest.config("/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; read -t 1 x; done")
                .device(VsockSpec.create().withTsi(VsockSpec.Tsi.INET)).device(BalloonSpec.withFreePageReporting())
                .console(ConsoleSpec.pipes(out, err, true)).build();
    }

    @Test
    void anIdleGuestWithVsockAndABalloonIsSnapshottedAndRestored() throws Exception {
        LinuxGuest.assumeKvm();
        KrunService krun = LinuxGuest.krun(new VsockFactory(), new BalloonFactory());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        long lastBefore;
        try (VirtualMachine vm = krun.create(config(out, err))) {
            vm.start();
            assertTrue(await(vm, BOOT, () -> tick(out, false) >= 3), () -> "no tick 3: " + text(out) + text(err) + vm.exit());
            vm.pause();
            vm.snapshot(dir);
            lastBefore = tick(out, false);
            vm.kill();
        }
        ByteArrayOutputStream restoredOut = new ByteArrayOutputStream();
        try (VirtualMachine restored = krun.restore(config(restoredOut, new ByteArrayOutputStream()), dir)) {
            restored.start();
            assertTrue(await(restored, Duration.ofSeconds(60), () -> tick(restoredOut, false) >= lastBefore + 3),
                    () -> "the restored guest stopped: " + text(restoredOut) + restored.exit());
            assertEquals(lastBefore + 1, tick(restoredOut, true), text(restoredOut));
            System.out.println("VsockBalloonSnapshotLinuxTest: snapshot after tick " + lastBefore + ", restored: "
                    + text(restoredOut).trim().replace('\n', ' '));
        }
    }
}
