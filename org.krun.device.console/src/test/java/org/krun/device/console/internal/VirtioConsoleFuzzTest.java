package org.krun.device.console.internal;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.krun.api.ConsoleSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.MockDriverQueue;

/**
 * A hostile driver writes random rings and descriptors on every queue and notifies at random; the console
 * must never let an exception out of {@code queueNotify} or the host-side calls. Seeds are fixed.
 */
class VirtioConsoleFuzzTest {

    @Test
    @Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard, not a measurement
    void randomQueuesNeverBreakTheDevice() {
        for (long seed = 1; seed <= 300; seed++) {
            try {
                run(new Random(seed));
            } catch (RuntimeException | IOException e) {
                fail("seed " + seed + ": " + e, e);
            }
        }
    }

    private static void run(Random rnd) throws IOException {
        ConsoleSpec spec = rnd.nextBoolean()
                ? ConsoleSpec.pipes(new ByteArrayOutputStream(), new ByteArrayOutputStream(), rnd.nextBoolean())
                : ConsoleSpec.terminal(new ByteArrayOutputStream(), rnd.nextInt(300), rnd.nextInt(100));
        try (ConsoleHarness h = new ConsoleHarness(spec)) {
            if (rnd.nextBoolean()) {
                h.handshake();
            }
            GuestMemory mem = h.ram.memory();
            long ram = mem.size();
            for (MockDriverQueue q : h.queues) {
                int size = q.size();
                for (int i = 0; i < size; i++) {
                    long addr = switch (rnd.nextInt(4)) {
                        case 0 -> rnd.nextLong();
                        case 1 -> ram - rnd.nextInt(64);
                        default -> (long) rnd.nextInt((int) ram);
                    };
                    int len = switch (rnd.nextInt(4)) {
                        case 0 -> rnd.nextInt();
                        case 1 -> 0;
                        default -> rnd.nextInt(256);
                    };
                    q.writeDescriptor(i, addr, len, rnd.nextInt(8), rnd.nextInt(size + 2));
                }
                for (int i = 0; i < size; i++) {
                    mem.setShort(q.availRing() + 4 + 2L * i, (short) rnd.nextInt(size + 2));
                }
                mem.setShort(q.availRing() + 2, (short) (rnd.nextInt(10) == 0 ? rnd.nextInt(65536) : rnd.nextInt(size + 1)));
            }
            for (int step = 0; step < 40; step++) {
                switch (rnd.nextInt(8)) {
                    case 0 -> h.console.input().write(new byte[rnd.nextInt(512)]);
                    case 1 -> h.console.resize(rnd.nextInt(500), rnd.nextInt(200));
                    case 2 -> {
                        if (rnd.nextInt(4) == 0) {
                            h.console.input().close();
                        }
                    }
                    default -> h.notify(rnd.nextInt(h.console.queueCount()));
                }
            }
        }
    }
}
