package org.krun.device.net.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

import org.krun.posix.Posix;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;

/**
 * virtio-net (virtio 1.2 §5.1): one receive and one transmit queue, a MAC address, link status, mergeable
 * receive buffers, an MTU, and the offloads its {@link Backend} honours. Everything runs on the VM's event
 * loop; the backend's descriptor is watched there for what the device can use now.
 *
 * <p>Back-pressure, both ways, with bounded memory: a frame the peer cannot take stays in the device's one
 * transmit buffer and its chain stays unanswered, so the guest's transmit queue fills and its stack waits;
 * a frame the guest has no receive buffers for stays in the backend, which then reads nothing more, so the
 * host's socket or TAP queue fills and the peer's own flow control acts. Frames are copied between guest
 * buffers and two native buffers made once per card: nothing per frame is allocated by size.
 *
 * <p>A hostile guest's frames (too short, too long, offloads it did not negotiate, checksum ranges outside
 * the frame, buffers outside its memory) are dropped with a rate-limited log line; a peer that breaks the
 * protocol or goes away takes the card down (link down, one log line) and the VM runs on.
 */
final class VirtioNet extends AbstractVirtioDevice<VirtioNet.Rings> implements SnapshottableDevice {

    static final int RX = 0;
    static final int TX = 1;
    static final int QUEUE_SIZE = 256;
    /** struct virtio_net_config up to mtu: mac[6], le16 status, le16 max_virtqueue_pairs, le16 mtu. */
    static final int CONFIG_SIZE = 12;
    static final int CONFIG_MAC = 0;
    static final int CONFIG_STATUS = 6;
    static final int CONFIG_MAX_PAIRS = 8;
    static final int CONFIG_MTU = 10;
    static final int STATUS_LINK_UP = 1;
    /** Frames each way per turn of the loop, so one busy card does not starve the VM's other devices. */
    static final int BUDGET = 128;
    static final int STATE_VERSION = 1;
    /** Version, MAC, link status. */
    static final int STATE_BYTES = 4 + 6 + 2;

    private final Backend backend;
    private final GuestSetup guestSetup;
    private final long offered;
    private final Arena arena = Arena.ofShared();
    /** A frame from the guest: header and frame at {@link Backend#HEADROOM}, room for a prefix before it. */
    private final MemorySegment txBuf;
    /** The header of a frame for the guest. */
    private final MemorySegment rxHeader;
    /** Why the card is down (the peer went away or broke the protocol); null while it is up. */
    private volatile String down;
    final Stats stats = new Stats();

    /** Counters, for tests and the benchmark (loop-confined writes). */
    static final class Stats {
        volatile long txFrames;
        volatile long txBytes;
        volatile long txDropped;
        volatile long rxFrames;
        volatile long rxBytes;
        volatile long rxDropped;

        @Override
        public String toString() {
            return "sent " + txFrames + " frames (" + txBytes + " bytes, " + txDropped + " dropped), received " + rxFrames
                    + " frames (" + rxBytes + " bytes, " + rxDropped + " dropped)";
        }
    }

    /**
     * @param name how logs name the card ({@code virtio-net passt})
     * @param mac its MAC address
     * @param mtu the MTU it offers
     * @param offloads whether to offer the backend's offloads
     */
    VirtioNet(String name, Backend backend, byte[] mac, int mtu, boolean offloads, GuestSetup guestSetup) {
        super(name, VirtioIds.NET, features(backend, offloads), 2, QUEUE_SIZE, CONFIG_SIZE);
        this.backend = backend;
        this.guestSetup = guestSetup;
        this.offered = features(backend, offloads);
        this.txBuf = arena.allocate(Backend.HEADROOM + VnetHeader.SIZE + VnetHeader.MAX_FRAME, 64);
        this.rxHeader = arena.allocate(VnetHeader.SIZE, 8);
        config().putBytes(CONFIG_MAC, mac).putShort(CONFIG_STATUS, STATUS_LINK_UP).putShort(CONFIG_MAX_PAIRS, 1)
                .putShort(CONFIG_MTU, mtu);
    }

    static long features(Backend backend, boolean offloads) {
        long f = NetFeatures.MAC | NetFeatures.STATUS | NetFeatures.MTU | NetFeatures.MRG_RXBUF;
        return offloads && backend.vnetHeader() ? f | backend.offloads() : f;
    }

    @Override
    public GuestSetup guestSetup() {
        return guestSetup;
    }

    /** Why the card is down, or null. */
    String down() {
        return down;
    }

    /** One activation: the driver's features, the receive buffers the device holds, a frame waiting for the peer. */
    static final class Rings {
        final long features;
        final boolean mergeable;
        EventLoop.Watch watch;
        /** Receive chains taken from the queue and not yet used, in order (at most a queue's worth). */
        final DescriptorChain[] held = new DescriptorChain[QUEUE_SIZE];
        final long[] heldRoom = new long[QUEUE_SIZE];
        int heldStart;
        int heldCount;
        /** The transmit chain whose frame (in txBuf) the peer did not take yet; -1 for none. */
        int txHead = -1;
        int txLength;
        /** The card is going down (set before {@link VirtioNet#down} is). */
        boolean ended;
        /** The backend has a frame the guest has no buffers for: wait for the driver. */
        boolean rxBlocked;
        /** A receive chain was returned unused while others were held: the held ones are not the last popped. */
        boolean rxInterleaved;
        /** The guest memory of each buffer a frame goes into, resolved before any is written. */
        @SuppressWarnings("unchecked")
        final List<MemorySegment>[] pieces = new List[QUEUE_SIZE];

        Rings(long features) {
            this.features = features;
            this.mergeable = (features & NetFeatures.MRG_RXBUF) != 0;
        }

        DescriptorChain held(int i) {
            return held[(heldStart + i) % held.length];
        }

        long heldRoom(int i) {
            return heldRoom[(heldStart + i) % held.length];
        }

        void hold(DescriptorChain c) {
            int at = (heldStart + heldCount) % held.length;
            held[at] = c;
            heldRoom[at] = c.writableBytes();
            heldCount++;
        }

        void release(int n) {
            for (int i = 0; i < n; i++) {
                held[(heldStart + i) % held.length] = null;
            }
            heldStart = (heldStart + n) % held.length;
            heldCount -= n;
            if (heldCount == 0) {
                rxInterleaved = false;
            }
        }
    }

    @Override
    protected Rings onActivate(Active<Rings> a) {
        Rings r = new Rings(a.context().driverFeatures());
        if (down == null) {
            backend.negotiated(r.features & offered);
            r.watch = a.loop().watch(backend.fd(), Posix.EPOLLIN, events -> onBackend(a, events));
        }
        return r;
    }

    @Override
    protected void onQueueNotify(Active<Rings> a, int queue) {
        switch (queue) {
            case RX -> pumpRx(a);
            case TX -> drainTx(a);
            default -> {
            }
        }
        watchBackend(a);
    }

    @Override
    protected void onDeactivate(Active<Rings> a) {
        Rings r = a.state();
        if (r != null && r.watch != null) {
            r.watch.close();
            r.watch = null;
        }
        if (down == null) {
            backend.negotiated(0);
        }
    }

    @Override
    protected void onClose() {
        log().log(Level.DEBUG, () -> name() + ": closed; " + stats + (down == null ? "" : "; down: " + down));
        try {
            backend.close();
        } finally {
            arena.close();
        }
    }

    // ---- the backend's descriptor

    private void onBackend(Active<Rings> a, int events) {
        if (!a.isCurrent() || down != null) {
            return;
        }
        Rings r = a.state();
        try {
            if ((events & Posix.EPOLLOUT) != 0 && backend.flush() && r.txHead >= 0 && transmit(r)) {
                a.addUsed(TX, r.txHead, 0);
                r.txHead = -1;
                drainTx(a);
            }
            if ((events & (Posix.EPOLLIN | Posix.EPOLLHUP | Posix.EPOLLERR)) != 0) {
                pumpRx(a);
                if ((events & (Posix.EPOLLHUP | Posix.EPOLLERR)) != 0 && down == null && r.rxBlocked) {
                    // The peer hung up while the guest takes nothing: what it left cannot be delivered, and
                    // epoll would report the hang-up again and again.
                    end(a, backend + ": the peer hung up");
                }
            }
        } catch (Backend.PeerException e) {
            end(a, e.getMessage());
        } finally {
            watchBackend(a);
            a.flushInterrupts();
        }
    }

    /** Watches the backend for what the device can use now: input while the guest has room, output while a frame waits. */
    private void watchBackend(Active<Rings> a) {
        Rings r = a.state();
        if (r.watch == null || down != null) {
            return;
        }
        int events = (r.rxBlocked ? 0 : Posix.EPOLLIN) | (r.txHead >= 0 || backend.pending() ? Posix.EPOLLOUT : 0);
        r.watch.events(events);
        String dropped = backend.dropped();
        if (dropped != null) {
            hostError(dropped);
        }
    }

    // ---- transmit: the guest's frames to the backend

    private void drainTx(Active<Rings> a) {
        Rings r = a.state();
        if (r.txHead >= 0) {
            return; // the peer has not taken the last frame: the rest waits in the queue
        }
        try {
            for (int n = 0; n < BUDGET; n++) {
                DescriptorChain chain = a.pop(TX);
                if (chain == null) {
                    return;
                }
                if (down == null && take(a, r, chain) && !transmit(r)) {
                    r.txHead = chain.head();
                    return;
                }
                a.addUsed(TX, chain.head(), 0);
            }
            onLoop(a, this::drainTxAndWatch); // more may wait: after the loop's other work
        } catch (Backend.PeerException e) {
            end(a, e.getMessage());
        }
    }

    private void drainTxAndWatch(Active<Rings> a) {
        drainTx(a);
        watchBackend(a);
    }

    /** Copies the chain's frame into txBuf and checks it; false when it is dropped (a guest error). */
    private boolean take(Active<Rings> a, Rings r, DescriptorChain chain) {
        ChainReader reader = chain.reader(a.memory());
        long length = reader.remaining();
        if (length < VnetHeader.SIZE + VnetHeader.ETH_HLEN || length > VnetHeader.SIZE + VnetHeader.MAX_FRAME) {
            stats.txDropped++;
            guestError("transmitted frame of " + length + " bytes with its header dropped (" + (VnetHeader.SIZE + VnetHeader.ETH_HLEN)
                    + " to " + (VnetHeader.SIZE + VnetHeader.MAX_FRAME) + " allowed)");
            return false;
        }
        try {
            long at = Backend.HEADROOM;
            for (MemorySegment piece : reader.take(length)) {
                MemorySegment.copy(piece, 0, txBuf, at, piece.byteSize());
                at += piece.byteSize();
            }
        } catch (GuestMemoryException e) {
            stats.txDropped++;
            guestError("transmitted frame outside guest memory dropped: " + e.getMessage());
            return false;
        }
        String bad = VnetHeader.checkTx(txBuf, Backend.HEADROOM, length, r.features & offered, backend.vnetHeader());
        if (bad != null) {
            stats.txDropped++;
            guestError("transmitted frame dropped: " + bad);
            return false;
        }
        r.txLength = (int) length;
        return true;
    }

    /** Hands txBuf's frame to the backend; false when the peer cannot take it now. */
    private boolean transmit(Rings r) {
        boolean taken = backend.vnetHeader()
                ? backend.send(txBuf, Backend.HEADROOM, r.txLength)
                : backend.send(txBuf, Backend.HEADROOM + VnetHeader.SIZE, r.txLength - VnetHeader.SIZE);
        if (taken) {
            stats.txFrames++;
            stats.txBytes += r.txLength - VnetHeader.SIZE;
        }
        return taken;
    }

    // ---- receive: the backend's frames to the guest

    private void pumpRx(Active<Rings> a) {
        Rings r = a.state();
        if (down != null) {
            return;
        }
        try {
            for (int n = 0; n < BUDGET; n++) {
                int length = backend.receive();
                if (length < 0) {
                    r.rxBlocked = false;
                    return;
                }
                if (!deliver(a, r, length)) {
                    // No room: wait for the driver's buffers, unless some came while we looked.
                    if (a.queue(RX).enableNotification(a.memory(), true) && deliver(a, r, length)) {
                        backend.consumed();
                        continue;
                    }
                    r.rxBlocked = true;
                    return;
                }
                backend.consumed();
            }
            r.rxBlocked = false;
            onLoop(a, this::pumpRxAndWatch); // frames may wait in the backend's buffer: go on after the loop's other work
        } catch (Backend.PeerException e) {
            end(a, e.getMessage());
        }
    }

    private void pumpRxAndWatch(Active<Rings> a) {
        pumpRx(a);
        watchBackend(a);
    }

    /**
     * Writes the backend's frame into the guest's receive buffers (one, or several with mergeable buffers);
     * false when the guest has not given enough of them yet. A frame no buffer can hold is dropped (true).
     */
    private boolean deliver(Active<Rings> a, Rings r, int length) {
        MemorySegment frame = backend.frameBuffer();
        long offset = backend.frameOffset();
        long payload = offset;
        int payloadLength = length;
        if (backend.vnetHeader()) {
            payload += VnetHeader.SIZE;
            payloadLength -= VnetHeader.SIZE;
        }
        if (backend.vnetHeader() && !VnetHeader.fitsRx(frame, offset, r.features)) {
            stats.rxDropped++;
            hostError("received frame dropped: the host handed an offload the driver did not take");
            return true;
        }
        long total = VnetHeader.SIZE + (long) payloadLength;
        int buffers;
        if (r.mergeable) {
            long room = 0;
            buffers = 0;
            while (room < total) {
                if (buffers == r.heldCount && !holdOne(a, r)) {
                    return false;
                }
                room += r.heldRoom(buffers);
                buffers++;
            }
        } else {
            if (r.heldCount == 0 && !holdOne(a, r)) {
                return false;
            }
            if (r.heldRoom(0) < total) {
                stats.rxDropped++;
                hostError("received frame of " + total + " bytes with its header dropped: the guest's receive buffer holds "
                        + r.heldRoom(0) + " (its driver did not take mergeable buffers)");
                return true;
            }
            buffers = 1;
        }
        if (backend.vnetHeader()) {
            MemorySegment.copy(frame, offset, rxHeader, 0, VnetHeader.NUM_BUFFERS);
            rxHeader.set(JAVA_SHORT_UNALIGNED, VnetHeader.NUM_BUFFERS, (short) buffers);
            if ((r.features & NetFeatures.GUEST_CSUM) == 0) {
                rxHeader.set(JAVA_BYTE, VnetHeader.FLAGS, (byte) 0); // the host offered no partial checksums: nothing to pass
            }
        } else {
            VnetHeader.writeRx(rxHeader, 0, buffers);
        }
        // Resolve every buffer first: one outside guest RAM loses the frame before any of it is published.
        List<MemorySegment>[] pieces = r.pieces;
        long left = total;
        try {
            for (int i = 0; i < buffers; i++) {
                ChainWriter w = r.held(i).writer(a.memory());
                long n = Math.min(w.remaining(), left);
                pieces[i] = w.take(n);
                left -= n;
            }
        } catch (GuestMemoryException e) {
            stats.rxDropped++;
            guestError("receive buffer outside guest memory: " + e.getMessage());
            for (int i = 0; i < buffers; i++) {
                a.addUsed(RX, r.held(i).head(), 0); // the driver counts an empty buffer as a length error
                pieces[i] = null;
            }
            r.release(buffers);
            return true;
        }
        long at = 0; // position in the stream that is the header, then the payload
        for (int i = 0; i < buffers; i++) {
            long chainStart = at;
            for (MemorySegment piece : pieces[i]) {
                long len = piece.byteSize();
                long p = 0;
                if (at < VnetHeader.SIZE) {
                    p = Math.min(len, VnetHeader.SIZE - at);
                    MemorySegment.copy(rxHeader, at, piece, 0, p);
                }
                if (p < len) {
                    MemorySegment.copy(frame, payload + at + p - VnetHeader.SIZE, piece, p, len - p);
                }
                at += len;
            }
            pieces[i] = null;
            a.addUsed(RX, r.held(i).head(), (int) (at - chainStart));
        }
        r.release(buffers);
        stats.rxFrames++;
        stats.rxBytes += payloadLength;
        return true;
    }

    /** Takes the next usable receive chain into {@code r}'s held ones; false when the driver has none. */
    private boolean holdOne(Active<Rings> a, Rings r) {
        while (r.heldCount < r.held.length) {
            DescriptorChain c = a.pop(RX);
            if (c == null) {
                return false;
            }
            if (c.writableBytes() < VnetHeader.SIZE) {
                guestError("receive buffer of " + c.writableBytes() + " bytes cannot hold a header: returned unused");
                a.addUsed(RX, c.head(), 0);
                r.rxInterleaved |= r.heldCount > 0;
                continue;
            }
            r.hold(c);
            return true;
        }
        return false;
    }

    // ---- the card goes down

    /**
     * The peer is gone or broke the protocol: the card goes down for good (link status down, the backend
     * closed); frames the guest sends are dropped from now on, so its queues never wedge.
     */
    private void end(Active<Rings> a, String reason) {
        if (down != null || a.state().ended) {
            return;
        }
        a.state().ended = true;
        log().log(Level.WARNING, name() + ": " + reason + "; the network card is down (the VM runs on)");
        Rings r = a.state();
        if (r.watch != null) {
            r.watch.close();
            r.watch = null;
        }
        backend.close();
        config().putShort(CONFIG_STATUS, 0);
        if (r.txHead >= 0) {
            a.addUsed(TX, r.txHead, 0);
            r.txHead = -1;
        }
        if ((r.features & NetFeatures.STATUS) != 0) {
            a.configChanged();
        }
        down = reason; // last: others read it from other threads, and the rest above must be seen with it
        onLoop(a, this::drainTx); // frames queued meanwhile go (nowhere) too
    }

    // ---- snapshots

    /**
     * Snapshots (docs/templates.md): the queues' indices are the whole queue state once the device gives back
     * what it took and has not used: the receive chains it holds for a frame still arriving, and the transmit
     * chain whose frame the peer has not taken, go back to the driver's side by moving the queue's next
     * available index back over them (they are the last ones taken, in order), and are taken again later,
     * by this VM (which goes on) or by one restored from the snapshot. The frames themselves are not in the
     * snapshot: a frame half received stays in the backend; a network loses or repeats nothing more than
     * that. The device's own: the MAC address the guest was shown and its link status.
     */
    @Override
    public byte[] saveState() {
        Active<Rings> a = active();
        if (a != null) {
            Rings r = a.state();
            if (r.heldCount > 0 && r.rxInterleaved) {
                throw new IllegalStateException(name() + ": the receive buffers it holds are not the last the guest gave; "
                        + "try again when the frame has arrived");
            }
            boolean gave = r.heldCount > 0 || r.txHead >= 0;
            giveBack(a.queue(RX), r.heldCount);
            r.release(r.heldCount);
            if (r.txHead >= 0) {
                giveBack(a.queue(TX), 1);
                r.txHead = -1;
            }
            if (gave && down == null) {
                // This VM goes on: take them again after the snapshot (which runs on the loop, so not before it).
                r.rxBlocked = false;
                onLoop(a, this::afterSnapshot);
            }
        }
        byte[] mac = new byte[6];
        readConfig(CONFIG_MAC, mac);
        return ByteBuffer.allocate(STATE_BYTES).putInt(STATE_VERSION).put(mac)
                .putShort((short) config().getShort(CONFIG_STATUS)).array();
    }

    private void afterSnapshot(Active<Rings> a) {
        pumpRx(a);
        drainTx(a);
        watchBackend(a);
        a.flushInterrupts();
    }

    private static void giveBack(Virtqueue q, int chains) {
        if (chains > 0) {
            Virtqueue.Indices x = q.indices();
            q.restoreIndices(new Virtqueue.Indices((x.nextAvail() - chains) & 0xffff, x.nextUsed(), x.signalledUsed()));
        }
    }

    /**
     * Restores on a card over the backend the restoring configuration names. Its MAC address must be the
     * saved one (the guest's stack has it); a link status that differs (a card that was down, now over a new
     * peer) is a configuration change for an active driver.
     */
    @Override
    public void restoreState(byte[] state) {
        ByteBuffer b = SnapshottableDevice.openState(name(), state, STATE_BYTES, STATE_VERSION);
        byte[] savedMac = new byte[6];
        b.get(savedMac);
        int savedStatus = b.getShort() & 0xffff;
        byte[] mac = new byte[6];
        readConfig(CONFIG_MAC, mac);
        if (!Arrays.equals(savedMac, mac)) {
            HexFormat hex = HexFormat.ofDelimiter(":");
            throw new IllegalArgumentException(name() + ": the snapshot's card has MAC " + hex.formatHex(savedMac)
                    + ", this one " + hex.formatHex(mac));
        }
        Active<Rings> a = active();
        if (a != null && savedStatus != (config().getShort(CONFIG_STATUS) & 0xffff)
                && (a.state().features & NetFeatures.STATUS) != 0) {
            a.configChanged();
        }
    }

    /** Whether a frame of the guest's waits for the peer (tests). */
    boolean transmitWaiting() {
        Active<Rings> a = active();
        return a != null && a.state().txHead >= 0;
    }

    /** The guest's receive buffers the device holds now (tests). */
    int heldReceiveBuffers() {
        Active<Rings> a = active();
        return a == null ? 0 : a.state().heldCount;
    }

    @Override
    public String toString() {
        return name();
    }
}
