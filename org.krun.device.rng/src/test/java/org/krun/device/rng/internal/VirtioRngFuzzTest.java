package org.krun.device.rng.internal;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
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
 * Coverage-guided fuzzing of virtio-rng (virtio 1.2 §5.4) with a hostile driver: requests of one or many
 * device-writable buffers of any size (empty, larger than the device's bound, four gigabytes), across RAM
 * region boundaries, into the hole between regions and off the end of RAM, with device-readable buffers
 * mixed in, indirect or not, garbage descriptors, the avail index moved anywhere, host entropy failures,
 * resets. Guest RAM has three regions, two of them contiguous.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: every chain comes back (unless the device asked
 * for a reset); the host fills only guest RAM, inside one region's mapping at a time; each chain gets exactly
 * min(its writable bytes, {@link VirtioRng#MAX_BYTES_PER_REQUEST}) bytes when all of them are RAM and nothing
 * otherwise, and its used length says so; a host failure asks for a reset and serves nothing more.
 */
class VirtioRngFuzzTest {

    private static final long REGION0_SIZE = 512 << 10;
    private static final long REGION1 = 512 << 10; // contiguous with region 0
    private static final long REGION1_SIZE = 128 << 10;
    private static final long REGION2 = 1 << 20; // behind a hole
    private static final long REGION2_SIZE = 128 << 10;
    private static final int MAX_STEPS = 64;
    /** Where request buffers go in region 0, clear of the rings the driver lays out from its start. */
    private static final long BUFFERS = 256 << 10;

    private static final TestGuestMemory MEMORY = TestGuestMemory.withRegions(0, REGION0_SIZE, REGION1, REGION1_SIZE,
            REGION2, REGION2_SIZE);

    static {
        FuzzBounds.quietLogs("org.krun.device.rng");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-rng", FuzzBounds.Limits.defaults(),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void randomBytesGoOnlyIntoTheGuestsBuffers(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** Fills with a pattern, checking every destination; fails on request. */
    private static final class CheckingSource implements EntropySource {
        private static final PosixException FAILURE = new PosixException("getrandom", Errno.EIO);
        long filled;
        boolean failing;
        String violation;

        @Override
        public void fill(MemorySegment destination) {
            boolean inRegion = false;
            for (GuestRegion r : MEMORY.memory().regions()) {
                long start = r.host().address();
                inRegion |= destination.address() >= start && destination.address() + destination.byteSize() <= start + r.size();
            }
            if (!inRegion) {
                violation = "filled host memory outside guest RAM at 0x" + Long.toHexString(destination.address());
            }
            if (failing) {
                throw FAILURE;
            }
            destination.fill((byte) 0xa5);
            filled += destination.byteSize();
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final GuestMemory mem = MEMORY.memory();
        private final CheckingSource source = new CheckingSource();
        private final VirtioRng rng = new VirtioRng(source);
        private MockDriverQueue driver;
        private Virtqueue queue;
        private FakeDeviceContext context;
        /** Bytes each outstanding chain built by the rules must get, by head; -1 when the device may refuse it. */
        private final Map<Integer, Long> expected = new HashMap<>();
        private long expectedTotal;
        private boolean garbage;

        Scenario(FuzzInput in) {
            this.in = in;
            MEMORY.clear();
            activate();
        }

        private void activate() {
            driver = new MockDriverQueue(MEMORY, VirtioRng.QUEUE_SIZE);
            queue = driver.configuredQueue(in.bool());
            context = new FakeDeviceContext(mem, VirtioFeatures.VERSION_1, List.of(queue));
            rng.activate(context);
            expected.clear();
        }

        void run() {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    switch (in.below(8)) {
                        case 0, 1, 2 -> request();
                        case 3 -> garbageChain();
                        case 4 -> {
                            garbage = true;
                            driver.setAvailIndex(driver.availIndex() + in.pick(1, 2, VirtioRng.QUEUE_SIZE, in.u16()));
                        }
                        case 5 -> source.failing = in.u8() < 16;
                        case 6 -> {
                            if (in.u8() < 32) {
                                rng.reset();
                                activate();
                            }
                        }
                        default -> {
                        }
                    }
                    kick();
                }
            } finally {
                rng.close();
            }
        }

        /** A request of buffers the driver chose, all placed by the rules (inside RAM or deliberately not). */
        private void request() {
            int n = 1 + in.below(in.u8() < 16 ? 40 : 4);
            if (n > driver.freeDescriptorCount()) {
                return;
            }
            int[] d = driver.reserveDescriptors(n);
            long writable = 0;
            List<long[]> buffers = new ArrayList<>();
            boolean readableMixedIn = false;
            for (int i = 0; i < n; i++) {
                long length = switch (in.below(6)) {
                    case 0, 1 -> 1 + in.below(256);
                    case 2 -> 0;
                    case 3 -> VirtioRng.MAX_BYTES_PER_REQUEST + in.below(3) - 1;
                    case 4 -> 0xffffffffL;
                    default -> 1 + in.below(8192);
                };
                long address = switch (in.below(6)) {
                    case 0, 1 -> BUFFERS + in.below((int) (REGION0_SIZE - BUFFERS));
                    case 2 -> REGION1 - in.below(4096); // across the region 0/1 boundary
                    case 3 -> REGION1 + REGION1_SIZE - in.below(4096); // into the hole
                    case 4 -> REGION2 + REGION2_SIZE - in.below(4096); // off the end of RAM
                    default -> REGION2 + in.below((int) REGION2_SIZE);
                };
                boolean readable = i == 0 && in.u8() < 16; // the spec forbids it; the device ignores it
                readableMixedIn |= readable;
                int flags = (readable ? 0 : MockDriverQueue.DESC_F_WRITE) | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0);
                driver.writeDescriptor(d[i], address, (int) length, flags, i + 1 < n ? d[i + 1] : 0);
                if (!readable) {
                    writable += length;
                    buffers.add(new long[] {address, length});
                }
            }
            long want = Math.min(writable, VirtioRng.MAX_BYTES_PER_REQUEST);
            expected.put(d[0], allRam(buffers, want) ? want : 0);
            driver.makeAvailable(d[0]);
        }

        /** Whether the first {@code length} bytes of the buffers, as one stream, are all RAM. */
        private boolean allRam(List<long[]> buffers, long length) {
            long left = length;
            for (long[] b : buffers) {
                if (left == 0) {
                    break;
                }
                long n = Math.min(left, b[1]);
                if (!ramRun(b[0], n)) {
                    return false;
                }
                left -= n;
            }
            return true;
        }

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

        private void garbageChain() {
            int n = 1 + in.below(4);
            if (n > driver.freeDescriptorCount()) {
                return;
            }
            garbage = true;
            int[] d = driver.reserveDescriptors(n);
            for (int i = 0; i < n; i++) {
                driver.writeDescriptor(d[i], in.pick(BUFFERS, REGION1 - 1, REGION2, -4096, in.i64()), in.pick(0, 1, 4096, -1, in.i32()),
                        in.below(8) | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0),
                        i + 1 < n ? d[i + 1] : in.below(VirtioRng.QUEUE_SIZE + 2));
            }
            driver.makeAvailable(in.u8() < 8 ? in.u16() : d[0]);
        }

        private void kick() {
            boolean wasFailing = source.failing;
            long filledBefore = source.filled;
            rng.queueNotify(VirtioRng.REQUESTQ);
            if (source.violation != null) {
                throw new AssertionError(source.violation);
            }
            if (driver.usedIndex() != queue.nextUsed()) {
                garbage = true; // a garbage buffer was the used ring itself: the driver broke its own ring
                return;
            }
            for (MockDriverQueue.Used u : driver.usedEntriesWithoutData()) {
                Long want = expected.remove(u.id());
                if (want == null || garbage) {
                    continue;
                }
                long got = Integer.toUnsignedLong(u.len());
                if (got != want && !(wasFailing && got == 0)) {
                    throw new AssertionError("chain " + u.id() + " returned with " + got + " bytes, the driver expected " + want);
                }
                expectedTotal += wasFailing ? 0 : want;
            }
            if (!garbage && !wasFailing && source.filled - filledBefore != 0 && source.filled != expectedTotal) {
                throw new AssertionError("the host filled " + source.filled + " bytes, the chains returned say " + expectedTotal);
            }
            if (wasFailing && source.filled != filledBefore) {
                throw new AssertionError("bytes filled while the host source fails");
            }
            if (!context.resetReasons().isEmpty()) {
                return; // the device stopped serving, as the spec allows; the driver must reset it
            }
            if (queue.pending(mem) != 0 || queue.nextAvail() != queue.nextUsed()) {
                throw new AssertionError(queue.pending(mem) + " chains left, " + queue.nextAvail() + " taken, "
                        + queue.nextUsed() + " returned");
            }
        }
    }
}
