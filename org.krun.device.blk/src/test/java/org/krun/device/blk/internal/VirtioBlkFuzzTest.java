package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.MockDriverQueue;

/**
 * A hostile driver fills the ring with random descriptors pointing at random memory, sprinkled with
 * plausible request headers (every type, sectors near the end and overflowing); the device must never let an
 * exception out of {@code queueNotify} nor pass the disk a range outside it. Seeds are fixed.
 */
class VirtioBlkFuzzTest {

    @Test
    @Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard, not a measurement
    void randomChainsNeverBreakTheDevice() {
        for (long seed = 1; seed <= 300; seed++) {
            try {
                run(new Random(seed));
            } catch (RuntimeException e) {
                fail("seed " + seed + ": " + e, e);
            }
        }
    }

    private static void run(Random rnd) {
        MemoryDisk disk = new MemoryDisk(1 << 20);
        boolean readOnly = rnd.nextInt(4) == 0;
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec().withReadOnly(readOnly))) {
            GuestMemory mem = h.ram.memory();
            long ram = mem.size();
            MockDriverQueue q = h.driver;
            int size = q.size();
            long[] headers = new long[16];
            for (int i = 0; i < headers.length; i++) {
                int type = new int[] {0, 1, 4, 8, 11, 13, 14, rnd.nextInt()}[rnd.nextInt(8)];
                long sector = switch (rnd.nextInt(4)) {
                    case 0 -> rnd.nextLong();
                    case 1 -> 2048 - rnd.nextInt(8);
                    default -> rnd.nextInt(2048);
                };
                headers[i] = q.writeBuffer(concat(BlkRequests.header(type, sector),
                        BlkRequests.ranges(sector, rnd.nextInt(64), rnd.nextInt(4))));
            }
            for (int i = 0; i < size; i++) {
                long addr = switch (rnd.nextInt(5)) {
                    case 0 -> rnd.nextLong();
                    case 1 -> ram - rnd.nextInt(64);
                    case 2 -> headers[rnd.nextInt(headers.length)];
                    default -> (long) rnd.nextInt((int) ram - 4096);
                };
                int len = switch (rnd.nextInt(5)) {
                    case 0 -> rnd.nextInt();
                    case 1 -> 0;
                    case 2 -> 16 + 16 * rnd.nextInt(3);
                    case 3 -> 512 * rnd.nextInt(4) + rnd.nextInt(2);
                    default -> rnd.nextInt(256);
                };
                q.writeDescriptor(i, addr, len, rnd.nextInt(8), rnd.nextInt(size + 2));
            }
            for (int i = 0; i < size; i++) {
                mem.setShort(q.availRing() + 4 + 2L * i, (short) rnd.nextInt(size + 2));
            }
            for (int step = 0; step < 4; step++) {
                mem.setShort(q.availRing() + 2,
                        (short) (rnd.nextInt(10) == 0 ? rnd.nextInt(65536) : q.availIndex() + rnd.nextInt(size / 4)));
                h.kick();
            }
        }
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
