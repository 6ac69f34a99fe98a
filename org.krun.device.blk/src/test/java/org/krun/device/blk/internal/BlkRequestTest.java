package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_IOERR;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_OK;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_UNSUPP;

import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.Virtqueue;

/** {@link BlkRequest#parse} and {@link BlkRequest#check} alone: layouts as the driver may send them. */
class BlkRequestTest {
    private static final long CAPACITY = 2048; // sectors: 1 MiB
    private static final BlkRequest.Limits LIMITS = new BlkRequest.Limits(CAPACITY, false, true, true, 4, 1024, 4, 1024);
    private static final BlkRequest.Limits READ_ONLY = new BlkRequest.Limits(CAPACITY, true, false, false, 4, 1024, 4, 1024);

    private final TestGuestMemory ram = TestGuestMemory.create(1 << 20);
    private final MockDriverQueue driver = new MockDriverQueue(ram, 16);
    private final Virtqueue queue = driver.configuredQueue();

    @AfterEach
    void free() {
        ram.close();
    }

    /** Parses the next chain, then returns it so its descriptors are free again. */
    private BlkRequest next() {
        var chain = queue.pop(ram.memory());
        BlkRequest r = BlkRequest.parse(chain, ram.memory());
        queue.addUsed(ram.memory(), chain.head(), 0);
        driver.usedEntries();
        return r;
    }

    private BlkRequest chain(List<byte[]> readable, List<Integer> writable) {
        driver.addChain(readable, writable);
        return next();
    }

    @Test
    void readParsesSectorDataAndStatus() {
        BlkRequests.readScattered(driver, 7, 512, 3584);
        BlkRequest.Read r = assertInstanceOf(BlkRequest.Read.class, next());
        assertEquals(7, r.sector());
        assertEquals(4096, r.length());
        assertEquals(2, r.data().size(), "the guest's two buffers, not a copy");
        assertEquals(4097, r.usedLength(), "data and status");
        assertEquals(1, r.status().byteSize());
        assertEquals(VIRTIO_BLK_S_OK, BlkRequest.check(r, LIMITS));
    }

    @Test
    void writeParsesData() {
        BlkRequests.write(driver, 3, new byte[1024]);
        BlkRequest.Write w = assertInstanceOf(BlkRequest.Write.class, next());
        assertEquals(3, w.sector());
        assertEquals(1024, w.length());
        assertEquals(1, w.usedLength());
    }

    @Test
    void headerSplitAcrossDescriptorsParses() {
        byte[] h = BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, 9);
        BlkRequest r = chain(List.of(java.util.Arrays.copyOf(h, 5), java.util.Arrays.copyOfRange(h, 5, 16)),
                List.of(512, 1));
        assertEquals(9, assertInstanceOf(BlkRequest.Read.class, r).sector());
    }

    @Test
    void chainWithoutWritableByteHasNoStatusAndIsReturnedWithLengthZero() {
        BlkRequest r = chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, 0), new byte[1]), List.of());
        assertInstanceOf(BlkRequest.Malformed.class, r);
        assertNull(r.status());
        assertEquals(0, r.usedLength());
    }

    @Test
    void missingOrShortHeaderIsAnIoError() {
        BlkRequest none = chain(List.of(), List.of(1));
        assertInstanceOf(BlkRequest.Malformed.class, none);
        assertNotNull(none.status());
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(none, LIMITS));
        BlkRequest shortHeader = chain(List.of(new byte[15]), List.of(1));
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(shortHeader, LIMITS));
    }

    @Test
    void statusByteOutsideGuestRamMeansNoAnswer() {
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], driver.writeBuffer(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_FLUSH, 0)), 16,
                MockDriverQueue.DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], (1L << 40), 1, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        BlkRequest r = next();
        assertInstanceOf(BlkRequest.Malformed.class, r);
        assertNull(r.status(), "nowhere to write a status");
        assertEquals(0, r.usedLength());
    }

    @Test
    void dataBufferOutsideGuestRamIsAnIoError() {
        int[] d = driver.reserveDescriptors(3);
        driver.writeDescriptor(d[0], driver.writeBuffer(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, 0)), 16,
                MockDriverQueue.DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], (1L << 40), 512, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[2]);
        driver.writeDescriptor(d[2], driver.allocate(1), 1, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        BlkRequest r = next();
        assertInstanceOf(BlkRequest.Malformed.class, r);
        assertNotNull(r.status());
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(r, LIMITS));
    }

    @Test
    void readWithDeviceReadableDataIsMalformed() {
        BlkRequest r = chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, 0), new byte[512]), List.of(1));
        assertInstanceOf(BlkRequest.Malformed.class, r);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(r, LIMITS));
    }

    @Test
    void writeWithDeviceWritableDataIsMalformed() {
        BlkRequest r = chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_OUT, 0), new byte[512]),
                List.of(512, 1));
        assertInstanceOf(BlkRequest.Malformed.class, r);
    }

    @Test
    void partialSectorsAreMalformed() {
        assertInstanceOf(BlkRequest.Malformed.class,
                chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_IN, 0)), List.of(100, 1)));
        assertInstanceOf(BlkRequest.Malformed.class,
                chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_OUT, 0), new byte[513]), List.of(1)));
    }

    @Test
    void unknownTypesAreUnsupported() {
        for (int type : new int[] {2, 10, 14, 16, 0x7fffffff, -1}) {
            BlkRequest r = chain(List.of(BlkRequests.header(type, 0)), List.of(1));
            assertInstanceOf(BlkRequest.Unsupported.class, r, "type " + type);
            assertEquals(VIRTIO_BLK_S_UNSUPP, BlkRequest.check(r, LIMITS));
        }
    }

    @Test
    void sectorsPastTheEndAreIoErrors() {
        BlkRequests.read(driver, CAPACITY - 1, 512);
        assertEquals(VIRTIO_BLK_S_OK, BlkRequest.check(next(), LIMITS), "the last sector");
        BlkRequests.read(driver, CAPACITY - 1, 1024);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS), "one sector past the end");
        BlkRequests.read(driver, CAPACITY, 512);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS));
        BlkRequests.write(driver, CAPACITY + 1, new byte[512]);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS));
    }

    @Test
    void sectorTimes512OverflowIsAnIoError() {
        // 2^55 * 512 = 2^64 wraps to 0, and -1 is the largest unsigned sector: neither may reach the disk.
        for (long sector : new long[] {1L << 55, (1L << 55) + 1, Long.MAX_VALUE, -1L, Long.MIN_VALUE}) {
            BlkRequests.read(driver, sector, 512);
            assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS), "sector " + Long.toUnsignedString(sector));
            BlkRequests.discard(driver, sector, 1, 0);
            assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS), "discard at " + Long.toUnsignedString(sector));
        }
        assertFalse(BlkRequest.inside(CAPACITY, 1, CAPACITY));
        assertTrue(BlkRequest.inside(CAPACITY, 0, CAPACITY));
        assertFalse(BlkRequest.inside(1, Long.MAX_VALUE, CAPACITY));
    }

    @Test
    void readOnlyRefusesWritesDiscardsAndWriteZeroes() {
        BlkRequests.write(driver, 0, new byte[512]);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), READ_ONLY));
        BlkRequests.read(driver, 0, 512);
        assertEquals(VIRTIO_BLK_S_OK, BlkRequest.check(next(), READ_ONLY));
        BlkRequests.flush(driver);
        assertEquals(VIRTIO_BLK_S_OK, BlkRequest.check(next(), READ_ONLY));
        // not offered on a read-only disk: unsupported; offered (a driver ignoring F_RO): an I/O error
        BlkRequests.discard(driver, 0, 8, 0);
        assertEquals(VIRTIO_BLK_S_UNSUPP, BlkRequest.check(next(), READ_ONLY));
        BlkRequest.Limits roWithDiscard = new BlkRequest.Limits(CAPACITY, true, true, true, 4, 1024, 4, 1024);
        BlkRequests.discard(driver, 0, 8, 0);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), roWithDiscard));
        BlkRequests.writeZeroes(driver, 0, 8, 0);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), roWithDiscard));
    }

    @Test
    void discardAndWriteZeroesRangesAreParsedAndChecked() {
        BlkRequests.discard(driver, 0, 8, 0, 100, 16, 0);
        BlkRequest.Discard d = assertInstanceOf(BlkRequest.Discard.class, next());
        assertEquals(List.of(new BlkRequest.Range(0, 8, 0), new BlkRequest.Range(100, 16, 0)), d.ranges());
        assertEquals(VIRTIO_BLK_S_OK, BlkRequest.check(d, LIMITS));

        BlkRequests.discard(driver, 0, 8, BlkRequest.FLAG_UNMAP);
        assertEquals(VIRTIO_BLK_S_UNSUPP, BlkRequest.check(next(), LIMITS), "unmap is for write-zeroes only");
        BlkRequests.writeZeroes(driver, 0, 8, BlkRequest.FLAG_UNMAP);
        assertEquals(VIRTIO_BLK_S_OK, BlkRequest.check(next(), LIMITS));
        BlkRequests.writeZeroes(driver, 0, 8, 2);
        assertEquals(VIRTIO_BLK_S_UNSUPP, BlkRequest.check(next(), LIMITS), "unknown flag");
        BlkRequests.discard(driver, CAPACITY - 4, 8, 0);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS), "past the end");
        BlkRequests.discard(driver, 0, 1025, 0);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS), "more than max_discard_sectors");
        BlkRequests.writeZeroes(driver, 0, 1, 0, 1, 1, 0, 2, 1, 0, 3, 1, 0, 4, 1, 0);
        assertEquals(VIRTIO_BLK_S_IOERR, BlkRequest.check(next(), LIMITS), "more than max_write_zeroes_seg");
        BlkRequests.discard(driver, 0, 8, 0);
        assertEquals(VIRTIO_BLK_S_UNSUPP, BlkRequest.check(next(),
                new BlkRequest.Limits(CAPACITY, false, false, false, 4, 1024, 4, 1024)), "not negotiated");
    }

    @Test
    void rangePayloadThatIsNotWholeEntriesIsMalformed() {
        BlkRequest r = chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_DISCARD, 0), new byte[24]), List.of(1));
        assertInstanceOf(BlkRequest.Malformed.class, r);
        BlkRequest empty = chain(List.of(BlkRequests.header(BlkRequest.VIRTIO_BLK_T_WRITE_ZEROES, 0)), List.of(1));
        assertInstanceOf(BlkRequest.Malformed.class, empty);
    }

    @Test
    void getIdTakesAtMostTwentyBytes() {
        BlkRequests.getId(driver, 64);
        BlkRequest.GetId g = assertInstanceOf(BlkRequest.GetId.class, next());
        assertEquals(20, Segments.size(g.data()));
        assertEquals(65, g.usedLength());
        BlkRequests.getId(driver, 8);
        assertEquals(8, Segments.size(assertInstanceOf(BlkRequest.GetId.class, next()).data()));
    }
}
