package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Random;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.memory.TestGuestMemory;

/**
 * Random rings and descriptor tables, as a hostile driver might write them: the device side may only ever
 * answer with {@link InvalidChainException}, {@link GuestMemoryException} or {@link ShortChainException},
 * and must finish. Seeds are fixed, so a failure names a reproducible case.
 */
class VirtqueueFuzzTest {

    private static final int RAM = 64 * 1024;
    /** Bytes read or written per chain before the rest is skipped (bounds the work per chain). */
    private static final int MAX_COPY = 256 * 1024;

    @Test
    @Timeout(value = 120, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard, not a measurement
    void randomRingsOnlyEverRaiseGuestErrors() {
        for (long seed = 1; seed <= 3000; seed++) {
            try {
                run(new Random(seed));
            } catch (InvalidChainException | GuestMemoryException | ShortChainException expected) {
                // the only outcomes a guest may cause
            } catch (RuntimeException e) {
                fail("seed " + seed + ": " + e, e);
            }
        }
    }

    private static void run(Random rnd) {
        try (TestGuestMemory ram = TestGuestMemory.create(RAM)) {
            GuestMemory mem = ram.memory();
            int size = 1 << rnd.nextInt(5);
            MockDriverQueue driver = new MockDriverQueue(ram, size);
            Virtqueue queue = driver.configuredQueue(rnd.nextBoolean());

            // Garbage everywhere, then descriptors biased towards the interesting cases.
            byte[] noise = new byte[RAM];
            rnd.nextBytes(noise);
            mem.write(0, noise);
            for (int i = 0; i < size; i++) {
                driver.writeDescriptor(i, address(rnd), length(rnd), rnd.nextInt(8), rnd.nextInt(size + 2));
            }
            for (int i = 0; i < 4; i++) { // some well-formed-looking indirect tables
                long table = rnd.nextInt(RAM / 16) * 16L;
                int entries = 1 + rnd.nextInt(8);
                for (int e = 0; e < entries && table + 16L * (e + 1) <= RAM; e++) {
                    driver.writeDescriptor(table, e, address(rnd), length(rnd), rnd.nextInt(8), rnd.nextInt(entries + 1));
                }
                driver.writeDescriptor(rnd.nextInt(size), table, 16 * entries, MockDriverQueue.DESC_F_INDIRECT, 0);
            }
            for (int i = 0; i < size; i++) {
                mem.setShort(driver.availRing() + 4 + 2L * i, (short) rnd.nextInt(size + 2));
            }
            mem.setShort(driver.availRing() + 2, (short) (rnd.nextInt(8) == 0 ? rnd.nextInt(65536) : rnd.nextInt(size + 1)));

            for (int round = 0; round < 2 * size + 2; round++) {
                DescriptorChain chain;
                try {
                    chain = queue.pop(mem);
                } catch (InvalidChainException e) {
                    if (e.head() < 0) {
                        return;
                    }
                    queue.addUsed(mem, e.head(), 0);
                    continue;
                }
                if (chain == null) {
                    return;
                }
                exercise(chain, mem, rnd);
                queue.addUsed(mem, chain.head(), 0);
                queue.needsInterrupt(mem);
            }
        }
    }

    /** Reads and writes what the chain offers, each fault confined to its own attempt. */
    private static void exercise(DescriptorChain chain, GuestMemory mem, Random rnd) {
        try {
            ChainReader r = chain.reader(mem);
            byte[] buf = new byte[4096];
            while (r.remaining() > 0 && r.position() < MAX_COPY) {
                r.read(buf, 0, buf.length);
            }
            r.skip(r.remaining());
        } catch (GuestMemoryException expected) {
            // a buffer outside RAM
        }
        try {
            ChainWriter w = chain.writer(mem);
            byte[] buf = new byte[1 + rnd.nextInt(4096)];
            while (w.remaining() > 0 && w.position() < MAX_COPY) {
                w.writeSome(buf, 0, buf.length);
            }
        } catch (GuestMemoryException expected) {
            // a buffer outside RAM
        }
        // readAll buffers the whole chain: only where that stays small, or is refused as too large.
        long readable = chain.readableBytes();
        if (readable <= MAX_COPY || readable > Integer.MAX_VALUE - 8) {
            try {
                chain.reader(mem).readAll();
            } catch (GuestMemoryException | ShortChainException expected) {
                // outside RAM, or too large to buffer
            }
        }
    }

    private static long address(Random rnd) {
        return switch (rnd.nextInt(5)) {
            case 0 -> rnd.nextInt(RAM);
            case 1 -> RAM - rnd.nextInt(64);
            case 2 -> rnd.nextLong();
            case 3 -> -1L - rnd.nextInt(4096);
            default -> rnd.nextInt(RAM / 16) * 16L;
        };
    }

    private static int length(Random rnd) {
        return switch (rnd.nextInt(5)) {
            case 0 -> 0;
            case 1 -> rnd.nextInt(64);
            case 2 -> 16 * rnd.nextInt(9);
            case 3 -> -1 - rnd.nextInt(64); // about 4 GiB
            default -> rnd.nextInt();
        };
    }
}
