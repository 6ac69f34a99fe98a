package org.krun.device.snd.internal;

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
import org.krun.api.ConsoleSpec;
import org.krun.api.SoundSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One Linux boot (krun's default root) with a sound card on the null backend: the guest's ALSA has probed the
 * card and no stream is open, so a snapshot of the VM paused in its command is taken, and a VM restored from it
 * goes on from the next line with the card still there (each line reads {@code /proc/asound/cards}).
 */
class SndSnapshotLinuxTest {
    private static final Duration BOOT = Duration.ofSeconds(300);
    private static final Pattern TICK = Pattern.compile("tick (\\d+) (.*)\n");

    @TempDir
    Path dir;

    private static String text(ByteArrayOutputStream b) {
        synchronized (b) {
            return b.toString(UTF_8);
        }
    }

    /** The first or last tick's number and what it read of /proc/asound/cards, or null. */
    private static String[] tick(ByteArrayOutputStream b, boolean first) {
        Matcher m = TICK.matcher(text(b));
        String[] t = null;
        while (m.find()) {
            t = new String[] {m.group(1), m.group(2)};
            if (first) {
                break;
            }
        }
        return t;
    }

    private static long number(ByteArrayOutputStream b) {
        String[] t = tick(b, false);
        return t == null ? -1 : Long.parseLong(t[0]);
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
        return LinuxGuest.config("/bin/sh", "-c",
                "i=0; while :; do i=$((i+1)); read c < /proc/asound/cards; echo tick $i $c; read -t 1 x; done")
                .device(SoundSpec.silent()).console(ConsoleSpec.pipes(out, err, true)).build();
    }

    @Test
    void anIdleGuestWithASoundCardIsSnapshottedAndRestored() throws Exception {
        LinuxGuest.assumeKvm();
        KrunService krun = LinuxGuest.krun(new SndFactory());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        long lastBefore;
        try (VirtualMachine vm = krun.create(config(out, err))) {
            vm.start();
            assertTrue(await(vm, BOOT, () -> number(out) >= 3), () -> "no tick 3: " + text(out) + text(err) + vm.exit());
            assertTrue(tick(out, false)[1].contains("VirtIO SoundCard"), text(out));
            vm.pause();
            vm.snapshot(dir);
            lastBefore = number(out);
            vm.kill();
        }
        ByteArrayOutputStream restoredOut = new ByteArrayOutputStream();
        try (VirtualMachine restored = krun.restore(config(restoredOut, new ByteArrayOutputStream()), dir)) {
            restored.start();
            assertTrue(await(restored, Duration.ofSeconds(120), () -> number(restoredOut) >= lastBefore + 3),
                    () -> "the restored guest stopped: " + text(restoredOut) + restored.exit());
            assertEquals(String.valueOf(lastBefore + 1), tick(restoredOut, true)[0], text(restoredOut));
            assertTrue(tick(restoredOut, false)[1].contains("VirtIO SoundCard"), text(restoredOut));
            System.out.println("SndSnapshotLinuxTest: snapshot after tick " + lastBefore + ", restored: "
                    + text(restoredOut).trim().replace('\n', ' '));
        }
    }
}
