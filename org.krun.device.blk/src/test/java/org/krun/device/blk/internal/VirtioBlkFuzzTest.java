package org.krun.device.blk.internal;

import static org.krun.device.blk.internal.BlkRequest.SECTOR_SIZE;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_IOERR;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_OK;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_UNSUPP;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_T_DISCARD;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_T_FLUSH;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_T_GET_ID;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_T_IN;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_T_OUT;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_T_WRITE_ZEROES;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.api.DiskSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-blk (virtio 1.2 §5.2) against a hostile driver: requests of every type
 * and unknown ones, headers short or split, sectors at and past the end and overflowing, data of any size
 * in any number of buffers, direct or indirect, with no status byte or a longer one; descriptors with any
 * address and length; heads posted twice while in flight; the avail index moved anywhere; read-only disks,
 * every sync mode, optional features refused; I/O completing in any order, and driver resets with I/O in
 * flight. The disk is in memory ({@link MemoryDisk}), I/O held or run at once as the input says.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: the disk only ever sees ranges inside it; at
 * most a queue's worth of requests is in flight, whatever the driver posts; every chain the device takes
 * comes back used exactly once (the device's avail and used indices meet, and each posted head returns as
 * often as it was posted) unless the device asked for a reset; the status is OK, IOERR or UNSUPP and the
 * used length covers the writable part; and for the requests a driver builds by the spec: a well-formed
 * read or write inside the disk succeeds with the right bytes, OK never answers a request outside the disk
 * or a write to a read-only disk, a refused write changes nothing, unknown types are UNSUPP, write-zeroes
 * zeroes, GET_ID returns the serial.
 */
class VirtioBlkFuzzTest {

    private static final int DISK_SIZE = 256 * 1024;
    private static final long CAPACITY = DISK_SIZE / SECTOR_SIZE;
    private static final int RAM = 2 << 20;
    /** Where garbage descriptors point, apart from the buffers of the chains built by the rules. */
    private static final int GARBAGE_SIZE = 64 * 1024;
    private static final int MAX_STEPS = 64;

    private static final TestGuestMemory MEMORY = TestGuestMemory.create(RAM);

    static {
        FuzzBounds.quietLogs("org.krun.device.blk");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-blk", FuzzBounds.Limits.defaults(),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void everyRequestIsAnsweredWithinTheDisk(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** A request built by the rules, as Linux lays them out, with what the driver expects of it. */
    private record Request(int head, int type, long sector, long dataLength, boolean wellFormed, long[] ranges,
            long writableBytes, byte[] payload) {
        /** The chain's last writable byte is the status byte, whatever buffer it is in. */
        boolean hasStatus() {
            return writableBytes > 0;
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final GuestMemory mem = MEMORY.memory();
        private final MemoryDisk disk = new MemoryDisk(DISK_SIZE);
        private final byte[] model = new byte[DISK_SIZE];
        private final DiskSpec spec;
        private final ManualExecutor io;
        private final long features;
        private final VirtioBlk device;
        private final long garbage;

        private MockDriverQueue driver;
        private Virtqueue queue;
        private FakeDeviceContext context;
        /** Requests built by the rules and outstanding, by head. */
        private final Map<Integer, Request> requests = new HashMap<>();
        /** How often each head was made available, and came back, in this activation. */
        private final Map<Integer, Integer> posted = new HashMap<>();
        private final Map<Integer, Integer> returned = new HashMap<>();
        /**
         * The driver posted chains whose effect the model cannot know (garbage descriptors, heads twice): the
         * disk's contents and per-request outcomes are no longer checked, every count still is.
         */
        private boolean hostile;
        /** No chain so far (in any activation) did what the model cannot know: the disk must equal the model. */
        private boolean diskKnown = true;
        /** The driver moved the avail index itself: the device takes whatever the ring holds; counts per head end. */
        private boolean ringMisused;

        Scenario(FuzzInput in) {
            this.in = in;
            MEMORY.clear();
            for (int i = 0; i < DISK_SIZE; i += SECTOR_SIZE) {
                Arrays.fill(disk.bytes, i, i + SECTOR_SIZE, (byte) (i / SECTOR_SIZE));
            }
            System.arraycopy(disk.bytes, 0, model, 0, DISK_SIZE);
            String id = switch (in.below(3)) {
                case 0 -> "";
                case 1 -> "disk0";
                default -> "01234567890123456789";
            };
            spec = DiskSpec.raw(Path.of("/fuzz/disk.img")).withReadOnly(in.u8() < 64).withId(id)
                    .withSync(DiskSpec.Sync.values()[in.below(DiskSpec.Sync.values().length)]);
            io = in.bool() ? ManualExecutor.held() : ManualExecutor.direct();
            device = new VirtioBlk(disk, spec, io);
            long offered = device.deviceFeatures() | VirtioFeatures.VERSION_1;
            features = in.bool() ? offered : offered & in.i64() | VirtioFeatures.VERSION_1;
            garbage = MEMORY.allocate(GARBAGE_SIZE, 4096);
            activate();
        }

        /** The driver (re)initialises the device on a fresh queue: what it had outstanding is forgotten. */
        private void activate() {
            diskKnown &= !hostile; // the disk outlives the activation, and so does what the model lost of it
            driver = new MockDriverQueue(MEMORY, VirtioBlk.QUEUE_SIZE);
            queue = driver.configuredQueue(in.bool());
            context = new FakeDeviceContext(mem, features, List.of(queue));
            device.activate(context);
            requests.clear();
            posted.clear();
            returned.clear();
            hostile = false;
            ringMisused = false;
        }

        void run() {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    switch (in.below(12)) {
                        case 0, 1, 2, 3 -> buildRequest();
                        case 4 -> garbageChain();
                        case 5, 6 -> kick();
                        case 7 -> runHeld(in.below(4));
                        case 8 -> repost();
                        case 9 -> {
                            hostile = true;
                            ringMisused = true;
                            // forward over stale ring entries (a whole ring's worth at most), or anywhere
                            driver.setAvailIndex(in.bool() ? driver.availIndex() + in.pick(1, 2, 7, VirtioBlk.QUEUE_SIZE)
                                    : in.u16());
                        }
                        case 10 -> {
                            if (in.u8() < 32) {
                                device.reset(); // the driver resets with I/O in flight
                                activate();
                            }
                        }
                        default -> kick();
                    }
                }
                // The driver waits for everything it posted.
                for (int round = 0; round < 4; round++) {
                    kick();
                    runHeld(3);
                }
                finalChecks();
            } finally {
                device.close();
            }
            if (!disk.violations.isEmpty()) {
                throw new AssertionError("the device passed the disk " + disk.violations);
            }
        }

        // ---- the driver

        private void post(int head) {
            posted.merge(head, 1, Integer::sum);
        }

        private void buildRequest() {
            int type = in.pick(VIRTIO_BLK_T_IN, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_FLUSH,
                    VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES, 2, 14, 0x7fffffff);
            long sector = switch (in.below(7)) {
                case 0, 1 -> in.below((int) CAPACITY);
                case 2 -> CAPACITY - 1 - in.below(8);
                case 3 -> CAPACITY;
                case 4 -> -1L - in.below(8); // past 2^64 bytes once multiplied
                case 5 -> Long.MAX_VALUE / SECTOR_SIZE + in.below(4);
                default -> in.i64();
            };
            boolean splitHeader = in.u8() < 24;
            int headerLength = in.u8() < 16 ? in.below(16) : 16;
            byte[] header = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(type).putInt(in.u8() < 8 ? in.i32() : 0)
                    .putLong(sector).array();
            List<byte[]> readable = new ArrayList<>();
            if (splitHeader && headerLength > 1) {
                readable.add(Arrays.copyOfRange(header, 0, headerLength / 2));
                readable.add(Arrays.copyOfRange(header, headerLength / 2, headerLength));
            } else {
                readable.add(Arrays.copyOf(header, headerLength));
            }
            List<Integer> writable = new ArrayList<>();
            long data = 0;
            long[] ranges = new long[0];
            byte[] payload = new byte[0];
            int buffers = 1 + in.below(4);
            switch (type) {
                case VIRTIO_BLK_T_IN -> {
                    for (int b = 0; b < buffers; b++) {
                        int n = dataSize();
                        writable.add(n);
                        data += n;
                    }
                }
                case VIRTIO_BLK_T_OUT -> {
                    ByteBuffer all = ByteBuffer.allocate(buffers * 4096 * 2);
                    for (int b = 0; b < buffers; b++) {
                        byte[] d = new byte[dataSize()];
                        Arrays.fill(d, (byte) in.u8());
                        if (d.length > 0) {
                            d[0] = (byte) in.u8();
                        }
                        readable.add(d);
                        all.put(d);
                        data += d.length;
                    }
                    payload = Arrays.copyOf(all.array(), all.position());
                }
                case VIRTIO_BLK_T_GET_ID -> {
                    int n = in.pick(20, 8, 0, 64);
                    writable.add(n);
                    data = n;
                }
                case VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES -> {
                    int count = in.u8() < 8 ? in.pick(0, 33, 257) : 1 + in.below(4);
                    ByteBuffer b = ByteBuffer.allocate(16 * count).order(ByteOrder.LITTLE_ENDIAN);
                    ranges = new long[3 * count];
                    for (int k = 0; k < count; k++) {
                        long s = in.bool() ? in.below((int) CAPACITY) : in.pick(CAPACITY - 1, CAPACITY, -1L, in.i64());
                        long num = in.bool() ? in.below(64) : in.pick(0L, CAPACITY, 1L << 21, (1L << 21) + 1, 0xffffffffL);
                        int flags = in.u8() < 200 ? in.below(2) : in.i32();
                        b.putLong(s).putInt((int) num).putInt(flags);
                        ranges[3 * k] = s;
                        ranges[3 * k + 1] = num & 0xffffffffL;
                        ranges[3 * k + 2] = flags;
                    }
                    if (in.u8() < 16) {
                        readable.add(Arrays.copyOf(b.array(), Math.max(0, b.capacity() - 1 - in.below(15)))); // not whole ranges
                        ranges = null;
                    } else if (count > 0) {
                        readable.add(b.array());
                    }
                }
                default -> {
                }
            }
            int status = in.u8() < 16 ? in.pick(0, 2, 5) : 1;
            if (status > 0) {
                writable.add(status);
            }
            boolean wellFormed = !splitHeader && headerLength == 16 && status == 1;
            long writableBytes = writable.stream().mapToLong(Integer::longValue).sum();
            int head;
            try {
                head = in.bool() && readable.size() + writable.size() > 1
                        ? driver.addIndirectChain(readable, writable)
                        : driver.addChain(readable, writable);
            } catch (IllegalStateException full) {
                return; // no free descriptors, or RAM used up: the driver waits
            }
            post(head);
            requests.put(head, new Request(head, type, sector, data, wellFormed, ranges, writableBytes, payload));
        }

        private int dataSize() {
            return switch (in.below(6)) {
                case 0, 1 -> SECTOR_SIZE * (1 + in.below(8));
                case 2 -> 0;
                case 3 -> 4096;
                case 4 -> in.pick(1, 511, 513, 1023);
                default -> in.below(4096);
            };
        }

        /** A chain of descriptors with any address, length, flags and next. */
        private void garbageChain() {
            int n = 1 + in.below(6);
            if (n > driver.freeDescriptorCount()) {
                return;
            }
            int[] d = driver.reserveDescriptors(n);
            for (int i = 0; i < n; i++) {
                long address = switch (in.below(5)) {
                    case 0, 1 -> garbage + in.below(GARBAGE_SIZE);
                    case 2 -> RAM - in.below(4096);
                    case 3 -> in.i64();
                    default -> garbage + GARBAGE_SIZE - 16;
                };
                int length = in.pick(0, 1, 16, 17, 512, 513, 4096, GARBAGE_SIZE, -1, in.i32());
                int flags = in.below(8);
                int next = i + 1 < n && in.u8() < 224 ? d[i + 1] : in.below(VirtioBlk.QUEUE_SIZE + 2);
                driver.writeDescriptor(d[i], address, length, flags | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0), next);
            }
            if (in.u8() < 8) {
                driver.writeDescriptor(d[0], garbage, 16 * in.below(8), MockDriverQueue.DESC_F_INDIRECT, 0);
            }
            int head = in.u8() < 8 ? in.u16() : d[0];
            driver.makeAvailable(head);
            post(head);
            hostile = true;
        }

        /** A head the device has not returned yet, posted again (the spec forbids it; a hostile driver does it). */
        private void repost() {
            if (requests.isEmpty() || in.u8() >= 64) {
                return;
            }
            int head = requests.keySet().stream().sorted().toList().get(in.below(requests.size()));
            driver.makeAvailable(head);
            post(head);
            hostile = true;
        }

        // ---- the device's side

        private void kick() {
            device.queueNotify(VirtioBlk.REQUEST_QUEUE);
            checkInFlight();
            collect();
        }

        private void runHeld(int how) {
            while (io.pending() > 0) {
                io.run(how == 0 ? io.pending() - 1 : how == 1 ? in.below(io.pending()) : 0);
                collect();
                if (how < 2 && in.bool()) {
                    break;
                }
            }
        }

        private void checkInFlight() {
            if (device.inFlight() > VirtioBlk.QUEUE_SIZE) {
                throw new AssertionError(device.inFlight() + " requests in flight on a queue of " + VirtioBlk.QUEUE_SIZE);
            }
        }

        /** The chains the device returned, in the order it returned them, each checked. */
        private void collect() {
            for (MockDriverQueue.Used u : driver.usedEntries()) {
                returned.merge(u.id(), 1, Integer::sum);
                Request r = requests.remove(u.id());
                if (r != null && !hostile) {
                    check(r, u);
                }
                if (r != null && !r.wellFormed() && BlkRequests.statusOrZero(u) == VIRTIO_BLK_S_OK) {
                    hostile = true; // a malformed layout read as some request: what it did is the device's reading
                }
            }
        }

        private void check(Request r, MockDriverQueue.Used u) {
            if (!r.hasStatus()) {
                if (u.len() != 0) {
                    throw new AssertionError("request " + r + " without a status byte returned with length " + u.len());
                }
                return;
            }
            if (u.len() != r.writableBytes()) {
                throw new AssertionError("request of type " + r.type() + " returned with length " + u.len() + " of "
                        + r.writableBytes() + " writable bytes");
            }
            int status = BlkRequests.status(u);
            if (status != VIRTIO_BLK_S_OK && status != VIRTIO_BLK_S_IOERR && status != VIRTIO_BLK_S_UNSUPP) {
                throw new AssertionError("status " + status);
            }
            if (!r.wellFormed()) {
                return; // its header or status is not where the driver meant them: only the above holds
            }
            long bytes = r.dataLength();
            boolean whole = bytes % SECTOR_SIZE == 0;
            boolean inside = BlkRequest.inside(r.sector(), bytes / SECTOR_SIZE, CAPACITY);
            switch (r.type()) {
                case VIRTIO_BLK_T_IN -> {
                    if (r.wellFormed() && whole && inside && status != VIRTIO_BLK_S_OK) {
                        throw new AssertionError("a well-formed read of " + bytes + " bytes at sector " + r.sector() + " failed");
                    }
                    if (status == VIRTIO_BLK_S_OK) {
                        if (!whole || !inside) {
                            throw new AssertionError("a read of " + bytes + " bytes at sector " + r.sector() + " succeeded");
                        }
                        byte[] want = Arrays.copyOfRange(model, (int) (r.sector() * SECTOR_SIZE),
                                (int) (r.sector() * SECTOR_SIZE + bytes));
                        if (!Arrays.equals(Arrays.copyOf(u.written(), (int) bytes), want)) {
                            throw new AssertionError("a read at sector " + r.sector() + " returned bytes the disk does not hold");
                        }
                    }
                }
                case VIRTIO_BLK_T_OUT -> {
                    boolean allowed = !spec.readOnly() && whole && inside;
                    if (r.wellFormed() && allowed && status != VIRTIO_BLK_S_OK) {
                        throw new AssertionError("a well-formed write of " + bytes + " bytes at sector " + r.sector() + " failed");
                    }
                    if (status == VIRTIO_BLK_S_OK) {
                        if (!allowed) {
                            throw new AssertionError("a write of " + bytes + " bytes at sector " + r.sector()
                                    + (spec.readOnly() ? " to a read-only disk" : "") + " succeeded");
                        }
                        System.arraycopy(r.payload(), 0, model, (int) (r.sector() * SECTOR_SIZE), (int) bytes);
                    }
                }
                case VIRTIO_BLK_T_FLUSH -> {
                    if (r.wellFormed() && status != VIRTIO_BLK_S_OK) {
                        throw new AssertionError("a flush failed");
                    }
                }
                case VIRTIO_BLK_T_GET_ID -> {
                    if (r.wellFormed() && status != VIRTIO_BLK_S_OK) {
                        throw new AssertionError("GET_ID failed");
                    }
                    if (status == VIRTIO_BLK_S_OK) {
                        byte[] id = Arrays.copyOf(spec.id().getBytes(StandardCharsets.US_ASCII), BlkRequest.ID_BYTES);
                        int n = (int) Math.min(bytes, BlkRequest.ID_BYTES);
                        if (!Arrays.equals(Arrays.copyOf(u.written(), n), Arrays.copyOf(id, n))) {
                            throw new AssertionError("GET_ID returned " + Arrays.toString(Arrays.copyOf(u.written(), n)));
                        }
                    }
                }
                case VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES -> {
                    boolean discard = r.type() == VIRTIO_BLK_T_DISCARD;
                    long feature = discard ? VirtioBlk.F_DISCARD : VirtioBlk.F_WRITE_ZEROES;
                    if (status == VIRTIO_BLK_S_OK) {
                        if ((features & feature) == 0 || spec.readOnly() || r.ranges() == null || r.ranges().length == 0) {
                            throw new AssertionError((discard ? "discard" : "write-zeroes") + " succeeded without the feature, "
                                    + "on a read-only disk, or without whole ranges");
                        }
                        for (int k = 0; k < r.ranges().length; k += 3) {
                            long s = r.ranges()[k];
                            long num = r.ranges()[k + 1];
                            if (!BlkRequest.inside(s, num, CAPACITY) || (discard && r.ranges()[k + 2] != 0)
                                    || (r.ranges()[k + 2] & ~BlkRequest.FLAG_UNMAP) != 0) {
                                throw new AssertionError("a range " + s + "+" + num + " flags " + r.ranges()[k + 2] + " succeeded");
                            }
                            if (!discard) {
                                Arrays.fill(model, (int) (s * SECTOR_SIZE), (int) ((s + num) * SECTOR_SIZE), (byte) 0);
                            }
                        }
                    }
                }
                default -> {
                    if (r.wellFormed() && status != VIRTIO_BLK_S_UNSUPP) {
                        throw new AssertionError("request type " + r.type() + " answered " + status + ", not UNSUPP");
                    }
                }
            }
        }

        private void finalChecks() {
            if (!context.resetReasons().isEmpty()) {
                return; // the device gave up on this queue, as the spec allows; the driver must reset it
            }
            if (queue.pending(mem) != 0) {
                throw new AssertionError(queue.pending(mem) + " chains left in the ring after the last kick");
            }
            if (queue.nextAvail() != queue.nextUsed()) {
                throw new AssertionError("the device took " + queue.nextAvail() + " chains and returned " + queue.nextUsed());
            }
            if (!ringMisused && !posted.equals(returned)) {
                throw new AssertionError("posted " + posted + ", returned " + returned);
            }
            if (diskKnown && !hostile && !Arrays.equals(disk.bytes, model)) {
                int at = Arrays.mismatch(disk.bytes, model);
                throw new AssertionError("the disk does not hold what the successful requests wrote: byte " + at + " is "
                        + disk.bytes[at] + ", not " + model[at] + "; the disk saw " + disk.calls());
            }
        }
    }
}
