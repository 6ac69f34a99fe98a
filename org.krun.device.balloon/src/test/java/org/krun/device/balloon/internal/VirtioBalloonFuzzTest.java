package org.krun.device.balloon.internal;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.api.BalloonSpec;
import org.krun.posix.Errno;
import org.krun.posix.PosixException;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-balloon (virtio 1.2 §5.5) with a hostile driver: inflate and deflate
 * requests whose page frame numbers lie inside RAM, across region boundaries, in the hole between regions,
 * past RAM or anywhere, in runs and repeated, arrays of odd lengths and arrays longer than the device's
 * bound (one buffer named many times); free page reports of buffers whole, partial, misaligned or outside
 * RAM; reporting_vq used without the feature; garbage descriptors; configuration writes of any width; host
 * release failures; resets. Guest RAM has three regions, two of them contiguous.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: every chain comes back at once; the device
 * releases only whole, page-aligned pages, each inside one RAM region's host mapping, never more per
 * inflate request than {@link BalloonRequests#MAX_PFNS_PER_REQUEST} pages; for requests built by the rules,
 * exactly the pages named that are RAM (inflate), exactly the whole-page buffers of a report that lies in RAM
 * and nothing of one that does not, and nothing on deflate or on reporting_vq without the feature;
 * {@code num_pages} stays 0 and {@code actual} holds what the driver wrote.
 */
class VirtioBalloonFuzzTest {

    private static final long PAGE = BalloonRequests.PAGE_SIZE;
    private static final long REGION0_SIZE = 1 << 20;
    private static final long REGION1 = 1 << 20; // contiguous with region 0
    private static final long REGION1_SIZE = 256 << 10;
    private static final long REGION2 = 1L << 32; // behind a hole, above 4 GiB
    private static final long REGION2_SIZE = 256 << 10;
    private static final int MAX_STEPS = 48;
    /**
     * Heap one request may cost: at most {@link BalloonRequests#MAX_PFNS_PER_REQUEST} host ranges (a segment
     * and a list slot each, about 100 bytes), the parse buffers, a chain.
     */
    private static final long MAX_REQUEST_ALLOCATION = 256L * BalloonRequests.MAX_PFNS_PER_REQUEST + (256 << 10);

    private static final TestGuestMemory MEMORY = TestGuestMemory.withRegions(0, REGION0_SIZE, REGION1, REGION1_SIZE,
            REGION2, REGION2_SIZE);

    static {
        FuzzBounds.quietLogs("org.krun.device.balloon");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-balloon",
            FuzzBounds.Limits.defaults().withAllocatedPerInput(MAX_STEPS * MAX_REQUEST_ALLOCATION),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void onlyWholeGuestPagesAreReleasedAndEveryRequestComesBack(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** Checks and records every range the device releases; fails on request. */
    private static final class CheckingDiscarder implements PageDiscarder {
        private static final PosixException FAILURE = new PosixException("madvise", Errno.EINVAL);

        long bytes;
        int calls;
        boolean failing;
        String violation;

        @Override
        public void discard(MemorySegment pages) {
            calls++;
            boolean inRegion = false;
            for (GuestRegion r : MEMORY.memory().regions()) {
                long start = r.host().address();
                if (pages.address() >= start && pages.address() + pages.byteSize() <= start + r.size()) {
                    inRegion = true;
                }
            }
            if (!inRegion || pages.address() % PAGE != 0 || pages.byteSize() % PAGE != 0 || pages.byteSize() == 0) {
                violation = "released host range 0x" + Long.toHexString(pages.address()) + " +" + pages.byteSize()
                        + (inRegion ? " (not whole pages)" : " outside guest RAM");
            }
            if (failing) {
                throw FAILURE; // one instance: the cost of the host's failure is not the device's
            }
            bytes += pages.byteSize();
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final GuestMemory mem = MEMORY.memory();
        private final CheckingDiscarder discarder = new CheckingDiscarder();
        private final boolean reportingOffered;
        private final long features;
        private final VirtioBalloon balloon;
        private List<MockDriverQueue> queues;
        private List<Virtqueue> deviceQueues;
        private FakeDeviceContext context;
        private final byte[] actual = new byte[4];
        /** Bytes the requests built by the rules must release, and whether garbage makes that unknown. */
        private long expectedBytes;
        private boolean garbage;

        Scenario(FuzzInput in) {
            this.in = in;
            MEMORY.clear();
            reportingOffered = in.bool();
            balloon = new VirtioBalloon(new BalloonSpec(reportingOffered), discarder);
            long offered = balloon.deviceFeatures() | VirtioFeatures.VERSION_1;
            features = in.bool() ? offered : offered & in.i64() | VirtioFeatures.VERSION_1;
            activate();
        }

        private void activate() {
            queues = new ArrayList<>();
            deviceQueues = new ArrayList<>();
            for (int i = 0; i < balloon.queueCount(); i++) {
                MockDriverQueue q = new MockDriverQueue(MEMORY, VirtioBalloon.QUEUE_SIZE);
                queues.add(q);
                deviceQueues.add(q.configuredQueue(in.bool()));
            }
            context = new FakeDeviceContext(mem, features, deviceQueues);
            balloon.activate(context);
        }

        private boolean reporting() {
            return reportingOffered && (features & VirtioBalloon.F_PAGE_REPORTING) != 0;
        }

        void run() {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    switch (in.below(10)) {
                        case 0, 1, 2 -> inflate();
                        case 3 -> deflate();
                        case 4, 5 -> report();
                        case 6 -> garbage(in.below(balloon.queueCount()));
                        case 7 -> configWrite();
                        case 8 -> discarder.failing = in.u8() < 32;
                        default -> {
                            if (in.u8() < 32) {
                                balloon.reset();
                                java.util.Arrays.fill(actual, (byte) 0);
                                activate();
                            }
                        }
                    }
                    check();
                }
            } finally {
                balloon.close();
            }
        }

        // ---- requests

        private long pfn() {
            return switch (in.below(8)) {
                case 0, 1 -> in.below((int) (REGION0_SIZE / PAGE));
                case 2 -> (REGION1 / PAGE) + in.below((int) (REGION1_SIZE / PAGE));
                case 3 -> REGION1 / PAGE - 1 + in.below(3); // across the region 0/1 boundary
                case 4 -> (REGION2 / PAGE) + in.below((int) (REGION2_SIZE / PAGE) + 2); // and past RAM's end
                case 5 -> (REGION1 + REGION1_SIZE) / PAGE + in.below(16); // the hole
                default -> in.i32() & 0xffffffffL;
            };
        }

        private boolean isRam(long pfn) {
            return mem.contains(pfn * PAGE, PAGE);
        }

        private void inflate() {
            int count = in.pick(0, 1, 2, 8, 256, 1 + in.below(600));
            ByteBuffer b = ByteBuffer.allocate(4 * count).order(ByteOrder.LITTLE_ENDIAN);
            long pages = 0;
            long run = -1;
            for (int i = 0; i < count; i++) {
                long pfn = run >= 0 && in.u8() < 128 ? run + 1 : pfn(); // runs of contiguous pages
                run = pfn & 0xffffffffL;
                b.putInt((int) pfn);
                pages += isRam(run) ? 1 : 0;
            }
            byte[] array = b.array();
            int repeat = in.u8() < 8 ? in.pick(2, 64, 300) : 1; // the same array named many times: beyond the bound
            int odd = in.u8() < 16 ? 1 + in.below(3) : 0; // a partial entry at the end
            long address = allocate(Math.max(1, array.length + odd));
            if (address < 0) {
                return;
            }
            mem.write(address, array);
            int[] d = reserve(repeat);
            if (d == null) {
                return;
            }
            MockDriverQueue q = queues.get(VirtioBalloon.INFLATEQ);
            for (int i = 0; i < repeat; i++) {
                boolean last = i + 1 == repeat;
                q.writeDescriptor(d[i], address, array.length + (last ? odd : 0), last ? 0 : MockDriverQueue.DESC_F_NEXT,
                        last ? 0 : d[i + 1]);
            }
            long entries = (long) count * repeat;
            long named = Math.min(entries, BalloonRequests.MAX_PFNS_PER_REQUEST);
            long releasedPages = named == entries ? pages * repeat
                    : pagesIn(array, named); // beyond the bound the rest is ignored
            if (!discarder.failing) {
                expectedBytes += releasedPages * PAGE;
            } else {
                garbage = true; // how much of it failed is the discarder's business
            }
            kick(VirtioBalloon.INFLATEQ, d[0]);
        }

        /** RAM pages among the first {@code entries} of {@code array} repeated. */
        private long pagesIn(byte[] array, long entries) {
            ByteBuffer b = ByteBuffer.wrap(array).order(ByteOrder.LITTLE_ENDIAN);
            int count = array.length / 4;
            long pages = 0;
            for (long k = 0; k < entries; k++) {
                pages += isRam(b.getInt((int) (k % count) * 4) & 0xffffffffL) ? 1 : 0;
            }
            return pages;
        }

        private void deflate() {
            int count = 1 + in.below(16);
            ByteBuffer b = ByteBuffer.allocate(4 * count).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < count; i++) {
                b.putInt((int) pfn());
            }
            try {
                kick(VirtioBalloon.DEFLATEQ, queues.get(VirtioBalloon.DEFLATEQ).addReadable(b.array()));
            } catch (IllegalStateException full) {
                // no descriptors or RAM left
            }
        }

        /** A free page report: device-writable buffers that are the free memory itself. */
        private void report() {
            if (balloon.queueCount() <= VirtioBalloon.REPORTING_VQ) {
                return;
            }
            int buffers = 1 + in.below(in.u8() < 16 ? 128 : 32);
            int[] d = reserve(buffers, VirtioBalloon.REPORTING_VQ);
            if (d == null) {
                return;
            }
            long bytes = 0;
            boolean allRam = true;
            for (int i = 0; i < buffers; i++) {
                long address;
                long length;
                switch (in.below(6)) {
                    case 0, 1 -> { // whole free pages
                        address = in.below((int) (REGION0_SIZE / PAGE)) * PAGE;
                        length = PAGE * (1 + in.below(8));
                    }
                    case 2 -> { // not whole pages
                        address = in.below((int) (REGION0_SIZE / PAGE)) * PAGE + in.below((int) PAGE);
                        length = 1 + in.below(8192);
                    }
                    case 3 -> { // across the region 0/1 boundary: RAM, but two regions
                        address = REGION1 - PAGE * (1 + in.below(2));
                        length = PAGE * (1 + in.below(4));
                    }
                    case 4 -> { // off the end of RAM, or in the hole
                        address = in.bool() ? REGION2 + REGION2_SIZE - PAGE : REGION1 + REGION1_SIZE;
                        length = PAGE * (1 + in.below(2));
                    }
                    default -> {
                        address = in.i64();
                        length = in.i32() & 0xffffffffL;
                    }
                }
                MockDriverQueue q = queues.get(VirtioBalloon.REPORTING_VQ);
                q.writeDescriptor(d[i], address, (int) length,
                        MockDriverQueue.DESC_F_WRITE | (i + 1 < buffers ? MockDriverQueue.DESC_F_NEXT : 0),
                        i + 1 < buffers ? d[i + 1] : 0);
                allRam &= length == 0 || ramRun(address, length);
                bytes += wholePagesReleased(address, length);
            }
            if (reporting() && allRam) {
                if (discarder.failing) {
                    garbage = true;
                } else {
                    expectedBytes += bytes;
                }
            }
            kick(VirtioBalloon.REPORTING_VQ, d[0]);
        }

        /** Whether {@code [address, address + length)} is RAM, possibly across contiguous regions. */
        private boolean ramRun(long address, long length) {
            long a = address;
            long left = length;
            while (left > 0) {
                GuestRegion r = null;
                for (GuestRegion g : mem.regions()) {
                    if (g.contains(a, 1)) {
                        r = g;
                    }
                }
                if (r == null) {
                    return false;
                }
                long n = Math.min(left, r.end() - a);
                a += n;
                left -= n;
            }
            return true;
        }

        /** What a reported buffer releases: its pieces per region that are whole pages (none are otherwise). */
        private long wholePagesReleased(long address, long length) {
            if (length == 0 || !ramRun(address, length)) {
                return 0;
            }
            long released = 0;
            long a = address;
            long left = length;
            while (left > 0) {
                GuestRegion r = null;
                for (GuestRegion g : mem.regions()) {
                    if (g.contains(a, 1)) {
                        r = g;
                    }
                }
                long n = Math.min(left, r.end() - a);
                if (a % PAGE == 0 && n % PAGE == 0) {
                    released += n;
                }
                a += n;
                left -= n;
            }
            return released;
        }

        private void garbage(int queue) {
            int n = 1 + in.below(4);
            int[] d = reserve(n, queue);
            if (d == null) {
                return;
            }
            garbage = true;
            for (int i = 0; i < n; i++) {
                queues.get(queue).writeDescriptor(d[i], in.pick(0, REGION1 - 4, REGION2, -4096, in.i64()),
                        in.pick(0, 4, 4096, -1, in.i32()), in.below(8) | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0),
                        i + 1 < n ? d[i + 1] : in.below(VirtioBalloon.QUEUE_SIZE + 2));
            }
            int head = in.u8() < 8 ? in.u16() : d[0];
            kick(queue, head);
        }

        private void configWrite() {
            int offset = in.below(VirtioBalloon.CONFIG_SIZE);
            int width = Math.min(in.pick(1, 2, 4, 8), VirtioBalloon.CONFIG_SIZE - offset);
            byte[] data = in.fixed(width);
            balloon.writeConfig(offset, data);
            for (int i = 0; i < width; i++) {
                int at = offset + i;
                if (at >= VirtioBalloon.CONFIG_ACTUAL && at < VirtioBalloon.CONFIG_ACTUAL + 4) {
                    actual[at - VirtioBalloon.CONFIG_ACTUAL] = data[i];
                }
            }
        }

        // ---- the device's side

        private long allocate(int bytes) {
            try {
                return MEMORY.allocate(bytes, 4);
            } catch (IllegalStateException full) {
                return -1;
            }
        }

        private int[] reserve(int n) {
            return reserve(n, VirtioBalloon.INFLATEQ);
        }

        private int[] reserve(int n, int queue) {
            MockDriverQueue q = queues.get(queue);
            return n <= q.freeDescriptorCount() ? q.reserveDescriptors(n) : null;
        }

        private void kick(int queue, int head) {
            MockDriverQueue q = queues.get(queue);
            q.makeAvailable(head);
            long before = FuzzBounds.threadAllocated();
            balloon.queueNotify(queue);
            long allocated = FuzzBounds.threadAllocated() - before;
            if (allocated > MAX_REQUEST_ALLOCATION) {
                throw new FuzzBounds.LimitExceeded("one request allocated " + allocated + " bytes (limit "
                        + MAX_REQUEST_ALLOCATION + ")");
            }
            q.usedEntries();
        }

        private void check() {
            if (discarder.violation != null) {
                throw new AssertionError(discarder.violation);
            }
            if (!garbage && discarder.bytes != expectedBytes) {
                throw new AssertionError("released " + discarder.bytes + " bytes, the requests named " + expectedBytes);
            }
            byte[] config = new byte[VirtioBalloon.CONFIG_SIZE];
            balloon.readConfig(0, config);
            ByteBuffer c = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
            if (c.getInt(VirtioBalloon.CONFIG_NUM_PAGES) != 0) {
                throw new AssertionError("num_pages " + c.getInt(VirtioBalloon.CONFIG_NUM_PAGES));
            }
            if (c.getInt(VirtioBalloon.CONFIG_ACTUAL) != ByteBuffer.wrap(actual).order(ByteOrder.LITTLE_ENDIAN).getInt()) {
                throw new AssertionError("actual " + c.getInt(VirtioBalloon.CONFIG_ACTUAL) + " is not what the driver wrote");
            }
            if (!context.resetReasons().isEmpty()) {
                return;
            }
            for (int q = 0; q < deviceQueues.size(); q++) {
                Virtqueue vq = deviceQueues.get(q);
                boolean served = q != VirtioBalloon.REPORTING_VQ || reporting();
                if (served && (vq.pending(mem) != 0 || vq.nextAvail() != vq.nextUsed())) {
                    throw new AssertionError("queue " + q + ": " + vq.pending(mem) + " chains left, " + vq.nextAvail()
                            + " taken, " + vq.nextUsed() + " returned");
                }
            }
        }
    }
}
