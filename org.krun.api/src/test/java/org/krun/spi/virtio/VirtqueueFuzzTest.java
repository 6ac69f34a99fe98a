package org.krun.spi.virtio;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.memory.GuestRegion;
import org.krun.spi.memory.TestGuestMemory;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of the split virtqueue (virtio 1.2 §2.7) as a hostile driver drives it: the
 * input writes the descriptor table, an indirect table, the avail ring and its index, {@code used_event}
 * and the flags, in any order between the device's {@code pop}, {@code popValid}, {@code addUsed},
 * {@code needsInterrupt} and {@code enableNotification}, and reads and writes the chains it gets through
 * {@link ChainReader} and {@link ChainWriter}. Guest RAM has three regions, two contiguous and one behind
 * a hole, so buffers straddle region boundaries and run off the end of RAM.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: a chain is taken exactly when the rules of
 * §2.7.5 (checked against a model written from them here) say it is well formed, and then it holds exactly
 * the model's buffers, at most {@link Virtqueue#MAX_CHAIN_DESCRIPTORS}; a malformed one is refused naming its
 * head, and a broken ring (avail idx moved by more than the queue size, a head out of range) with head -1;
 * only {@link InvalidChainException}, {@link GuestMemoryException} and {@link ShortChainException} ever come
 * out; reads return guest bytes and fail exactly at the first byte outside RAM; writes land exactly in the
 * writable buffers; the device writes nothing outside them and the used ring; the used ring, its index,
 * {@code avail_event}, {@code NO_NOTIFY} and the interrupt decisions (§2.7.7, §2.7.10) follow the model.
 */
class VirtqueueFuzzTest {

    private static final long REGION0 = 0;
    private static final long REGION0_SIZE = 0x20000;
    private static final long REGION1 = 0x20000; // contiguous with region 0
    private static final long REGION1_SIZE = 0x8000;
    private static final long REGION2 = 0x30000; // behind a hole
    private static final long REGION2_SIZE = 0x8000;

    private static final long DESC = 0x0;
    private static final long AVAIL = 0x4000;
    private static final long USED = 0x5000;
    private static final long INDIRECT = 0x8000;
    private static final int INDIRECT_ENTRIES = 256;
    private static final long DATA = 0x10000; // to the end of region 1, then the hole
    private static final int MAX_LOG2_SIZE = 10;
    private static final int MAX_OPERATIONS = 256;
    /** Bytes one read or write operation moves at most: bounds the work per input, not the chain. */
    private static final int MAX_TRANSFER = 64 * 1024;
    /**
     * Heap one pop may allocate: the flattened chain, {@link Virtqueue#MAX_CHAIN_DESCRIPTORS} addresses and
     * lengths (12 bytes each, arrays grown by doubling), whatever lengths the descriptors claim.
     */
    private static final long MAX_POP_ALLOCATION = 3L * 12 * Virtqueue.MAX_CHAIN_DESCRIPTORS + 16 * 1024;
    /** The harness's own buffer for reads and writes. */
    private static final byte[] TRANSFER = new byte[4096];

    private static final TestGuestMemory RAM = TestGuestMemory.withRegions(REGION0, REGION0_SIZE, REGION1,
            REGION1_SIZE, REGION2, REGION2_SIZE);
    /** What guest RAM must hold apart from the used ring, per region: the driver's writes and the chain writes. */
    private static final byte[][] EXPECTED = {new byte[(int) REGION0_SIZE], new byte[(int) REGION1_SIZE],
            new byte[(int) REGION2_SIZE]};

    /** Per input: {@value #MAX_OPERATIONS} operations, each a pop (bounded above) or a bounded transfer. */
    private static final FuzzBounds BOUNDS = new FuzzBounds("virtqueue",
            FuzzBounds.Limits.defaults().withAllocatedPerInput(MAX_OPERATIONS * (MAX_POP_ALLOCATION + 64 * 1024)),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void hostileRingsAreRefusedOrServedExactly(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** One buffer of a chain as the model reads it. */
    private record Buffer(long address, long length, boolean writable) {
    }

    /** One input: a queue, a driver and the device's calls on it. */
    private static final class Scenario {
        private final FuzzInput in;
        private final GuestMemory mem = RAM.memory();
        private final byte[][] expected = EXPECTED;
        private final int size;
        private final boolean eventIdx;
        private final Virtqueue queue;
        private final FakeDeviceContext context;

        private final List<DescriptorChain> outstanding = new ArrayList<>();
        /** The driver's avail idx (what it last published is in RAM). */
        private int availIdx;
        /** The model of the device's indices. */
        private int nextAvail;
        private int nextUsed;
        private int signalled;
        private int availEvent;
        private int usedFlags;
        /** (head, length) of every used element the device added, in order. */
        private final List<long[]> usedElements = new ArrayList<>();
        private boolean broken;
        /** A chain write hit the used ring: the driver broke its own ring, whose contents prove nothing now. */
        private boolean usedRingClobbered;

        Scenario(FuzzInput in) {
            this.in = in;
            for (GuestRegion r : mem.regions()) {
                r.host().fill((byte) 0);
            }
            for (byte[] e : expected) {
                Arrays.fill(e, (byte) 0);
            }
            size = 1 << in.below(MAX_LOG2_SIZE + 1);
            eventIdx = in.bool();
            queue = new Virtqueue(new QueueLayout(size, DESC, AVAIL, USED), eventIdx);
            context = new FakeDeviceContext(mem, 0, List.of(queue));
            // Data the driver put in guest RAM, so reads have something to compare.
            byte[] data = in.bytes(4096);
            int half = data.length / 2;
            driverWrite(REGION1 - half, Arrays.copyOfRange(data, 0, half));
            driverWrite(REGION1, Arrays.copyOfRange(data, half, data.length));
            driverWrite(REGION2, data);
            for (int i = 0; i < size && !in.exhausted(); i++) {
                writeDescriptor(DESC, i, size);
            }
            int indirect = in.below(INDIRECT_ENTRIES + 1);
            for (int i = 0; i < indirect && !in.exhausted(); i++) {
                writeDescriptor(INDIRECT, i, indirect);
            }
        }

        void run() {
            for (int op = 0; op < MAX_OPERATIONS && !in.exhausted() && !broken; op++) {
                switch (in.below(10)) {
                    case 0, 1 -> publish(1 + in.below(4));
                    case 2 -> driverSetShort(AVAIL + 2, availIdx = in.u16());
                    case 3 -> pop();
                    case 4 -> returnOutstanding(in.below(Math.max(1, outstanding.size())), in.i32());
                    case 5 -> checkNeedsInterrupt();
                    case 6 -> checkEnableNotification(in.bool());
                    case 7 -> {
                        if (in.bool()) {
                            driverSetShort(AVAIL + 4 + 2L * size, in.u16()); // used_event
                        } else {
                            driverSetShort(AVAIL, in.u16()); // avail flags
                        }
                    }
                    case 8 -> {
                        if (in.bool()) {
                            writeDescriptor(DESC, in.below(size), size);
                        } else {
                            writeDescriptor(INDIRECT, in.below(INDIRECT_ENTRIES), INDIRECT_ENTRIES);
                        }
                    }
                    default -> popValid();
                }
            }
            while (!outstanding.isEmpty()) {
                returnOutstanding(0, 0);
            }
            checkRam();
        }

        // ---- the driver

        private void writeDescriptor(long table, int index, int entries) {
            long address = switch (in.below(7)) {
                case 0, 1 -> DATA + 2L * in.u16(); // the data area, across the region 0/1 boundary, into the hole
                case 2 -> INDIRECT + 16L * in.below(INDIRECT_ENTRIES);
                case 3 -> REGION1 + REGION1_SIZE - in.below(4096); // runs into the hole
                case 4 -> REGION2 + REGION2_SIZE - in.below(4096); // runs off the end of RAM
                case 5 -> in.i64();
                default -> REGION2 + in.below((int) REGION2_SIZE);
            };
            int length = switch (in.below(6)) {
                case 0 -> in.u8();
                case 1 -> in.u16();
                case 2 -> 16 * in.below(300);
                case 3 -> in.i32();
                case 4 -> 0;
                default -> 1 + in.below(4096);
            };
            int flags = in.bool() ? in.below(8) : in.u16();
            int next = in.bool() ? in.below(entries + 1) : in.u16();
            long d = table + 16L * index;
            driverSetLong(d, address);
            driverSetInt(d + 8, length);
            driverSetShort(d + 12, flags);
            driverSetShort(d + 14, next);
        }

        private void publish(int chains) {
            for (int k = 0; k < chains; k++) {
                int head = in.bool() ? in.below(size) : in.pick(size, size + 1, 0xffff, in.u16());
                driverSetShort(AVAIL + 4 + 2L * (availIdx % size), head);
                availIdx = (availIdx + 1) & 0xffff;
            }
            driverSetShort(AVAIL + 2, availIdx);
        }

        /** Writes {@code data} at {@code address}, inside one region. */
        private void driverWrite(long address, byte[] data) {
            mem.write(address, data);
            int r = regionOf(address);
            System.arraycopy(data, 0, expected[r], (int) (address - regionStart(r)), data.length);
        }

        private void driverSetByte(long address, int value) {
            mem.setByte(address, (byte) value);
            expectedSet(address, (byte) value);
        }

        private void driverSetShort(long address, int value) {
            driverSetByte(address, value);
            driverSetByte(address + 1, value >>> 8);
        }

        private void driverSetInt(long address, int value) {
            driverSetShort(address, value);
            driverSetShort(address + 2, value >>> 16);
        }

        private void driverSetLong(long address, long value) {
            driverSetInt(address, (int) value);
            driverSetInt(address + 4, (int) (value >>> 32));
        }

        private void expectedSet(long address, byte value) {
            int r = regionOf(address);
            if (r >= 0) {
                expected[r][(int) (address - regionStart(r))] = value;
            }
        }

        private int expectedShort(long address) {
            int r = regionOf(address);
            int at = (int) (address - regionStart(r));
            return (expected[r][at] & 0xff) | (expected[r][at + 1] & 0xff) << 8;
        }

        // ---- the device

        /** The avail idx in guest RAM: the driver's, unless a chain write overwrote it. */
        private int publishedIdx() {
            return expectedShort(AVAIL + 2);
        }

        private void pop() {
            int pending = (publishedIdx() - nextAvail) & 0xffff;
            if (pending != queue.pending(mem)) {
                throw new AssertionError("pending " + queue.pending(mem) + ", the driver published " + pending);
            }
            DescriptorChain chain;
            long allocatedBefore = FuzzBounds.threadAllocated();
            try {
                chain = queue.pop(mem);
            } catch (InvalidChainException e) {
                checkPopAllocation(allocatedBefore);
                expectRefusal(pending, e);
                return;
            }
            checkPopAllocation(allocatedBefore);
            if (pending == 0) {
                if (chain != null) {
                    throw new AssertionError("a chain popped from an empty ring");
                }
                return;
            }
            if (chain == null) {
                throw new AssertionError(pending + " chains available, pop returned none");
            }
            int head = takeHead(pending);
            List<Buffer> model = model(head);
            if (head >= size || model == null) {
                throw new AssertionError("chain " + head + " accepted, the model refuses it");
            }
            checkIndices();
            checkChain(chain, head, model);
            outstanding.add(chain);
        }

        private static void checkPopAllocation(long before) {
            long allocated = FuzzBounds.threadAllocated() - before;
            if (allocated > MAX_POP_ALLOCATION) {
                throw new FuzzBounds.LimitExceeded("one pop allocated " + allocated + " bytes (limit " + MAX_POP_ALLOCATION + ")");
            }
        }

        /** The model's side of taking a head: returns it; the device's nextAvail and avail_event follow. */
        private int takeHead(int pending) {
            if (pending > size) {
                return -1;
            }
            int head = expectedShort(AVAIL + 4 + 2L * (nextAvail % size));
            nextAvail = (nextAvail + 1) & 0xffff;
            if (eventIdx) {
                availEvent = nextAvail;
            }
            return head;
        }

        private void expectRefusal(int pending, InvalidChainException e) {
            if (pending == 0) {
                throw new AssertionError("refused a chain from an empty ring: " + e.getMessage());
            }
            int head = takeHead(pending);
            if (head < 0 || head >= size) {
                if (e.head() != -1) {
                    throw new AssertionError("a broken ring (head " + head + ", " + pending + " pending) refused as chain "
                            + e.head());
                }
                broken = true; // a device asks for reset: nothing more is served
                checkIndices();
                return;
            }
            if (model(head) != null) {
                throw new AssertionError("well-formed chain " + head + " refused: " + e.getMessage());
            }
            if (e.head() != head) {
                throw new AssertionError("malformed chain " + head + " refused as " + e.head());
            }
            queue.addUsed(mem, head, 0);
            recordUsed(head, 0);
            checkIndices();
        }

        private void popValid() {
            int usedBefore = usedElements.size();
            List<String> malformed = new ArrayList<>();
            DescriptorChain chain = queue.popValid(mem, context, malformed::add);
            // Replay the model: malformed chains come back with length 0 until a good one, none, or a broken ring.
            while (true) {
                int pending = (publishedIdx() - nextAvail) & 0xffff;
                if (pending == 0) {
                    if (chain != null || !context.resetReasons().isEmpty()) {
                        throw new AssertionError("popValid on an empty ring returned " + chain);
                    }
                    break;
                }
                int head = takeHead(pending);
                if (head < 0 || head >= size) {
                    if (chain != null || context.resetReasons().isEmpty()) {
                        throw new AssertionError("popValid on a broken ring did not ask for a reset");
                    }
                    broken = true;
                    break;
                }
                List<Buffer> model = model(head);
                if (model == null) {
                    recordUsed(head, 0);
                    continue;
                }
                if (chain == null) {
                    throw new AssertionError("popValid skipped well-formed chain " + head);
                }
                checkChain(chain, head, model);
                outstanding.add(chain);
                break;
            }
            if (malformed.size() != usedElements.size() - usedBefore) {
                throw new AssertionError(malformed.size() + " malformed chains reported, "
                        + (usedElements.size() - usedBefore) + " returned");
            }
            checkIndices();
        }

        private void returnOutstanding(int index, int length) {
            if (outstanding.isEmpty()) {
                return;
            }
            DescriptorChain chain = outstanding.remove(index);
            queue.addUsed(mem, chain.head(), length);
            recordUsed(chain.head(), length);
            checkIndices();
        }

        private void recordUsed(int head, int length) {
            usedElements.add(new long[] {head, length});
            nextUsed = (nextUsed + 1) & 0xffff;
        }

        private void checkNeedsInterrupt() {
            boolean got = queue.needsInterrupt(mem);
            boolean want;
            if (signalled == nextUsed) {
                want = false;
            } else {
                int old = signalled;
                signalled = nextUsed;
                if (eventIdx) {
                    int usedEvent = expectedShort(AVAIL + 4 + 2L * size);
                    want = ((nextUsed - usedEvent - 1) & 0xffff) < ((nextUsed - old) & 0xffff); // §2.7.7.2
                } else {
                    want = (expectedShort(AVAIL) & 1) == 0; // VIRTQ_AVAIL_F_NO_INTERRUPT
                }
            }
            if (got != want) {
                throw new AssertionError("needsInterrupt " + got + ", the model says " + want);
            }
        }

        private void checkEnableNotification(boolean enable) {
            boolean pending = queue.enableNotification(mem, enable);
            if (eventIdx) {
                if (enable) {
                    availEvent = nextAvail;
                }
            } else {
                usedFlags = enable ? 0 : 1;
            }
            if (pending != (((publishedIdx() - nextAvail) & 0xffff) != 0)) {
                throw new AssertionError("enableNotification reported pending " + pending);
            }
            checkIndices();
        }

        private void checkIndices() {
            if (queue.nextAvail() != nextAvail || queue.nextUsed() != nextUsed) {
                throw new AssertionError("device indices " + queue.nextAvail() + "/" + queue.nextUsed() + ", model "
                        + nextAvail + "/" + nextUsed);
            }
            if (usedRingClobbered) {
                return;
            }
            int usedIdx = mem.getShort(USED + 2) & 0xffff;
            if (usedIdx != nextUsed) {
                throw new AssertionError("used idx " + usedIdx + ", " + nextUsed + " elements added");
            }
            if (eventIdx && (mem.getShort(USED + 4 + 8L * size) & 0xffff) != availEvent) {
                throw new AssertionError("avail_event " + (mem.getShort(USED + 4 + 8L * size) & 0xffff) + ", model "
                        + availEvent);
            }
            if ((mem.getShort(USED) & 0xffff) != usedFlags) {
                throw new AssertionError("used flags " + mem.getShort(USED) + ", model " + usedFlags);
            }
        }

        /** At the end: the used elements are the ones added, and nothing else in RAM changed unexpectedly. */
        private void checkRam() {
            int shown = usedRingClobbered ? 0 : Math.min(size, usedElements.size());
            for (int k = 0; k < shown; k++) {
                int idx = nextUsed - shown + k;
                long slot = USED + 4 + 8L * ((idx & 0xffff) % size);
                long[] e = usedElements.get(usedElements.size() - shown + k);
                if (mem.getInt(slot) != (int) e[0] || mem.getInt(slot + 4) != (int) e[1]) {
                    throw new AssertionError("used element " + idx + " is (" + mem.getInt(slot) + ", " + mem.getInt(slot + 4)
                            + "), (" + e[0] + ", " + e[1] + ") was added");
                }
            }
            for (int r = 0; r < 3; r++) {
                MemorySegment actual = mem.regions().get(r).host();
                MemorySegment want = MemorySegment.ofArray(expected[r]);
                long from = 0;
                while (true) {
                    long at = actual.asSlice(from).mismatch(want.asSlice(from));
                    if (at < 0) {
                        break;
                    }
                    long address = regionStart(r) + from + at;
                    if (!inUsedRing(address)) {
                        throw new AssertionError("guest byte 0x" + Long.toHexString(address) + " changed to "
                                + actual.get(JAVA_BYTE, from + at) + " (expected " + expected[r][(int) (from + at)] + ")");
                    }
                    from += at + 1;
                }
            }
        }

        // ---- one chain

        private void checkChain(DescriptorChain chain, int head, List<Buffer> model) {
            if (chain.head() != head) {
                throw new AssertionError("chain head " + chain.head() + ", the ring says " + head);
            }
            if (chain.descriptorCount() != model.size() || chain.descriptorCount() > Virtqueue.MAX_CHAIN_DESCRIPTORS) {
                throw new AssertionError("chain " + head + " has " + chain.descriptorCount() + " descriptors, model "
                        + model.size());
            }
            long readable = 0;
            long writable = 0;
            for (Buffer b : model) {
                if (b.writable()) {
                    writable += b.length();
                } else {
                    readable += b.length();
                }
            }
            if (chain.readableBytes() != readable || chain.writableBytes() != writable) {
                throw new AssertionError("chain " + head + " offers " + chain.readableBytes() + "/" + chain.writableBytes()
                        + " bytes, model " + readable + "/" + writable);
            }
            List<Buffer> readables = model.stream().filter(b -> !b.writable()).toList();
            List<Buffer> writables = model.stream().filter(Buffer::writable).toList();
            int what = in.below(4);
            if (what == 1) {
                checkRead(chain, readables);
            } else if (what == 2) {
                checkWrite(chain, writables);
            } else if (what == 3) {
                checkReadBytes(chain, readables);
            }
        }

        /** Reads in pieces of the input's choosing; bytes must match and the fault come exactly where RAM ends. */
        private void checkRead(DescriptorChain chain, List<Buffer> buffers) {
            ChainReader r = chain.reader(mem);
            long skip = Math.min(r.remaining(), in.bool() ? in.u16() : 0);
            r.skip(skip); // skipping touches no memory
            long firstBad = firstOutsideRam(buffers, skip, MAX_TRANSFER + TRANSFER.length); // the last read may pass the bound
            long pos = skip;
            while (r.remaining() > 0 && pos - skip < MAX_TRANSFER) {
                int want = 1 + in.below(4096);
                byte[] dst = TRANSFER;
                long end = pos + Math.min(want, r.remaining());
                int n;
                try {
                    n = r.read(dst, 0, want);
                } catch (GuestMemoryException e) {
                    if (firstBad < pos || firstBad >= end) {
                        throw new AssertionError("read of [" + pos + ", " + end + ") faulted; first byte outside RAM at "
                                + firstBad + " of " + buffers + ": " + e.getMessage());
                    }
                    return;
                }
                if (firstBad >= pos && firstBad < pos + n) {
                    throw new AssertionError("read of [" + pos + ", " + (pos + n) + ") passed byte " + firstBad
                            + ", which is outside RAM");
                }
                long from = pos;
                walk(buffers, pos, n, (i, address) -> {
                    byte model = byteAtAddress(address);
                    if (dst[i] != model) {
                        throw new AssertionError("read byte " + (from + i) + " is " + dst[i] + ", guest RAM holds " + model);
                    }
                });
                pos += n;
            }
        }

        /** readBytes/readU16/readInt/readLong/readAll: all or nothing, never more than the chain holds. */
        private void checkReadBytes(DescriptorChain chain, List<Buffer> buffers) {
            ChainReader r = chain.reader(mem);
            long total = r.remaining();
            int want = switch (in.below(5)) {
                case 0 -> 2;
                case 1 -> 4;
                case 2 -> 8;
                case 3 -> (int) Math.min(total, MAX_TRANSFER);
                default -> in.u16();
            };
            long firstBad = firstOutsideRam(buffers, 0, want);
            try {
                byte[] b = r.readBytes(want);
                if (want > total) {
                    throw new AssertionError("readBytes(" + want + ") of a " + total + "-byte chain succeeded");
                }
                if (firstBad < want) {
                    throw new AssertionError("readBytes(" + want + ") passed byte " + firstBad + ", outside RAM");
                }
                walk(buffers, 0, want, (i, address) -> {
                    if (b[i] != byteAtAddress(address)) {
                        throw new AssertionError("readBytes byte " + i + " differs from guest RAM");
                    }
                });
            } catch (ShortChainException e) {
                if (want <= total) {
                    throw new AssertionError("readBytes(" + want + ") of a " + total + "-byte chain: " + e.getMessage());
                }
            } catch (GuestMemoryException e) {
                if (want > total || firstBad >= want) {
                    throw new AssertionError("readBytes(" + want + ") faulted in RAM: " + e.getMessage());
                }
            }
        }

        /** Writes a pattern with writeSome in pieces; it must land exactly in the writable buffers. */
        private void checkWrite(DescriptorChain chain, List<Buffer> buffers) {
            ChainWriter w = chain.writer(mem);
            long pos = 0;
            byte seed = (byte) in.u8();
            while (w.remaining() > 0 && pos < MAX_TRANSFER) {
                int want = 1 + in.below(4096);
                byte[] src = TRANSFER;
                for (int i = 0; i < want; i++) {
                    src[i] = (byte) (seed + pos + i);
                }
                long before = w.position();
                long end = pos + Math.min(want, w.remaining());
                int n;
                try {
                    n = w.writeSome(src, 0, want);
                } catch (GuestMemoryException e) {
                    // Whole pieces before the one that faulted are written: find where the fault is and model them.
                    long firstBad = firstOutsideRam(buffers, pos, end - pos);
                    if (firstBad < pos || firstBad >= end) {
                        throw new AssertionError("write of [" + pos + ", " + end + ") faulted in RAM");
                    }
                    long pieceStart = Math.max(pos, bufferStart(buffers, firstBad));
                    walk(buffers, pos, pieceStart - pos, (i, address) -> expectedSetAtAddress(address, src[i]));
                    return;
                }
                if (w.position() - before != n) {
                    throw new AssertionError("writer position moved by " + (w.position() - before) + " for " + n + " bytes");
                }
                long firstBad = firstOutsideRam(buffers, pos, n);
                if (firstBad < pos + n) {
                    throw new AssertionError("write of [" + pos + ", " + (pos + n) + ") passed byte " + firstBad
                            + ", which is outside RAM");
                }
                walk(buffers, pos, n, (i, address) -> expectedSetAtAddress(address, src[i]));
                pos += n;
            }
        }

        // ---- the model of a chain (virtio 1.2 §2.7.5, §2.7.5.3)

        /** The chain at {@code head} as the rules make it, or null when it is malformed. */
        private List<Buffer> model(int head) {
            List<Buffer> out = new ArrayList<>();
            long table = DESC;
            long tableSize = size;
            int index = head;
            boolean inIndirect = false;
            boolean sawWritable = false;
            int visited = 0;
            while (true) {
                if (++visited > tableSize) {
                    return null; // a loop, or longer than its table
                }
                long d = table + 16L * index;
                long address = expectedLong(d);
                long length = expectedInt(d + 8) & 0xffffffffL;
                int flags = expectedShort(d + 12);
                int next = expectedShort(d + 14);
                if ((flags & 4) != 0) { // INDIRECT
                    if (inIndirect || (flags & 1) != 0 || length == 0 || length % 16 != 0
                            || length / 16 > Virtqueue.MAX_CHAIN_DESCRIPTORS || !inOneRegion(address, length)) {
                        return null;
                    }
                    inIndirect = true;
                    table = address;
                    tableSize = length / 16;
                    index = 0;
                    visited = 0;
                    continue;
                }
                boolean writable = (flags & 2) != 0;
                if (!writable && sawWritable) {
                    return null; // readable after writable
                }
                sawWritable |= writable;
                if (out.size() == Virtqueue.MAX_CHAIN_DESCRIPTORS) {
                    return null;
                }
                out.add(new Buffer(address, length, writable));
                if ((flags & 1) == 0) {
                    return out;
                }
                if (next >= tableSize) {
                    return null;
                }
                index = next;
            }
        }

        private long expectedInt(long address) {
            return (expectedShort(address) & 0xffffL) | (long) expectedShort(address + 2) << 16;
        }

        private long expectedLong(long address) {
            return (expectedInt(address) & 0xffffffffL) | expectedInt(address + 4) << 32;
        }

        /** What {@link #walk} hands each byte: its index from the start of the walk and its guest address. */
        private interface EachByte {
            void accept(int index, long address);
        }

        /** The bytes {@code [from, from + n)} of the buffers, as one stream, in order: one pass over the buffers. */
        private static void walk(List<Buffer> buffers, long from, long n, EachByte each) {
            long start = 0;
            for (Buffer b : buffers) {
                long lo = Math.max(from, start);
                long hi = Math.min(from + n, start + b.length());
                for (long k = lo; k < hi; k++) {
                    each.accept((int) (k - from), b.address() + (k - start));
                }
                start += b.length();
                if (start >= from + n) {
                    return;
                }
            }
        }

        /** The stream offset where the buffer holding byte {@code offset} starts. */
        private static long bufferStart(List<Buffer> buffers, long offset) {
            long start = 0;
            for (Buffer b : buffers) {
                if (offset < start + b.length()) {
                    return start;
                }
                start += b.length();
            }
            return start;
        }

        /** The first stream offset in {@code [from, from + length)} whose byte is not guest RAM; MAX_VALUE if none. */
        private long firstOutsideRam(List<Buffer> buffers, long from, long length) {
            long start = 0;
            for (Buffer b : buffers) {
                long lo = Math.max(from, start);
                long hi = Math.min(from + length, start + b.length());
                for (long k = lo; k < hi; ) {
                    long address = b.address() + (k - start);
                    long inRam = ramRunAt(address);
                    if (inRam == 0) {
                        return k;
                    }
                    k += inRam;
                }
                start += b.length();
            }
            return Long.MAX_VALUE;
        }

        /** How many bytes of RAM run on from {@code address} (across contiguous regions); 0 if it is not RAM. */
        private long ramRunAt(long address) {
            long run = 0;
            long a = address;
            while (true) {
                int r = regionOf(a);
                if (r < 0) {
                    return run;
                }
                long n = regionStart(r) + regionSize(r) - a;
                run += n;
                a += n;
            }
        }

        private byte byteAtAddress(long address) {
            if (inUsedRing(address)) {
                return mem.getByte(address); // the device's to write
            }
            int r = regionOf(address);
            return expected[r][(int) (address - regionStart(r))];
        }

        private void expectedSetAtAddress(long address, byte value) {
            usedRingClobbered |= inUsedRing(address);
            expectedSet(address, value);
        }

        private boolean inUsedRing(long address) {
            return address >= USED && address < USED + 6 + 8L * size;
        }

        private static boolean inOneRegion(long address, long length) {
            int r = regionOf(address);
            return r >= 0 && length <= regionStart(r) + regionSize(r) - address;
        }
    }

    private static int regionOf(long address) {
        if (address >= REGION0 && address < REGION0 + REGION0_SIZE) {
            return 0;
        }
        if (address >= REGION1 && address < REGION1 + REGION1_SIZE) {
            return 1;
        }
        if (address >= REGION2 && address < REGION2 + REGION2_SIZE) {
            return 2;
        }
        return -1;
    }

    private static long regionStart(int r) {
        return r == 0 ? REGION0 : r == 1 ? REGION1 : REGION2;
    }

    private static long regionSize(int r) {
        return r == 0 ? REGION0_SIZE : r == 1 ? REGION1_SIZE : REGION2_SIZE;
    }
}
