package org.krun.device.console.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class InputPipeTest {

    private final AtomicInteger signals = new AtomicInteger();
    private final InputPipe pipe = new InputPipe(signals::incrementAndGet);

    @Test
    void bytesComeOutInOrderAcrossTheBufferWrap() throws IOException {
        byte[] first = pattern(60_000, 1);
        byte[] second = pattern(50_000, 7);
        pipe.write(first);
        assertArrayEquals(java.util.Arrays.copyOf(first, 59_990), pipe.take(59_990));
        pipe.write(second); // ten bytes still wait at the end of the ring: this write wraps around it

        assertEquals(50_010, pipe.available());
        assertArrayEquals(java.util.Arrays.copyOfRange(first, 59_990, 60_000), pipe.take(10));
        byte[] a = pipe.take(30_000);
        byte[] b = pipe.take(100_000);
        assertEquals(20_000, b.length);
        byte[] both = new byte[50_000];
        System.arraycopy(a, 0, both, 0, a.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        assertArrayEquals(second, both);
        assertTrue(signals.get() >= 2);
    }

    @Test
    void anIdlePipeHoldsNoBufferAndAnEmptiedOneGivesItBack() throws IOException {
        assertFalse(pipe.holdsBuffer(), "no input yet: no 64 KiB per VM");
        pipe.write(new byte[] {1, 2, 3});
        assertTrue(pipe.holdsBuffer());
        assertEquals(2, pipe.take(2).length);
        assertTrue(pipe.holdsBuffer(), "a byte still waits");
        assertArrayEquals(new byte[] {3}, pipe.take(5));
        assertFalse(pipe.holdsBuffer(), "drained");
        pipe.write(new byte[] {4});
        pipe.discard();
        assertFalse(pipe.holdsBuffer(), "discarded with the VM");
    }

    @Test
    void takeFromAnEmptyPipeReturnsNothing() {
        assertEquals(0, pipe.take(10).length);
    }

    @Test
    void endOfFileComesOnlyAfterTheLastByteIsTaken() throws IOException {
        pipe.write(new byte[] {1, 2, 3});
        pipe.close();

        assertFalse(pipe.atEof());
        pipe.take(2);
        assertFalse(pipe.atEof());
        pipe.take(2);
        assertTrue(pipe.atEof());
    }

    @Test
    void closeSignalsTheDeviceOnce() {
        pipe.close();
        pipe.close();

        assertEquals(1, signals.get());
    }

    @Test
    void writesAfterCloseAreDropped() throws IOException {
        pipe.close();
        pipe.write(new byte[] {1});

        assertEquals(0, pipe.available());
    }

    @Test
    @Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard only
    void discardReleasesAWriterBlockedOnAFullPipe() throws Exception {
        Thread writer = new Thread(() -> {
            try {
                pipe.write(new byte[InputPipe.CAPACITY + 1]); // one byte more than fits: blocks
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        });
        writer.start();
        while (pipe.available() < InputPipe.CAPACITY) {
            Thread.onSpinWait();
        }
        pipe.discard();
        writer.join();

        assertEquals(0, pipe.available());
    }

    @Test
    @Timeout(value = 30, threadMode = Timeout.ThreadMode.SEPARATE_THREAD) // a hang guard only
    void takingMakesRoomForABlockedWriter() throws Exception {
        byte[] data = pattern(InputPipe.CAPACITY + 1000, 3);
        Thread writer = new Thread(() -> {
            try {
                pipe.write(data);
            } catch (IOException e) {
                throw new AssertionError(e);
            }
        });
        writer.start();
        java.io.ByteArrayOutputStream got = new java.io.ByteArrayOutputStream();
        while (got.size() < data.length) {
            got.writeBytes(pipe.take(4096));
            Thread.onSpinWait();
        }
        writer.join();

        assertArrayEquals(data, got.toByteArray());
    }

    private static byte[] pattern(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + seed);
        }
        return b;
    }
}
