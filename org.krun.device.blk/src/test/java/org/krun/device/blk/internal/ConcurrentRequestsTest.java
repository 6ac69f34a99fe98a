package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.device.blk.internal.BlkRequests.status;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.DiskSpec;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

/**
 * The device with its real I/O pool and a real event-loop thread over a raw file: many requests in flight at
 * once, completions from I/O threads returned by the loop alone, and nothing left behind by close.
 */
class ConcurrentRequestsTest {
    private static final int SIZE = 8 << 20;

    @TempDir
    Path dir;

    /** Waits until the device has returned {@code count} chains in total. */
    private static void awaitUsed(MockDriverQueue driver, int count) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (driver.usedIndex() != (count & 0xffff)) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("only " + driver.usedIndex() + " of " + count + " chains came back");
            }
            Thread.sleep(1);
        }
    }

    private static List<String> ioThreads(String prefix) {
        return Thread.getAllStackTraces().keySet().stream().map(Thread::getName).filter(n -> n.startsWith(prefix)).toList();
    }

    @Test
    void manyRequestsInFlightOnRealThreadsAllCompleteCorrectly() throws Exception {
        Path file = dir.resolve("disk.img");
        byte[] initial = BlkRequests.pattern(SIZE, 20);
        Files.write(file, initial);
        int descriptorsBefore = HostFiles.openDescriptors();
        DiskSpec spec = DiskSpec.raw(file);
        VirtioBlk device = new VirtioBlk(RawDisk.open(DiskFile.open(file, true, false, false)), spec,
                IoExecutor.threads("krun-blk-concurrent-test", 4));
        byte[] model = initial.clone();
        try (TestGuestMemory ram = TestGuestMemory.create(64 << 20); LoopThread loop = new LoopThread()) {
            MockDriverQueue driver = new MockDriverQueue(ram, VirtioBlk.QUEUE_SIZE);
            Virtqueue queue = driver.configuredQueue();
            loop.call(() -> {
                device.activate(loop.context(ram.memory(), device.deviceFeatures() | VirtioFeatures.VERSION_1, queue));
                return null;
            });
            Random random = new Random(21);
            int returned = 0;
            for (int round = 0; round < 6; round++) {
                // A batch of 120 requests: writes to disjoint 64 KiB slots, reads of other slots, flushes.
                Map<Integer, byte[]> expectedReads = new HashMap<>();
                List<Integer> slots = new ArrayList<>();
                for (int s = 0; s < SIZE / 65536; s++) {
                    slots.add(s);
                }
                java.util.Collections.shuffle(slots, random);
                for (int i = 0; i < 120; i++) {
                    int slot = slots.get(i);
                    int length = (1 + random.nextInt(128)) * 512;
                    long sector = slot * 128L;
                    if (i % 3 == 0) {
                        byte[] data = BlkRequests.pattern(length, random.nextLong());
                        BlkRequests.write(driver, sector, data);
                        System.arraycopy(data, 0, model, slot * 65536, length);
                    } else if (i % 3 == 1) {
                        int head = driver.addIndirectChain( // as Linux sends them: one ring slot, a table
                                List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, sector)),
                                List.of(length / 2, length - length / 2, 1));
                        expectedReads.put(head, Arrays.copyOfRange(model, slot * 65536, slot * 65536 + length));
                    } else {
                        BlkRequests.flush(driver);
                    }
                }
                loop.execute(() -> device.queueNotify(0));
                returned += 120;
                awaitUsed(driver, returned);
                List<MockDriverQueue.Used> used = driver.usedEntries();
                assertEquals(120, used.size());
                for (MockDriverQueue.Used u : used) {
                    assertEquals(BlkRequest.VIRTIO_BLK_S_OK, status(u), "chain " + u.id());
                    byte[] expected = expectedReads.get(u.id());
                    if (expected != null) {
                        assertArrayEquals(expected, Arrays.copyOf(u.written(), expected.length), "read " + u.id());
                    }
                }
            }
            assertTrue(loop.interrupts.get() > 0);
            assertFalse(ioThreads("krun-blk-concurrent-test").isEmpty(), "the I/O threads did the work");
            loop.call(() -> {
                device.reset();
                return null;
            });
        } finally {
            device.close();
        }
        assertArrayEquals(model, Files.readAllBytes(file));
        assertEquals(List.of(), ioThreads("krun-blk-concurrent-test"), "close ended every I/O thread");
        assertEquals(descriptorsBefore, HostFiles.openDescriptors(), "close released the image");
    }

    @Test
    void closeWhileRequestsAreInFlightWaitsForThemAndLeaksNothing() throws Exception {
        Path file = dir.resolve("disk.img");
        Files.write(file, new byte[SIZE]);
        int descriptorsBefore = HostFiles.openDescriptors();
        CountDownLatch started = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        RawDisk raw = RawDisk.open(DiskFile.open(file, true, false, false));
        DiskBackend slow = new DiskBackend() { // a disk whose reads block until the test lets them go
            @Override
            public long capacity() {
                return raw.capacity();
            }

            @Override
            public void read(long offset, List<java.lang.foreign.MemorySegment> dst) throws java.io.IOException {
                started.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                raw.read(offset, dst);
            }

            @Override
            public void write(long offset, List<java.lang.foreign.MemorySegment> src) throws java.io.IOException {
                raw.write(offset, src);
            }

            @Override
            public void flush() throws java.io.IOException {
                raw.flush();
            }

            @Override
            public void discard(long offset, long length) throws java.io.IOException {
                raw.discard(offset, length);
            }

            @Override
            public void writeZeroes(long offset, long length, boolean mayUnmap) throws java.io.IOException {
                raw.writeZeroes(offset, length, mayUnmap);
            }

            @Override
            public int discardGranularity() {
                return raw.discardGranularity();
            }

            @Override
            public void close() {
                raw.close();
            }
        };
        VirtioBlk device = new VirtioBlk(slow, DiskSpec.raw(file), IoExecutor.threads("krun-blk-close-test", 2));
        try (TestGuestMemory ram = TestGuestMemory.create(16 << 20); LoopThread loop = new LoopThread()) {
            MockDriverQueue driver = new MockDriverQueue(ram, VirtioBlk.QUEUE_SIZE);
            Virtqueue queue = driver.configuredQueue();
            loop.call(() -> {
                device.activate(loop.context(ram.memory(), device.deviceFeatures() | VirtioFeatures.VERSION_1, queue));
                return null;
            });
            for (int i = 0; i < 10; i++) {
                BlkRequests.read(driver, i * 8L, 4096);
            }
            loop.execute(() -> device.queueNotify(0));
            assertTrue(started.await(30, TimeUnit.SECONDS));
            // The VM stops: the loop is gone (as in Machine.finish), then devices close.
            Thread closer = Thread.ofPlatform().start(device::close);
            Thread.sleep(100);
            assertTrue(closer.isAlive(), "close waits for the reads in progress");
            release.countDown();
            closer.join(TimeUnit.SECONDS.toMillis(60));
            assertFalse(closer.isAlive());
        }
        assertEquals(List.of(), ioThreads("krun-blk-close-test"));
        assertEquals(descriptorsBefore, HostFiles.openDescriptors());
    }
}
