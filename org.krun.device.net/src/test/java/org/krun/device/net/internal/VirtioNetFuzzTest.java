package org.krun.device.net.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.posix.Posix;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-net (virtio 1.2 §5.1) with a hostile driver and a hostile peer: transmit
 * chains of any length and shape with any virtio-net header (offloads asked for or not, checksum ranges
 * anywhere, unknown segmentation types), split over descriptors or not, outside RAM, garbage descriptors; receive
 * buffers of any size (too small for a header, larger than RAM, outside it), few or many, with and without
 * mergeable buffers; frames from the peer of every length a backend lets through, with any offload header a
 * TAP may write; a peer that stops taking frames, takes them again or dies; resets; the avail index moved
 * anywhere. The backend is a fake in the test, so every input runs on one thread in microseconds.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: the backend is never handed a frame shorter
 * than an Ethernet header or longer than {@link VnetHeader#MAX_FRAME} (with its header when the backend
 * takes them); at most one transmit chain waits for the peer and every other comes back; a receive chain
 * comes back with at most its own writable length, never a length between 0 and a header's size; the
 * device never holds more receive chains than the driver offered.
 */
class VirtioNetFuzzTest {

    private static final long RAM = 4 << 20;
    /** Where buffers go, clear of the rings the driver lays out from the start of RAM. */
    private static final long BUFFERS = 256 << 10;
    private static final int MAX_STEPS = 64;
    private static final int FD = 1000;
    private static final byte[] MAC = {0x5a, (byte) 0x94, (byte) 0xef, (byte) 0xe4, 0x0c, (byte) 0xee};

    private static final TestGuestMemory MEMORY = TestGuestMemory.create(RAM);

    static {
        FuzzBounds.quietLogs("org.krun.device.net.internal.VirtioNet");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-net", FuzzBounds.Limits.defaults(),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void framesStayWithinTheirBoundsBothWays(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** A peer in the test: takes or refuses frames, hands frames from a short queue, dies on request. */
    private static final class FakeBackend implements Backend {
        final boolean vnet;
        final Arena arena = Arena.ofConfined();
        final MemorySegment frame = arena.allocate(VnetHeader.SIZE + VnetHeader.MAX_FRAME);
        final ArrayDeque<int[]> incoming = new ArrayDeque<>(); // {length, gso type, flags}
        boolean refusing;
        boolean dead;
        long sent;
        boolean closed;

        FakeBackend(boolean vnet) {
            this.vnet = vnet;
        }

        @Override
        public int fd() {
            return FD;
        }

        @Override
        public boolean vnetHeader() {
            return vnet;
        }

        @Override
        public long offloads() {
            return vnet ? NetFeatures.GUEST_OFFLOADS | NetFeatures.HOST_OFFLOADS : 0;
        }

        @Override
        public boolean send(MemorySegment buf, long offset, int length) {
            int header = vnet ? VnetHeader.SIZE : 0;
            if (length < header + VnetHeader.ETH_HLEN || length > header + VnetHeader.MAX_FRAME) {
                throw new AssertionError("the backend was handed a frame of " + length + " bytes");
            }
            if (offset < HEADROOM || offset + length > buf.byteSize()) {
                throw new AssertionError("the backend was handed a frame outside its buffer");
            }
            if (closed) {
                throw new AssertionError("a frame sent after close");
            }
            if (dead) {
                throw new PeerException("fake: gone");
            }
            if (refusing) {
                return false;
            }
            sent++;
            return true;
        }

        @Override
        public int receive() {
            if (closed) {
                throw new AssertionError("receive after close");
            }
            if (dead) {
                throw new PeerException("fake: gone");
            }
            int[] f = incoming.peek();
            if (f == null) {
                return -1;
            }
            frame.asSlice(0, VnetHeader.SIZE).fill((byte) 0);
            if (vnet) {
                frame.set(ValueLayout.JAVA_BYTE, VnetHeader.FLAGS, (byte) f[2]);
                frame.set(ValueLayout.JAVA_BYTE, VnetHeader.GSO_TYPE, (byte) f[1]);
            }
            return f[0] + (vnet ? VnetHeader.SIZE : 0);
        }

        @Override
        public MemorySegment frameBuffer() {
            return frame;
        }

        @Override
        public long frameOffset() {
            return 0;
        }

        @Override
        public void consumed() {
            incoming.poll();
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                arena.close();
            }
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final GuestMemory mem = MEMORY.memory();
        private final FakeBackend backend;
        private final VirtioNet net;
        private MockDriverQueue rxDriver;
        private MockDriverQueue txDriver;
        private Virtqueue rx;
        private Virtqueue tx;
        private FakeDeviceContext context;
        /** Writable bytes of each receive chain built by the rules, by head. */
        private final Map<Integer, Long> rxWritable = new HashMap<>();
        private int rxOffered;
        private boolean garbage;

        Scenario(FuzzInput in) {
            this.in = in;
            MEMORY.clear();
            backend = new FakeBackend(in.bool());
            net = new VirtioNet("virtio-net fuzz", backend, MAC, 1500, in.bool(), GuestSetup.NONE);
            activate();
        }

        /** Whether the driver took mergeable receive buffers (a frame may span several chains). */
        private boolean mergeable;

        private void activate() {
            rxDriver = new MockDriverQueue(MEMORY, VirtioNet.QUEUE_SIZE);
            txDriver = new MockDriverQueue(MEMORY, VirtioNet.QUEUE_SIZE);
            boolean eventIdx = in.bool();
            rx = rxDriver.configuredQueue(eventIdx);
            tx = txDriver.configuredQueue(eventIdx);
            long features = VirtioFeatures.VERSION_1 | (net.deviceFeatures() & (in.i64() | NetFeatures.MRG_RXBUF * (in.u8() & 1)));
            mergeable = (features & NetFeatures.MRG_RXBUF) != 0;
            context = new FakeDeviceContext(mem, features, List.of(rx, tx));
            net.activate(context);
            rxWritable.clear();
            rxOffered = 0;
            garbage = false;
        }

        void run() {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    switch (in.below(12)) {
                        case 0, 1 -> transmit();
                        case 2 -> garbageChain(txDriver);
                        case 3, 4 -> receiveBuffers();
                        case 5 -> garbageChain(rxDriver);
                        case 6, 7 -> peerFrames();
                        case 8 -> {
                            backend.refusing = in.bool();
                            fire(Posix.EPOLLOUT);
                        }
                        case 9 -> backend.dead |= in.u8() < 8;
                        case 10 -> {
                            if (in.u8() < 32) {
                                net.reset();
                                MEMORY.clear();
                                activate();
                            }
                        }
                        default -> {
                            garbage = true;
                            MockDriverQueue d = in.bool() ? rxDriver : txDriver;
                            d.setAvailIndex(d.availIndex() + in.pick(1, 2, VirtioNet.QUEUE_SIZE, in.u16()));
                        }
                    }
                    net.queueNotify(in.below(3)); // 2 is no queue of the device's
                    check();
                }
            } finally {
                net.close();
            }
        }

        private long buffer(int length) {
            return switch (in.below(8)) {
                case 0 -> RAM - in.below(4096); // running off the end of RAM
                case 1 -> in.i64();
                default -> BUFFERS + in.below((int) (RAM - BUFFERS - Math.min(length, RAM - BUFFERS - 1)));
            };
        }

        /** A frame of the guest's with a header the fuzzer chose, over one to three descriptors. */
        private void transmit() {
            int length = switch (in.below(8)) {
                case 0 -> in.below(VnetHeader.SIZE + VnetHeader.ETH_HLEN + 2);
                case 1 -> VnetHeader.SIZE + 60;
                case 2 -> VnetHeader.SIZE + 1514;
                case 3 -> VnetHeader.SIZE + VnetHeader.MAX_FRAME + in.below(3) - 1;
                case 4 -> -1; // 4 GiB less one
                default -> in.below(VnetHeader.SIZE + VnetHeader.MAX_FRAME + 64);
            };
            int parts = 1 + in.below(3);
            if (parts > txDriver.freeDescriptorCount()) {
                return;
            }
            int[] d = txDriver.reserveDescriptors(parts);
            long first = buffer(Math.max(length, 0));
            if (mem.contains(first, VnetHeader.SIZE)) {
                // The header is written by the test's driver: over its own rings, it rewrites used entries.
                garbage |= overlapsRings(first, VnetHeader.SIZE);
                mem.setByte(first + VnetHeader.FLAGS, (byte) in.pick(0, 1, 2, in.u8()));
                mem.setByte(first + VnetHeader.GSO_TYPE, (byte) in.pick(0, 1, 3, 4, 0x81, in.u8()));
                mem.setShort(first + VnetHeader.HDR_LEN, (short) in.u16());
                mem.setShort(first + VnetHeader.GSO_SIZE, (short) in.pick(0, 1448, in.u16()));
                mem.setShort(first + VnetHeader.CSUM_START, (short) in.pick(14, 34, in.u16()));
                mem.setShort(first + VnetHeader.CSUM_OFFSET, (short) in.pick(6, 16, in.u16()));
            }
            long at = first;
            long left = Integer.toUnsignedLong(length);
            for (int i = 0; i < parts; i++) {
                long piece = i + 1 < parts ? Math.min(left, in.below(2048)) : left;
                txDriver.writeDescriptor(d[i], at, (int) piece, i + 1 < parts ? MockDriverQueue.DESC_F_NEXT : 0,
                        i + 1 < parts ? d[i + 1] : 0);
                at += piece;
                left -= piece;
            }
            txDriver.makeAvailable(d[0]);
        }

        /** Receive chains the driver offers: one to eight, each of one or two buffers of chosen sizes. */
        private void receiveBuffers() {
            int chains = 1 + in.below(8);
            for (int c = 0; c < chains; c++) {
                int parts = 1 + in.below(2);
                if (parts > rxDriver.freeDescriptorCount()) {
                    return;
                }
                int[] d = rxDriver.reserveDescriptors(parts);
                long writable = 0;
                boolean inRam = true;
                for (int i = 0; i < parts; i++) {
                    int size = switch (in.below(8)) {
                        case 0 -> in.below(VnetHeader.SIZE + 2);
                        case 1 -> 1526;
                        case 2 -> 2048;
                        case 3 -> VnetHeader.SIZE + VnetHeader.MAX_FRAME;
                        case 4 -> -1;
                        default -> in.below(4096);
                    };
                    long address = buffer(size);
                    inRam &= mem.contains(address, Integer.toUnsignedLong(size));
                    // A receive buffer over the driver's own rings lets the device's frame bytes land on the used
                    // ring: the driver broke its rings, and used lengths read back from them say nothing.
                    garbage |= overlapsRings(address, Integer.toUnsignedLong(size));
                    writable += Integer.toUnsignedLong(size);
                    rxDriver.writeDescriptor(d[i], address, size,
                            MockDriverQueue.DESC_F_WRITE | (i + 1 < parts ? MockDriverQueue.DESC_F_NEXT : 0),
                            i + 1 < parts ? d[i + 1] : 0);
                }
                rxWritable.put(d[0], inRam ? writable : -1);
                rxOffered++;
                rxDriver.makeAvailable(d[0]);
            }
        }

        private static boolean overlapsRings(long address, long size) {
            long end = address + size;
            boolean wraps = Long.compareUnsigned(end, address) < 0;
            return size > 0 && (Long.compareUnsigned(address, BUFFERS) < 0 || wraps && end != 0);
        }

        /** Frames from the peer, of lengths a backend lets through, with any offload header. */
        private void peerFrames() {
            int n = 1 + in.below(8);
            for (int i = 0; i < n && backend.incoming.size() < 32; i++) {
                int length = switch (in.below(6)) {
                    case 0 -> VnetHeader.ETH_HLEN;
                    case 1 -> 60;
                    case 2 -> 1514;
                    case 3 -> VnetHeader.MAX_FRAME;
                    default -> VnetHeader.ETH_HLEN + in.below(VnetHeader.MAX_FRAME - VnetHeader.ETH_HLEN + 1);
                };
                backend.incoming.add(new int[] {length, in.pick(0, 0, 1, 3, 4, 0x81, in.u8()), in.pick(0, 1, 2)});
            }
            fire(Posix.EPOLLIN);
        }

        private void garbageChain(MockDriverQueue d) {
            int n = 1 + in.below(4);
            if (n > d.freeDescriptorCount()) {
                return;
            }
            garbage = true;
            int[] desc = d.reserveDescriptors(n);
            for (int i = 0; i < n; i++) {
                d.writeDescriptor(desc[i], in.pick((int) BUFFERS, (int) RAM - 8, -4096, in.i32()), in.pick(0, 1, 12, 4096, -1, in.i32()),
                        in.below(8) | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0),
                        i + 1 < n ? desc[i + 1] : in.below(VirtioNet.QUEUE_SIZE + 2));
            }
            d.makeAvailable(in.u8() < 8 ? in.u16() : desc[0]);
        }

        private void fire(int events) {
            if (context.eventLoop().watchedEvents(FD) != 0 || events == Posix.EPOLLIN) {
                try {
                    context.eventLoop().fire(FD, events);
                } catch (IllegalStateException notWatched) {
                    // the card went down: nothing watches its descriptor any more
                }
            }
        }

        private void check() {
            if (!context.resetReasons().isEmpty() || garbage) {
                return; // the device stopped serving, or the driver broke its own rings
            }
            int waiting = (tx.nextAvail() - tx.nextUsed()) & 0xffff;
            if (waiting > 1) {
                throw new AssertionError(waiting + " transmit chains held: the device holds at most one for the peer");
            }
            for (MockDriverQueue.Used u : rxDriver.usedEntriesWithoutData()) {
                Long writable = rxWritable.remove(u.id());
                long len = Integer.toUnsignedLong(u.len());
                if (writable != null && writable >= 0 && len > writable) {
                    throw new AssertionError("receive chain " + u.id() + " came back with " + len + " bytes, it holds " + writable);
                }
                // With mergeable buffers a frame's later buffers carry only the rest of it: a few bytes are fine.
                if (!mergeable && len > 0 && len < VnetHeader.SIZE) {
                    throw new AssertionError("receive chain " + u.id() + " came back with " + len + " bytes, less than a header");
                }
            }
            txDriver.usedEntriesWithoutData();
            if (net.heldReceiveBuffers() > rxOffered) {
                throw new AssertionError("the device holds " + net.heldReceiveBuffers() + " receive chains of " + rxOffered);
            }
        }
    }
}
