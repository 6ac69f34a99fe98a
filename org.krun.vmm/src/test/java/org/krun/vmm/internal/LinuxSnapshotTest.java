package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.vmm.internal.snapshot.SnapshotFile;
import org.krun.vmm.testing.LinuxGuest;

/**
 * A Linux guest snapshotted while its command prints a line a second, restored into a new VM that goes on
 * printing from where it was: the guest kernel, its timers, the console's queues and ports all continue.
 * One boot (tens of seconds on kvm-pvm), then restores that take milliseconds.
 */
class LinuxSnapshotTest {
    private static final Duration BOOT = Duration.ofSeconds(240);
    private static final Pattern TICK = Pattern.compile("tick (\\d+)\n");

    @TempDir
    Path dir;

    private static String text(ByteArrayOutputStream b) {
        synchronized (b) {
            return b.toString(UTF_8);
        }
    }

    private static long lastTick(String out) {
        Matcher m = TICK.matcher(out);
        long last = -1;
        while (m.find()) {
            last = Long.parseLong(m.group(1));
        }
        return last;
    }

    private static long firstTick(String out) {
        Matcher m = TICK.matcher(out);
        return m.find() ? Long.parseLong(m.group(1)) : -1;
    }

    private static boolean await(VirtualMachine vm, Duration timeout, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (vm.exit().isDone() || System.nanoTime() - deadline > 0) {
                return condition.getAsBoolean();
            }
            Thread.sleep(20);
        }
        return true;
    }

    private static VmConfig config(ByteArrayOutputStream out, ByteArrayOutputStream err) {
        // Only shell builtins in the loop: a fork+exec costs about a second on kvm-pvm. read -t waits on the
        // console's stdin port, which nobody writes to.
        return LinuxGuest.config("/bin/sh", "-c", "i=0; while :; do i=$((i+1)); echo tick $i; read -t 1 x; done")
                .memoryMib(256).console(ConsoleSpec.pipes(out, err, true)).build();
    }

    @Test
    void restoredLinuxGuestKeepsPrinting() throws Exception {
        LinuxGuest.assumeKvm();
        KrunService krun = LinuxGuest.krun();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        long t0 = System.nanoTime();
        VirtualMachine original = krun.create(config(out, err));
        original.start();
        assertTrue(await(original, BOOT, () -> lastTick(text(out)) >= 1), () -> "no tick: " + text(out) + text(err) + original.exit());
        long coldToFirstTick = System.nanoTime() - t0;
        assertTrue(await(original, BOOT, () -> lastTick(text(out)) >= 3), () -> "no tick 3: " + text(out));

        long p = System.nanoTime();
        original.pause();
        long pauseNanos = System.nanoTime() - p;
        long s = System.nanoTime();
        original.snapshot(dir);
        long snapshotNanos = System.nanoTime() - s;
        long lastBefore = lastTick(text(out));
        original.kill();
        original.waitFor(Duration.ofSeconds(30));

        // Two VMs from the one snapshot, at once.
        ByteArrayOutputStream[] outs = {new ByteArrayOutputStream(), new ByteArrayOutputStream()};
        ByteArrayOutputStream[] errs = {new ByteArrayOutputStream(), new ByteArrayOutputStream()};
        VirtualMachine[] restored = new VirtualMachine[2];
        long[] restoreStart = new long[2];
        long[] toFirstTick = new long[2];
        try {
            for (int i = 0; i < 2; i++) {
                long r = System.nanoTime();
                restored[i] = krun.restore(config(outs[i], errs[i]), dir);
                restored[i].start();
                restoreStart[i] = System.nanoTime() - r;
                ByteArrayOutputStream o = outs[i];
                VirtualMachine vm = restored[i];
                assertTrue(await(vm, Duration.ofSeconds(60), () -> lastTick(text(o)) >= 1),
                        () -> "restored guest printed nothing: " + text(o) + vm.exit());
                toFirstTick[i] = System.nanoTime() - r;
            }
            for (int i = 0; i < 2; i++) {
                ByteArrayOutputStream o = outs[i];
                assertTrue(await(restored[i], Duration.ofSeconds(60), () -> lastTick(text(o)) >= lastBefore + 4),
                        () -> "restored guest stopped printing: " + text(o));
            }
            String sharing = SnapshotGuestTest.ramSharing(dir.resolve(SnapshotFile.RAM_FILE));
            for (int i = 0; i < 2; i++) {
                String o = text(outs[i]);
                assertTrue(firstTick(o) == lastBefore + 1, () -> "restored guest went on at " + firstTick(o) + " after " + lastBefore + ": " + o);
                assertFalse(o.contains("tick 1\n"), o);
            }
            System.out.printf("LinuxSnapshotTest figures: cold boot start() to tick 1 %.1f s; pause %.1f ms; snapshot %.1f ms "
                    + "(%s); restore+start() %.1f ms and %.1f ms; restore to the next tick %.1f ms and %.1f ms; last tick before %d; "
                    + "restored ticks %s and %s; %s%n",
                    coldToFirstTick / 1e9, pauseNanos / 1e6, snapshotNanos / 1e6,
                    SnapshotGuestTest.allocatedKib(dir.resolve(SnapshotFile.RAM_FILE)) + " KiB of 256 MiB RAM written",
                    restoreStart[0] / 1e6, restoreStart[1] / 1e6, toFirstTick[0] / 1e6, toFirstTick[1] / 1e6, lastBefore,
                    List.of(text(outs[0]).trim().split("\n")), List.of(text(outs[1]).trim().split("\n")), sharing);
        } finally {
            for (VirtualMachine vm : restored) {
                if (vm != null) {
                    vm.close();
                }
            }
        }
    }
}
