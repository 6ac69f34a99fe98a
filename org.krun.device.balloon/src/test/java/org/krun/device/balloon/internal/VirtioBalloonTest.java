package org.krun.device.balloon.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.api.BalloonSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.posix.Errno;
import org.krun.posix.PosixException;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;

/**
 * virtio-balloon against driver-side mock queues, played as drivers/virtio/virtio_balloon.c plays them:
 * inflate and deflate requests are arrays of 4 KiB page frame numbers in one device-readable buffer; a free
 * page report is up to 32 device-writable buffers that are the free memory itself.
 */
class VirtioBalloonTest {
    private static final long PAGE = 4096;
    private static final int RAM = 8 << 20;

    /** Records every range the device releases; optionally fails instead. */
    private static final class RecordingDiscarder implements PageDiscarder {
        final List<MemorySegment> discarded = new ArrayList<>();
        PosixException failure;

        @Override
        public void discard(MemorySegment pages) {
            if (failure != null) {
                throw failure;
            }
            discarded.add(pages);
        }

        long bytes() {
            return discarded.stream().mapToLong(MemorySegment::byteSize).sum();
        }
    }

    private TestGuestMemory ram = TestGuestMemory.create(RAM);
    private final RecordingDiscarder discarder = new RecordingDiscarder();
    private VirtioBalloon balloon;
    private FakeDeviceContext context;
    private List<MockDriverQueue> queues;

    @AfterEach
    void close() {
        if (balloon != null) {
            balloon.close();
        }
        ram.close();
    }

    private void activate(boolean reporting, long driverFeatures, PageDiscarder d) {
        balloon = new VirtioBalloon(new BalloonSpec(reporting), d);
        queues = new ArrayList<>();
        List<Virtqueue> deviceQueues = new ArrayList<>();
        for (int i = 0; i < balloon.queueCount(); i++) {
            MockDriverQueue q = new MockDriverQueue(ram, VirtioBalloon.QUEUE_SIZE);
            queues.add(q);
            deviceQueues.add(q.configuredQueue());
        }
        context = new FakeDeviceContext(ram.memory(), driverFeatures, deviceQueues);
        balloon.activate(context);
    }

    private void activate() {
        activate(true, VirtioFeatures.VERSION_1 | VirtioBalloon.F_DEFLATE_ON_OOM | VirtioBalloon.F_PAGE_REPORTING, discarder);
    }

    private MockDriverQueue inflateq() {
        return queues.get(VirtioBalloon.INFLATEQ);
    }

    private MockDriverQueue reportingVq() {
        return queues.get(VirtioBalloon.REPORTING_VQ);
    }

    private static byte[] pfns(long... pfns) {
        ByteBuffer b = ByteBuffer.allocate(4 * pfns.length).order(ByteOrder.LITTLE_ENDIAN);
        for (long p : pfns) {
            b.putInt((int) p);
        }
        return b.array();
    }

    private GuestMemory mem() {
        return ram.memory();
    }

    /** The host segment the device should release for guest pages [address, address + length). */
    private void assertReleased(List<MemorySegment> actual, long... addressLengthPairs) {
        assertEquals(addressLengthPairs.length / 2, actual.size(), "ranges released: " + actual);
        for (int i = 0; i < actual.size(); i++) {
            MemorySegment expected = mem().slice(addressLengthPairs[2 * i], addressLengthPairs[2 * i + 1]);
            assertEquals(expected.address(), actual.get(i).address(), "range " + i + " start");
            assertEquals(expected.byteSize(), actual.get(i).byteSize(), "range " + i + " size");
        }
    }

    /** A page-aligned guest buffer of {@code pages} pages filled with {@code fill}. */
    private long pages(int pages, byte fill) {
        long at = ram.allocate(pages * PAGE, PAGE);
        mem().fill(at, pages * PAGE, fill);
        return at;
    }

    // ---- identity and configuration

    @Test
    void identifiesAsBalloonOfferingReportingAndDeflateOnOom() {
        VirtioBalloon b = new VirtioBalloon(BalloonSpec.withFreePageReporting(), discarder);
        assertEquals(VirtioIds.BALLOON, b.deviceType());
        assertEquals(5, b.deviceType(), "virtio 1.2 §5.5.1");
        assertEquals(VirtioBalloon.F_DEFLATE_ON_OOM | VirtioBalloon.F_PAGE_REPORTING, b.deviceFeatures());
        assertEquals(3, b.queueCount(), "inflateq, deflateq, reporting_vq");
        assertTrue(b.queueMaxSize(VirtioBalloon.REPORTING_VQ) >= 32, "Linux needs PAGE_REPORTING_CAPACITY entries");
        assertEquals(16, b.configSize());
        long notOffered = VirtioBalloon.F_MUST_TELL_HOST | VirtioBalloon.F_STATS_VQ | VirtioBalloon.F_FREE_PAGE_HINT
                | VirtioBalloon.F_PAGE_POISON;
        assertEquals(0, b.deviceFeatures() & notOffered);
    }

    @Test
    void withoutReportingThereIsNoReportingQueue() {
        VirtioBalloon b = new VirtioBalloon(new BalloonSpec(false), discarder);
        assertEquals(VirtioBalloon.F_DEFLATE_ON_OOM, b.deviceFeatures());
        assertEquals(2, b.queueCount());
    }

    private int readConfigInt(VirtioBalloon b, int offset) {
        byte[] data = new byte[4];
        b.readConfig(offset, data);
        return ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).getInt();
    }

    @Test
    void numPagesIsZeroAndActualIsTheDriversToWrite() {
        VirtioBalloon b = new VirtioBalloon(BalloonSpec.withFreePageReporting(), discarder);
        assertEquals(0, readConfigInt(b, VirtioBalloon.CONFIG_NUM_PAGES));
        b.writeConfig(VirtioBalloon.CONFIG_ACTUAL, new byte[] {0x34, 0x12, 0, 0});
        assertEquals(0x1234, readConfigInt(b, VirtioBalloon.CONFIG_ACTUAL));
        b.writeConfig(VirtioBalloon.CONFIG_NUM_PAGES, new byte[] {1, 1, 1, 1});
        assertEquals(0, readConfigInt(b, VirtioBalloon.CONFIG_NUM_PAGES), "num_pages is the device's");
        b.writeConfig(12, new byte[] {1, 2, 3, 4});
        assertEquals(0, readConfigInt(b, 12), "poison_val without PAGE_POISON is ignored");
        assertEquals(0, readConfigInt(b, 8));
        b.reset();
        assertEquals(0, readConfigInt(b, VirtioBalloon.CONFIG_ACTUAL), "reset returns the config to its initial state");
    }

    @Test
    void actualMayBeWrittenOneByteAtATime() {
        VirtioBalloon b = new VirtioBalloon(BalloonSpec.withFreePageReporting(), discarder);
        b.writeConfig(4, new byte[] {0x78});
        b.writeConfig(5, new byte[] {0x56});
        b.writeConfig(6, new byte[] {0x34, 0x12});
        assertEquals(0x12345678, b.actual());
        byte[] one = new byte[1];
        b.readConfig(7, one);
        assertEquals(0x12, one[0]);
        b.writeConfig(2, new byte[] {(byte) 0xff, (byte) 0xff, (byte) 0xee});
        assertEquals(0x123456ee, b.actual(), "a write straddling num_pages and actual changes only actual");
    }

    // ---- inflateq

    @Test
    void inflateReleasesThePagesMergingNeighbours() {
        activate();
        inflateq().addReadable(pfns(0x100, 0x101, 0x102, 0x200, 0x7ff));
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        List<MockDriverQueue.Used> used = inflateq().usedEntries();
        assertEquals(1, used.size());
        assertEquals(0, used.get(0).len(), "the device writes nothing");
        assertReleased(discarder.discarded, 0x100000, 3 * PAGE, 0x200000, PAGE, 0x7ff000, PAGE);
        assertEquals(5, balloon.inflatedPages());
        assertEquals(5 * PAGE, balloon.releasedBytes());
        assertEquals(List.of(InterruptTrigger.QUEUE), context.interrupts());
    }

    @Test
    void inflateWithRealMadviseZeroesExactlyThosePages() {
        activate(true, VirtioFeatures.VERSION_1, PageDiscarder.MADV_DONTNEED);
        long base = pages(4, (byte) 0x5a);
        inflateq().addReadable(pfns((base >> 12) + 1, (base >> 12) + 2));
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(1, inflateq().usedEntries().size());
        byte[] page = new byte[(int) PAGE];
        byte[] pattern = page.clone();
        java.util.Arrays.fill(pattern, (byte) 0x5a);
        mem().read(base, page, 0, page.length);
        assertArrayEquals(pattern, page, "the page before is kept");
        mem().read(base + PAGE, page, 0, page.length);
        assertArrayEquals(new byte[(int) PAGE], page, "released: reads zero");
        mem().read(base + 2 * PAGE, page, 0, page.length);
        assertArrayEquals(new byte[(int) PAGE], page);
        mem().read(base + 3 * PAGE, page, 0, page.length);
        assertArrayEquals(pattern, page, "the page after is kept");
    }

    @Test
    void inflatePagesOutsideRamAreRefusedOneByOne() {
        activate();
        long lastPfn = RAM / PAGE - 1;
        inflateq().addReadable(pfns(1, lastPfn + 1, 0xffffffffL, lastPfn, 0x80000));
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(0, inflateq().usedEntries().get(0).len());
        assertReleased(discarder.discarded, PAGE, PAGE, lastPfn * PAGE, PAGE);
        assertEquals(3, balloon.rejected());
        assertTrue(context.resetReasons().isEmpty(), "a bad page is no reason to stop the device");
    }

    @Test
    void inflateArrayWithATrailingPartialEntryUsesTheWholeEntries() {
        activate();
        byte[] req = new byte[10];
        System.arraycopy(pfns(3, 4), 0, req, 0, 8);
        req[8] = 5;
        inflateq().addReadable(req);
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(1, inflateq().usedEntries().size());
        assertReleased(discarder.discarded, 3 * PAGE, 2 * PAGE);
        assertEquals(1, balloon.rejected());
    }

    @Test
    void inflateArrayOutsideRamReleasesNothingAndTheQueueGoesOn() {
        activate();
        int[] d = inflateq().reserveDescriptors(1);
        inflateq().writeDescriptor(d[0], RAM - 4, 8, 0, 0);
        inflateq().makeAvailable(d[0]);
        inflateq().addReadable(pfns(9));
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(2, inflateq().usedEntries().size(), "both acknowledged");
        assertReleased(discarder.discarded, 9 * PAGE, PAGE);
    }

    @Test
    void oneInflateRequestIsBoundedInPages() {
        ram.close();
        ram = TestGuestMemory.create(8 << 20);
        activate();
        int count = BalloonRequests.MAX_PFNS_PER_REQUEST + 100;
        long[] list = new long[count];
        for (int i = 0; i < count; i++) {
            list[i] = 2 * (i % 512); // never adjacent: one range per page
        }
        inflateq().addReadable(pfns(list));
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(1, inflateq().usedEntries().size());
        assertEquals(BalloonRequests.MAX_PFNS_PER_REQUEST, discarder.discarded.size());
        assertEquals(1, balloon.rejected(), "the excess is refused once");
    }

    @Test
    void inflateAcrossARegionBoundaryIsTwoRanges() {
        ram.close();
        ram = TestGuestMemory.withRegions(0, 1 << 20, 1 << 20, 1 << 20);
        activate();
        inflateq().addReadable(pfns(255, 256, 257));
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertReleased(discarder.discarded, 255 * PAGE, PAGE, 256 * PAGE, 2 * PAGE);
    }

    // ---- deflateq

    @Test
    void deflateIsAcknowledgedWithoutTouchingMemory() {
        activate();
        queues.get(VirtioBalloon.DEFLATEQ).addReadable(pfns(0x100, 0x101));
        balloon.queueNotify(VirtioBalloon.DEFLATEQ);
        List<MockDriverQueue.Used> used = queues.get(VirtioBalloon.DEFLATEQ).usedEntries();
        assertEquals(1, used.size());
        assertEquals(0, used.get(0).len());
        assertTrue(discarder.discarded.isEmpty());
        assertEquals(1, balloon.deflatedRequests());
    }

    // ---- reporting_vq

    /** Makes a free page report available: one device-writable descriptor per (address, length) pair. */
    private int report(long... addressLengthPairs) {
        int n = addressLengthPairs.length / 2;
        int[] d = reportingVq().reserveDescriptors(n);
        for (int i = 0; i < n; i++) {
            int flags = MockDriverQueue.DESC_F_WRITE | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0);
            reportingVq().writeDescriptor(d[i], addressLengthPairs[2 * i], (int) addressLengthPairs[2 * i + 1], flags,
                    i + 1 < n ? d[i + 1] : 0);
        }
        reportingVq().makeAvailable(d[0]);
        return d[0];
    }

    @Test
    void freePageReportReleasesEachReportedBuffer() {
        activate();
        long a = pages(2, (byte) 1);
        long b = pages(1, (byte) 1);
        int head = report(a, 2 * PAGE, b, PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        List<MockDriverQueue.Used> used = reportingVq().usedEntries();
        assertEquals(1, used.size());
        assertEquals(head, used.get(0).id());
        assertEquals(0, used.get(0).len(), "the device writes nothing into reported pages");
        assertReleased(discarder.discarded, a, 2 * PAGE, b, PAGE);
        assertEquals(1, balloon.freePageReports());
        assertEquals(3 * PAGE, balloon.reportedBytes());
        assertEquals(List.of(InterruptTrigger.QUEUE), context.interrupts());
    }

    @Test
    void freePageReportWithRealMadviseZeroesTheReportedPages() {
        activate(true, VirtioFeatures.VERSION_1 | VirtioBalloon.F_PAGE_REPORTING, PageDiscarder.MADV_DONTNEED);
        long a = pages(3, (byte) 0x77);
        report(a + PAGE, PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertEquals(1, reportingVq().usedEntries().size());
        assertEquals(0x77, mem().getByte(a + PAGE - 1));
        assertEquals(0, mem().getLong(a + PAGE));
        assertEquals(0, mem().getLong(a + 2 * PAGE - 8));
        assertEquals(0x77, mem().getByte(a + 2 * PAGE));
        assertEquals(PAGE, balloon.releasedBytes());
    }

    @Test
    void reportedRangesThatAreNotWholePagesAreRefusedAlone() {
        activate();
        long a = pages(4, (byte) 1);
        report(a, PAGE, a + PAGE + 512, PAGE, a + 2 * PAGE, PAGE + 1, a + 3 * PAGE, 100);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertEquals(1, reportingVq().usedEntries().size(), "acknowledged all the same: the driver waits for it");
        assertReleased(discarder.discarded, a, PAGE);
        assertEquals(3, balloon.rejected());
    }

    @Test
    void reportWithARangeOutsideRamReleasesNothingAndTheNextReportWorks() {
        activate();
        long a = pages(2, (byte) 1);
        report(a, PAGE, RAM - PAGE, 2 * PAGE);
        report(a + PAGE, PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        List<MockDriverQueue.Used> used = reportingVq().usedEntries();
        assertEquals(2, used.size());
        assertReleased(discarder.discarded, a + PAGE, PAGE);
        assertEquals(1, balloon.rejected());
        assertTrue(context.resetReasons().isEmpty());
    }

    @Test
    void hugeReportedLengthIsRefused() {
        activate();
        long a = pages(1, (byte) 1);
        report(a, 0xfffff000L);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertEquals(1, reportingVq().usedEntries().size());
        assertTrue(discarder.discarded.isEmpty());
    }

    @Test
    void reportWithDeviceReadableBuffersReleasesOnlyTheWritableOnes() {
        activate();
        long a = pages(2, (byte) 1);
        int[] d = reportingVq().reserveDescriptors(2);
        reportingVq().writeDescriptor(d[0], a, (int) PAGE, MockDriverQueue.DESC_F_NEXT, d[1]);
        reportingVq().writeDescriptor(d[1], a + PAGE, (int) PAGE, MockDriverQueue.DESC_F_WRITE, 0);
        reportingVq().makeAvailable(d[0]);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertEquals(1, reportingVq().usedEntries().size());
        assertReleased(discarder.discarded, a + PAGE, PAGE);
        assertEquals(1, balloon.rejected());
    }

    @Test
    void reportAcrossContiguousRegionsIsReleasedPerRegion() {
        ram.close();
        ram = TestGuestMemory.withRegions(0, 1 << 20, 1 << 20, 1 << 20);
        activate();
        report((1 << 20) - PAGE, 2 * PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertReleased(discarder.discarded, (1 << 20) - PAGE, PAGE, 1 << 20, PAGE);
    }

    @Test
    void reportingQueueIsIgnoredWhenTheDriverDidNotAcceptReporting() {
        activate(true, VirtioFeatures.VERSION_1 | VirtioBalloon.F_DEFLATE_ON_OOM, discarder);
        report(pages(1, (byte) 1), PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertTrue(reportingVq().usedEntries().isEmpty());
        assertTrue(discarder.discarded.isEmpty());
    }

    @Test
    void hostFailureToReleaseStillAcknowledgesTheReport() {
        discarder.failure = new PosixException("madvise", Errno.EINVAL);
        activate();
        report(pages(1, (byte) 1), PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertEquals(1, reportingVq().usedEntries().size(), "the guest must not wait forever");
        assertEquals(0, balloon.releasedBytes());
        assertTrue(context.resetReasons().isEmpty());
    }

    // ---- malformed queues, lifecycle

    @Test
    void loopingChainIsReturnedUnusedAndNothingReleased() {
        activate();
        long a = pages(1, (byte) 1);
        int[] d = reportingVq().reserveDescriptors(2);
        reportingVq().writeDescriptor(d[0], a, (int) PAGE, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[1]);
        reportingVq().writeDescriptor(d[1], a, (int) PAGE, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[0]);
        reportingVq().makeAvailable(d[0]);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        List<MockDriverQueue.Used> used = reportingVq().usedEntries();
        assertEquals(1, used.size());
        assertEquals(d[0], used.get(0).id());
        assertTrue(discarder.discarded.isEmpty());
        assertTrue(context.resetReasons().isEmpty());
    }

    @Test
    void indirectTableOutsideRamIsReturnedUnused() {
        activate();
        int[] d = inflateq().reserveDescriptors(1);
        inflateq().writeDescriptor(d[0], RAM + PAGE, 16, MockDriverQueue.DESC_F_INDIRECT, 0);
        inflateq().makeAvailable(d[0]);
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(1, inflateq().usedEntries().size());
        assertTrue(discarder.discarded.isEmpty());
    }

    @Test
    void headOutOfRangeAsksForResetAndStopsTheDevice() {
        activate();
        inflateq().makeAvailable(VirtioBalloon.QUEUE_SIZE + 1);
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertEquals(1, context.resetReasons().size());
        report(pages(1, (byte) 1), PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertTrue(reportingVq().usedEntries().isEmpty(), "nothing more until the driver resets the device");
        assertTrue(discarder.discarded.isEmpty());
    }

    @Test
    void noInterruptWhenTheDriverSuppressesThem() {
        activate();
        reportingVq().setNoInterrupt(true);
        report(pages(1, (byte) 1), PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        assertEquals(1, reportingVq().usedEntries().size());
        assertTrue(context.interrupts().isEmpty());
    }

    @Test
    void inactiveResetOrUnknownQueueIgnoresNotifications() {
        activate();
        inflateq().addReadable(pfns(1));
        balloon.queueNotify(3);
        balloon.queueNotify(-1);
        assertTrue(inflateq().usedEntries().isEmpty());
        balloon.reset();
        balloon.queueNotify(VirtioBalloon.INFLATEQ);
        assertTrue(inflateq().usedEntries().isEmpty());
        assertTrue(discarder.discarded.isEmpty());
        assertFalse(balloon.releasedBytes() > 0);
    }

    // ---- snapshots

    @Test
    void restoredBalloonKeepsActualAndServesTheNextReport() {
        activate();
        balloon.writeConfig(VirtioBalloon.CONFIG_ACTUAL, new byte[] {0x10, 0, 0, 0});
        long a = pages(2, (byte) 1);
        report(a, PAGE);
        balloon.queueNotify(VirtioBalloon.REPORTING_VQ);
        byte[] state = balloon.saveState();

        VirtioBalloon fresh = new VirtioBalloon(BalloonSpec.withFreePageReporting(), discarder);
        List<Virtqueue> restored = new ArrayList<>();
        for (int i = 0; i < queues.size(); i++) {
            Virtqueue q = new Virtqueue(queues.get(i).layout(), false);
            q.restoreIndices(context.queues().get(i).indices());
            restored.add(q);
        }
        FakeDeviceContext restoredContext = new FakeDeviceContext(ram.memory(), context.driverFeatures(), restored);
        fresh.restoreState(state); // before activation: the config the driver reads on resume
        fresh.activate(restoredContext);
        fresh.restoreState(state);
        assertEquals(0x10, readConfigInt(fresh, VirtioBalloon.CONFIG_ACTUAL));
        assertEquals(0, readConfigInt(fresh, VirtioBalloon.CONFIG_NUM_PAGES));
        int head = report(a + PAGE, PAGE);
        fresh.queueNotify(VirtioBalloon.REPORTING_VQ);
        List<MockDriverQueue.Used> used = reportingVq().usedEntries();
        assertEquals(2, used.size(), "the report before the snapshot and the one after the restore");
        assertEquals(head, used.get(1).id());
        assertEquals(1, fresh.freePageReports());
        assertReleased(discarder.discarded, a, PAGE, a + PAGE, PAGE);
        fresh.close();
    }

    @Test
    void tamperedOrMismatchedBalloonStateIsRefusedWithOneLine() {
        byte[] state = new VirtioBalloon(BalloonSpec.withFreePageReporting(), discarder).saveState();
        VirtioBalloon without = new VirtioBalloon(new BalloonSpec(false), discarder);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> without.restoreState(state));
        assertEquals("virtio-balloon: the snapshot's balloon had free page reporting on, this configuration's off", e.getMessage());
        VirtioBalloon with = new VirtioBalloon(BalloonSpec.withFreePageReporting(), discarder);
        e = assertThrows(IllegalArgumentException.class, () -> with.restoreState(java.util.Arrays.copyOf(state, 4)));
        assertEquals("virtio-balloon: saved state has 4 bytes, not 13", e.getMessage());
        byte[] target = state.clone();
        target[7] = 1;
        e = assertThrows(IllegalArgumentException.class, () -> with.restoreState(target));
        assertEquals("virtio-balloon: saved state asks for 1 pages; this device never does", e.getMessage());
        byte[] flag = state.clone();
        flag[12] = 7;
        assertThrows(IllegalArgumentException.class, () -> with.restoreState(flag));
    }
}
