package org.krun.device.net.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import org.krun.api.NetSpec;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.Virtqueue;
import org.krun.vmm.internal.event.EpollEventLoop;

/**
 * bench/net's virtio-net part, on any host: the card in-process, no guest, no KVM. The driver side of its two
 * queues (driver-side mock queues in test memory, fixed buffers reused, as Linux's driver would post them)
 * runs on the card's own event loop, answering each interrupt as a guest's NAPI poll would; the peer is a
 * thread of this program at the other end of a unix socket, draining or feeding it as fast as it can:
 * <ul>
 * <li>unixstream: a socket pair, each frame behind its 4-byte length (passt's and QEMU's stream netdev's
 * protocol; {@code --net passt} is this backend with passt at the other end);
 * <li>unixgram: one frame per datagram, krun's socket connected to a bound one (gvproxy's and vfkit's protocol).
 * </ul>
 * Frames/s and MiB/s (Ethernet frames, the virtio-net header not counted) guest->peer (tx) and peer->guest (rx)
 * for 64-byte, 1514-byte and 65534-byte frames (the last: passt's MTU of 65520 plus the Ethernet header; a
 * unix backend takes no offloads, so larger frames never come from a guest). Receive buffers are 4 KiB and
 * mergeable: a 65534-byte frame fills 17 of them.
 *
 * Usage: NetFrameBench SECONDS_PER_LINE
 */
public final class NetFrameBench {

    static final int[] SIZES = {64, 1514, NetSpec.MAX_MTU + VnetHeader.ETH_HLEN};
    static final int RX_BUFFER = 4096;
    static final int QUEUE = VirtioNet.QUEUE_SIZE;

    enum Kind {
        STREAM("unixstream"), DGRAM("unixgram");

        final String label;

        Kind(String label) {
            this.label = label;
        }
    }

    public static void main(String[] args) throws Exception {
        double seconds = Double.parseDouble(args[0]);
        System.out.printf("%-12s %11s %14s %12s %14s %12s%n", "backend", "frame bytes", "tx frames/s", "tx MiB/s",
                "rx frames/s", "rx MiB/s");
        for (Kind kind : Kind.values()) {
            for (int size : SIZES) {
                double[] tx = measure(kind, size, true, seconds);
                double[] rx = measure(kind, size, false, seconds);
                System.out.printf("%-12s %11d %14.0f %12.1f %14.0f %12.1f%n", kind.label, size, tx[0], tx[1], rx[0], rx[1]);
            }
        }
    }

    /** One card, one direction: {frames/s, MiB/s} over {@code seconds} after half a second of warm-up. */
    static double[] measure(Kind kind, int size, boolean transmit, double seconds) throws Exception {
        try (Rig rig = new Rig(kind, size, transmit)) {
            rig.start();
            Thread.sleep(500);
            long f0 = rig.frames.get();
            long t0 = System.nanoTime();
            Thread.sleep((long) (seconds * 1000));
            long f1 = rig.frames.get();
            double elapsed = (System.nanoTime() - t0) / 1e9;
            rig.stop();
            if (rig.failure != null) {
                throw new IllegalStateException(kind.label + ", " + size + "-byte frames, " + (transmit ? "tx" : "rx") + ": "
                        + rig.failure);
            }
            if (f1 == f0) {
                throw new IllegalStateException(kind.label + ", " + size + "-byte frames, " + (transmit ? "tx" : "rx")
                        + ": no frame in " + seconds + " s; card " + rig.device.stats + (rig.device.down() == null ? ""
                                : ", down: " + rig.device.down()));
            }
            double rate = (f1 - f0) / elapsed;
            return new double[] {rate, rate * size / 1048576.0};
        }
    }

    /** A card, its driver on the card's loop, and a peer thread; everything closed by {@link #close()}. */
    static final class Rig implements AutoCloseable {
        final Kind kind;
        final int size;
        final boolean transmit;
        final TestGuestMemory ram;
        final GuestMemory mem;
        final MockDriverQueue rxq;
        final MockDriverQueue txq;
        final EpollEventLoop loop = new EpollEventLoop();
        final Thread loopThread;
        final Arena arena = Arena.ofShared();
        Path dir;
        int peerFd = -1;
        VirtioNet device;
        Thread peer;
        final long rxBase;
        final long txBase;
        final int txSlot;
        /** Frames that crossed: counted by the peer (tx) or by the driver (rx). */
        final AtomicLong frames = new AtomicLong();
        volatile boolean running = true;
        volatile String failure;
        private boolean serviceQueued;
        /** rx: buffers still to come of the frame being merged, and its length so far. */
        private int mergeLeft;
        private long mergeLength;

        Rig(Kind kind, int size, boolean transmit) throws IOException {
            this.kind = kind;
            this.size = size;
            this.transmit = transmit;
            txSlot = (VnetHeader.SIZE + size + 63) & ~63;
            ram = TestGuestMemory.create((long) QUEUE * (RX_BUFFER + txSlot) + (4 << 20));
            mem = ram.memory();
            rxq = new MockDriverQueue(ram, QUEUE);
            txq = new MockDriverQueue(ram, QUEUE);
            rxBase = ram.allocate((long) QUEUE * RX_BUFFER, 4096);
            txBase = ram.allocate((long) QUEUE * txSlot, 64);
            byte[] frame = NetDriver.frame(size, 1);
            for (int i = 0; i < QUEUE; i++) {
                mem.write(txBase + (long) i * txSlot + VnetHeader.SIZE, frame, 0, frame.length); // header: zeros
            }
            loopThread = Thread.ofPlatform().name("netbench-loop").daemon(true).start(loop::run);
            try {
                open();
            } catch (IOException | RuntimeException e) {
                try {
                    close();
                } catch (Exception suppressed) {
                    e.addSuppressed(suppressed);
                }
                throw e;
            }
        }

        /** The card on a fresh unix socket, and the peer's end of it (blocking). */
        private void open() throws IOException {
            NetFactory factory = new NetFactory();
            if (kind == Kind.STREAM) {
                int[] pair = PosixNet.socketPair(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM);
                peerFd = pair[1];
                Passt.blocking(peerFd);
                try {
                    device = (VirtioNet) factory.create(NetSpec.unixStream(pair[0]));
                } catch (RuntimeException e) {
                    Posix.close(pair[0]);
                    throw e;
                }
                return;
            }
            dir = Files.createTempDirectory("krun-netbench");
            Path path = dir.resolve("peer.sock");
            peerFd = Posix.check("socket", PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_DGRAM, 0));
            Posix.check("bind", PosixNet.bind(peerFd, SockAddr.Unix.of(path.toString())));
            PosixNet.setIntOption(peerFd, PosixNet.SOL_SOCKET, PosixNet.SO_SNDBUF, 1 << 20);
            PosixNet.setIntOption(peerFd, PosixNet.SOL_SOCKET, PosixNet.SO_RCVBUF, 4 << 20);
            Passt.blocking(peerFd);
            // The vfkit handshake tells the peer krun's address, as gvproxy learns it: from then on they are connected.
            device = (VirtioNet) factory.create(NetSpec.unixDgram(path, true));
            MemorySegment hello = arena.allocate(16);
            PosixNet.Received r = PosixNet.recvFrom(peerFd, hello, 0);
            if (r.bytes() != DatagramBackend.VFKIT_MAGIC.length || r.from() == null) {
                throw new IOException("no vfkit handshake from the card: " + r.bytes());
            }
            Posix.check("connect", PosixNet.connect(peerFd, r.from()));
        }

        void start() {
            DeviceContext context = new DeviceContext() {
                private final List<Virtqueue> queues = List.of(rxq.configuredQueue(false), txq.configuredQueue(false));

                @Override
                public GuestMemory memory() {
                    return mem;
                }

                @Override
                public long driverFeatures() {
                    return NetDriver.LINUX_FEATURES;
                }

                @Override
                public List<Virtqueue> queues() {
                    return queues;
                }

                @Override
                public InterruptTrigger interrupt() {
                    return reasons -> scheduleService();
                }

                @Override
                public EventLoop eventLoop() {
                    return loop;
                }

                @Override
                public void needsReset(String reason) {
                    failure = "the card needs a reset: " + reason;
                }
            };
            loop.call(() -> {
                device.activate(context);
                if (transmit) {
                    while (txq.freeDescriptorCount() > 0) {
                        postTx();
                    }
                    device.queueNotify(VirtioNet.TX);
                } else {
                    while (rxq.freeDescriptorCount() > 0) {
                        postRx();
                    }
                    device.queueNotify(VirtioNet.RX);
                }
                return null;
            });
            peer = Thread.ofPlatform().name("netbench-peer").daemon(true).start(transmit ? this::drain : this::feed);
        }

        /** The interrupt, on the loop: the driver's poll runs after the card's current work, as a guest's would. */
        private void scheduleService() {
            if (!serviceQueued) {
                serviceQueued = true;
                loop.execute(this::service);
            }
        }

        /** The driver's poll: used buffers back to the rings (while running) and a notification. */
        private void service() {
            serviceQueued = false;
            if (transmit) {
                int n = txq.usedEntriesWithoutData().size();
                if (n > 0 && running) {
                    while (txq.freeDescriptorCount() > 0) {
                        postTx();
                    }
                    device.queueNotify(VirtioNet.TX);
                }
                return;
            }
            int n = 0;
            for (MockDriverQueue.Used u : rxq.usedEntriesWithoutData()) {
                n++;
                long at = rxBase + (long) u.id() * RX_BUFFER;
                if (mergeLeft == 0) {
                    mergeLeft = mem.getShort(at + VnetHeader.NUM_BUFFERS) & 0xffff;
                    mergeLength = -VnetHeader.SIZE;
                    if (mergeLeft == 0 || u.len() < VnetHeader.SIZE) {
                        failure = "a receive buffer came back with num_buffers 0 or " + u.len() + " bytes";
                        mergeLeft = 0;
                        continue;
                    }
                }
                mergeLength += u.len();
                if (--mergeLeft == 0) {
                    if (mergeLength != size) {
                        failure = "a frame of " + mergeLength + " bytes came for one of " + size;
                    }
                    frames.incrementAndGet();
                }
            }
            if (n > 0 && running) {
                while (rxq.freeDescriptorCount() > 0) {
                    postRx();
                }
                device.queueNotify(VirtioNet.RX);
            }
        }

        /** One transmit chain: descriptor d is slot d (header and frame, in one buffer, as Linux sends them). */
        private void postTx() {
            int d = txq.reserveDescriptors(1)[0];
            txq.writeDescriptor(d, txBase + (long) d * txSlot, VnetHeader.SIZE + size, 0, 0);
            txq.makeAvailable(d);
        }

        /** One 4 KiB receive buffer: descriptor d is buffer d. */
        private void postRx() {
            int d = rxq.reserveDescriptors(1)[0];
            rxq.writeDescriptor(d, rxBase + (long) d * RX_BUFFER, RX_BUFFER, MockDriverQueue.DESC_F_WRITE, 0);
            rxq.makeAvailable(d);
        }

        /** tx's peer: reads what the card sends and counts its frames, checking their lengths. */
        private void drain() {
            MemorySegment buf = arena.allocate(1 << 20, 64);
            long have = 0;
            while (true) {
                long n = PosixNet.recv(peerFd, kind == Kind.STREAM ? buf.asSlice(have) : buf, 0);
                if (n <= 0) {
                    if (n < 0 && n != -Errno.EINTR && running) {
                        failure = "the peer's receive failed: " + Errno.name((int) -n);
                    }
                    return;
                }
                if (kind == Kind.DGRAM) {
                    if (n != size) {
                        failure = "a datagram of " + n + " bytes for a frame of " + size;
                    }
                    frames.incrementAndGet();
                    continue;
                }
                have += n;
                long at = 0;
                while (have - at >= LengthPrefix.SIZE) {
                    int length = buf.get(ValueLayout.JAVA_INT_UNALIGNED.withOrder(java.nio.ByteOrder.BIG_ENDIAN), at);
                    if (length != size) {
                        failure = "a length prefix of " + length + " for a frame of " + size;
                        return;
                    }
                    if (have - at < LengthPrefix.SIZE + length) {
                        break;
                    }
                    at += LengthPrefix.SIZE + length;
                    frames.incrementAndGet();
                }
                MemorySegment.copy(buf, at, buf, 0, have - at);
                have -= at;
            }
        }

        /** rx's peer: sends frames as fast as the card takes them (blocking on a full socket). */
        private void feed() {
            byte[] frame = NetDriver.frame(size, 2);
            MemorySegment out;
            if (kind == Kind.STREAM) {
                int perSend = Math.max(1, (256 * 1024) / (LengthPrefix.SIZE + size));
                out = arena.allocate((long) perSend * (LengthPrefix.SIZE + size), 64);
                for (int i = 0; i < perSend; i++) {
                    long at = (long) i * (LengthPrefix.SIZE + size);
                    LengthPrefix.put(out, at, size);
                    MemorySegment.copy(frame, 0, out, ValueLayout.JAVA_BYTE, at + LengthPrefix.SIZE, size);
                }
            } else {
                out = arena.allocate(size, 64);
                MemorySegment.copy(frame, 0, out, ValueLayout.JAVA_BYTE, 0, size);
            }
            long sent = 0;
            while (running) {
                long n = PosixNet.send(peerFd, out.asSlice(sent), 0);
                if (n < 0) {
                    if (n != -Errno.EINTR && running) {
                        failure = "the peer's send failed: " + Errno.name((int) -n);
                    }
                    return;
                }
                sent = (sent + n) % out.byteSize();
            }
        }

        /** Stops the driver, then the card (closing its end, which ends the peer's blocking call). */
        void stop() throws InterruptedException {
            running = false;
            loop.call(() -> {
                device.close();
                return null;
            });
            peer.join(200);
            if (peer.isAlive()) {
                // A sender blocked on a full unix datagram queue is not woken by the receiver's close: end it here.
                PosixNet.shutdown(peerFd, PosixNet.SHUT_RDWR);
                peer.join(5000);
            }
        }

        @Override
        public void close() throws Exception {
            try {
                if (peer != null && running) {
                    stop();
                } else if (device != null && peer == null) { // never started: close the card here
                    loop.call(() -> {
                        device.close();
                        return null;
                    });
                }
            } finally {
                loop.stop();
                loopThread.join(5000);
                loop.close();
                if (peerFd >= 0 && (peer == null || !peer.isAlive())) {
                    Posix.close(peerFd);
                }
                if (peer == null || !peer.isAlive()) {
                    arena.close();
                }
                ram.close();
                if (dir != null) {
                    Files.deleteIfExists(dir.resolve("peer.sock"));
                    Files.deleteIfExists(dir);
                }
            }
        }
    }
}
