package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_IOERR;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_OK;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_UNSUPP;
import static org.krun.device.blk.internal.BlkRequests.status;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.krun.api.DiskSpec;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.VirtioIds;

/** The device through the driver-side mock queue, over an in-memory disk that records what it is asked. */
class VirtioBlkTest {
    private static final int SIZE = 1 << 20;

    private static ByteBuffer config(VirtioBlk d) {
        byte[] c = new byte[d.configSize()];
        d.readConfig(0, c);
        return ByteBuffer.wrap(c).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void offersFeaturesAndConfigurationSpaceAsSpecified() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec())) {
            VirtioBlk d = h.device;
            assertEquals(VirtioIds.BLOCK, d.deviceType());
            assertEquals(1, d.queueCount());
            long f = d.deviceFeatures();
            for (long bit : new long[] {VirtioBlk.F_SEG_MAX, VirtioBlk.F_BLK_SIZE, VirtioBlk.F_FLUSH, VirtioBlk.F_DISCARD,
                    VirtioBlk.F_WRITE_ZEROES}) {
                assertEquals(bit, f & bit, "feature bit " + Long.numberOfTrailingZeros(bit));
            }
            assertEquals(0, f & VirtioBlk.F_RO);
            ByteBuffer c = config(d);
            assertEquals(SIZE / 512, c.getLong(0), "capacity in 512-byte sectors");
            assertEquals(254, c.getInt(12), "seg_max");
            assertEquals(512, c.getInt(20), "blk_size");
            assertEquals(1, c.getShort(34), "num_queues");
            assertEquals(1 << 21, c.getInt(36), "max_discard_sectors");
            assertEquals(32, c.getInt(40), "max_discard_seg");
            assertEquals(8, c.getInt(44), "discard_sector_alignment: the backend's 4 KiB");
            assertEquals(1 << 21, c.getInt(48), "max_write_zeroes_sectors");
            assertEquals(32, c.getInt(52), "max_write_zeroes_seg");
            assertEquals(1, c.get(56), "write_zeroes_may_unmap");
            byte[] partial = new byte[4];
            d.readConfig(0, partial);
            assertEquals(SIZE / 512, ByteBuffer.wrap(partial).order(ByteOrder.LITTLE_ENDIAN).getInt(), "32-bit read of capacity");
        }
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec().withReadOnly(true))) {
            long f = h.device.deviceFeatures();
            assertEquals(VirtioBlk.F_RO, f & VirtioBlk.F_RO);
            assertEquals(0, f & (VirtioBlk.F_DISCARD | VirtioBlk.F_WRITE_ZEROES), "nothing to discard on a read-only disk");
            assertEquals(0, config(h.device).getInt(40), "no discard limits");
        }
    }

    @Test
    void writtenSectorsReadBackThroughScatteredBuffers() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec())) {
            byte[] data = BlkRequests.pattern(8192, 1);
            BlkRequests.write(h.driver, 10, data);
            MockDriverQueue.Used w = h.one();
            assertEquals(VIRTIO_BLK_S_OK, status(w));
            assertEquals(1, w.len(), "a write returns the status byte only");
            assertArrayEquals(data, Arrays.copyOfRange(disk.bytes, 10 * 512, 10 * 512 + 8192));

            BlkRequests.readScattered(h.driver, 10, 512, 1536, 6144);
            MockDriverQueue.Used r = h.one();
            assertEquals(VIRTIO_BLK_S_OK, status(r));
            assertEquals(8193, r.len(), "data and status byte");
            assertArrayEquals(data, Arrays.copyOf(r.written(), 8192));
            assertEquals(List.of(InterruptTrigger.QUEUE, InterruptTrigger.QUEUE), h.context.interrupts());
        }
    }

    @Test
    void readOnlyDiskRefusesWritesWithIoErrorAndStaysUntouched() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        Arrays.fill(disk.bytes, (byte) 0x5a);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec().withReadOnly(true))) {
            BlkRequests.write(h.driver, 0, new byte[4096]);
            assertEquals(VIRTIO_BLK_S_IOERR, status(h.one()));
            BlkRequests.discard(h.driver, 0, 8, 0);
            assertEquals(VIRTIO_BLK_S_UNSUPP, status(h.one()), "discard was not offered");
            BlkRequests.writeZeroes(h.driver, 0, 8, 0);
            assertEquals(VIRTIO_BLK_S_UNSUPP, status(h.one()), "write-zeroes was not offered");
            BlkRequests.read(h.driver, 0, 512);
            MockDriverQueue.Used r = h.one();
            assertEquals(VIRTIO_BLK_S_OK, status(r));
            assertEquals(0x5a, r.written()[0]);
            BlkRequests.flush(h.driver);
            assertEquals(VIRTIO_BLK_S_OK, status(h.one()));
        }
        assertTrue(disk.calls().stream().noneMatch(c -> c.startsWith("write") || c.startsWith("discard")), disk.calls().toString());
        for (byte b : disk.bytes) {
            assertEquals(0x5a, b);
        }
    }

    @Test
    void malformedRequestsGetTheSpecsStatusAndTheDeviceCarriesOn() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec())) {
            MockDriverQueue q = h.driver;
            int noStatus = q.addChain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_OUT, 0), new byte[512]), List.of());
            int noHeader = q.addChain(List.of(), List.of(1));
            int shortHeader = q.addChain(List.of(new byte[8]), List.of(1));
            int pastEnd = BlkRequests.read(q, SIZE / 512, 512);
            int overflow = BlkRequests.write(q, 1L << 55, new byte[512]);
            int readableData = q.addChain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, 0), new byte[512]),
                    List.of(1));
            int unknown = q.addChain(List.of(BlkRequests.header(99, 0)), List.of(1));
            int good = BlkRequests.read(q, 0, 512);
            h.kick();
            Map<Integer, MockDriverQueue.Used> used = h.used().stream()
                    .collect(Collectors.toMap(MockDriverQueue.Used::id, Function.identity()));
            assertEquals(8, used.size(), "every chain comes back");
            assertEquals(0, used.get(noStatus).len(), "no status byte: returned with length 0");
            assertEquals(VIRTIO_BLK_S_IOERR, status(used.get(noHeader)));
            assertEquals(VIRTIO_BLK_S_IOERR, status(used.get(shortHeader)));
            assertEquals(VIRTIO_BLK_S_IOERR, status(used.get(pastEnd)));
            assertEquals(VIRTIO_BLK_S_IOERR, status(used.get(overflow)));
            assertEquals(VIRTIO_BLK_S_IOERR, status(used.get(readableData)));
            assertEquals(VIRTIO_BLK_S_UNSUPP, status(used.get(unknown)));
            assertEquals(VIRTIO_BLK_S_OK, status(used.get(good)));
            assertEquals(List.of("read 0+512"), disk.calls(), "only the good request reached the disk");
            assertTrue(h.context.resetReasons().isEmpty());
        }
    }

    @Test
    void brokenChainIsReturnedUnusedAndBrokenQueueAsksForReset() {
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec())) {
            int[] d = h.driver.reserveDescriptors(1);
            h.driver.writeDescriptor(d[0], 0, 16, MockDriverQueue.DESC_F_NEXT, 300); // next out of range
            h.driver.makeAvailable(d[0]);
            MockDriverQueue.Used u = h.one();
            assertEquals(d[0], u.id());
            assertEquals(0, u.len());
            h.driver.setAvailIndex(h.driver.availIndex() + 1000); // more chains than the ring holds
            h.kick();
            assertEquals(1, h.context.resetReasons().size(), h.context.resetReasons().toString());
        }
    }

    @Test
    void getIdReturnsTheSerialNulPadded() {
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec().withId("disk-0"))) {
            BlkRequests.getId(h.driver, 20);
            MockDriverQueue.Used u = h.one();
            assertEquals(VIRTIO_BLK_S_OK, status(u));
            assertEquals(21, u.len());
            byte[] expected = Arrays.copyOf("disk-0".getBytes(StandardCharsets.US_ASCII), 20);
            assertArrayEquals(expected, Arrays.copyOf(u.written(), 20));
        }
        String twenty = "ABCDEFGHIJKLMNOPQRST";
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec().withId(twenty))) {
            BlkRequests.getId(h.driver, 20);
            MockDriverQueue.Used u = h.one();
            assertArrayEquals(twenty.getBytes(StandardCharsets.US_ASCII), Arrays.copyOf(u.written(), 20),
                    "20 bytes, no NUL terminator");
            BlkRequests.getId(h.driver, 4);
            MockDriverQueue.Used small = h.one();
            assertEquals(VIRTIO_BLK_S_OK, status(small));
            assertArrayEquals("ABCD".getBytes(StandardCharsets.US_ASCII), Arrays.copyOf(small.written(), 4));
        }
    }

    @Test
    void flushFollowsTheSyncMode() {
        for (DiskSpec.Sync sync : DiskSpec.Sync.values()) {
            MemoryDisk disk = new MemoryDisk(SIZE);
            try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec().withSync(sync))) {
                BlkRequests.write(h.driver, 0, new byte[512]);
                BlkRequests.flush(h.driver);
                h.kick();
                assertTrue(h.used().stream().allMatch(u -> status(u) == VIRTIO_BLK_S_OK));
            }
            List<String> expected = sync == DiskSpec.Sync.NONE ? List.of() : List.of("flush");
            assertEquals(expected, disk.otherCalls(), "sync=" + sync);
        }
    }

    @Test
    void withoutNegotiatedFlushEveryWriteIsStable() {
        // virtio 1.2 §5.2.6.2: F_FLUSH offered but not negotiated makes a completed write stable.
        MemoryDisk disk = new MemoryDisk(SIZE);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), ManualExecutor.direct(), VirtioFeatures.VERSION_1)) {
            BlkRequests.write(h.driver, 0, new byte[512]);
            assertEquals(VIRTIO_BLK_S_OK, status(h.one()));
        }
        assertEquals(List.of("write 0+512", "flush"), disk.calls());
    }

    @Test
    void discardAndWriteZeroesReachTheBackendRangeByRange() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        Arrays.fill(disk.bytes, (byte) 1);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec())) {
            BlkRequests.discard(h.driver, 0, 8, 0, 64, 16, 0);
            assertEquals(VIRTIO_BLK_S_OK, status(h.one()));
            BlkRequests.writeZeroes(h.driver, 8, 2, 0, 100, 1, BlkRequest.FLAG_UNMAP);
            assertEquals(VIRTIO_BLK_S_OK, status(h.one()));
        }
        assertEquals(List.of("discard 0+4096", "discard 32768+8192", "write-zeroes 4096+1024",
                "write-zeroes 51200+512 unmap"), disk.otherCalls());
        assertEquals(0, disk.bytes[4096]);
        assertEquals(0, disk.bytes[51200 + 511]);
        assertEquals(1, disk.bytes[51200 + 512]);
    }

    @Test
    void discardNotNegotiatedIsUnsupported() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        long features = VirtioFeatures.VERSION_1 | VirtioBlk.F_FLUSH;
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), ManualExecutor.direct(), features)) {
            BlkRequests.discard(h.driver, 0, 8, 0);
            assertEquals(VIRTIO_BLK_S_UNSUPP, status(h.one()));
        }
        assertEquals(List.of(), disk.calls());
    }

    @Test
    void hostIoErrorBecomesIoErrorStatus() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec())) {
            disk.failNext = true;
            BlkRequests.read(h.driver, 0, 512);
            assertEquals(VIRTIO_BLK_S_IOERR, status(h.one()));
            BlkRequests.read(h.driver, 0, 512);
            assertEquals(VIRTIO_BLK_S_OK, status(h.one()), "the next request works again");
        }
    }

    @Test
    void severalRequestsInFlightCompleteInAnyOrder() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        ManualExecutor io = ManualExecutor.held();
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), io, -1)) {
            int a = BlkRequests.write(h.driver, 0, BlkRequests.pattern(512, 2));
            int b = BlkRequests.read(h.driver, 100, 4096);
            int c = BlkRequests.flush(h.driver);
            int bad = BlkRequests.read(h.driver, SIZE, 512); // answered at once, without I/O
            h.kick();
            assertEquals(3, io.pending(), "three requests in flight together");
            assertEquals(3, h.device.inFlight());
            assertEquals(List.of(bad), h.used().stream().map(MockDriverQueue.Used::id).toList());
            io.run(2); // the flush finishes first
            io.run(0); // then the write
            assertEquals(List.of(c, a), h.used().stream().map(MockDriverQueue.Used::id).toList());
            io.run(0); // and the read
            List<MockDriverQueue.Used> last = h.used();
            assertEquals(List.of(b), last.stream().map(MockDriverQueue.Used::id).toList());
            assertEquals(VIRTIO_BLK_S_OK, status(last.get(0)));
            assertEquals(0, h.device.inFlight());
            assertEquals(4, h.context.interrupts().size(), "one interrupt per batch of completions");
        }
    }

    @Test
    void aDriverRepostingChainsInFlightGetsNoMoreThanAQueueOfRequestsInFlight() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        ManualExecutor io = ManualExecutor.held();
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), io, -1)) {
            for (int i = 0; i < VirtioBlk.QUEUE_SIZE / 2; i++) {
                BlkRequests.flush(h.driver); // two descriptors each: the ring's descriptors are all in use
            }
            h.kick();
            assertEquals(VirtioBlk.QUEUE_SIZE / 2, io.pending());
            // Against the spec, the driver moves avail idx over the ring's old entries twice, posting every
            // chain in flight again and again: the device stops taking them at a queue's worth.
            h.driver.setAvailIndex(h.driver.availIndex() + VirtioBlk.QUEUE_SIZE);
            h.kick();
            h.driver.setAvailIndex(h.driver.availIndex() + VirtioBlk.QUEUE_SIZE / 2);
            h.kick();
            assertEquals(VirtioBlk.QUEUE_SIZE, io.pending(), "I/O queued on the host");
            assertEquals(VirtioBlk.QUEUE_SIZE, h.device.inFlight());
            io.runAll();
            h.kick(); // the rest, once requests finished and the driver notified again
            io.runAll();
            assertEquals(2 * VirtioBlk.QUEUE_SIZE, h.used().size(), "every chain taken came back");
            assertEquals(0, h.device.inFlight());
        }
    }

    @Test
    void resetDropsRequestsInFlightWithoutTouchingTheQueue() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        ManualExecutor io = ManualExecutor.held();
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), io, -1)) {
            BlkRequests.write(h.driver, 0, new byte[512]);
            BlkRequests.read(h.driver, 0, 512);
            h.kick();
            assertEquals(2, io.pending());
            h.device.reset(); // the queued I/O does not run after reset ...
            io.runAll();
            assertEquals(List.of(), h.used(), "... and nothing reaches the old queue");
            assertEquals(List.of(), disk.calls());
            assertEquals(0, h.device.inFlight());
        }
    }

    @Test
    void closeAnswersNothingAfterwardsAndClosesTheDisk() {
        MemoryDisk disk = new MemoryDisk(SIZE);
        ManualExecutor io = ManualExecutor.held();
        BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), io, -1);
        BlkRequests.read(h.driver, 0, 512);
        h.kick();
        h.close();
        assertTrue(io.isShutdown());
        assertTrue(disk.closed);
        assertEquals(List.of(), disk.calls(), "the queued read was dropped");
    }
}
