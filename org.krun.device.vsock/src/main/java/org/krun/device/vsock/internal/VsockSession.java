package org.krun.device.vsock.internal;

import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice.Active;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.ShortChainException;

/**
 * One activation of the vsock device: the connections, the packets waiting for the guest's rx buffers,
 * and the packet protocol of virtio 1.2 §5.10.6 (REQUEST/RESPONSE, RW with credit, SHUTDOWN, RST).
 * Loop-confined; host sockets are non-blocking and watched by the VM's event loop, so nothing here blocks.
 *
 * <p>Bounds against a hostile guest: at most {@link #MAX_CONNECTIONS} connections; at most
 * {@link #BUF_ALLOC} bytes per connection held for a host socket that does not take them; control packets
 * waiting for rx buffers capped at {@link #MAX_PENDING_CONTROL} (a guest that posts none loses its
 * connections, not the VMM its memory).
 */
final class VsockSession {

    static final long HOST_CID = 2;
    /** Receive space the device offers each connection (its buf_alloc). */
    static final long BUF_ALLOC = 64 * 1024;
    static final int MAX_CONNECTIONS = 512;
    /** Control packets of connections waiting for rx buffers (a few per connection at most). */
    static final int MAX_PENDING_CONTROL = 4 * MAX_CONNECTIONS;
    /** Resets answering packets of no connection, waiting for rx buffers; more are dropped (they are advice). */
    static final int MAX_PENDING_REPLIES = 256;
    /** Largest payload of one RW packet the device sends (Linux posts 4 KiB rx buffers; bigger ones get more). */
    static final int MAX_RX_PAYLOAD = 64 * 1024;
    /** Host-initiated connections take host ports from here up (below the TSI range). */
    static final long FIRST_EPHEMERAL_PORT = 49152;
    /** The last host port {@link #nextFreePort} hands out before it wraps. */
    static final long LAST_EPHEMERAL_PORT = 0x3ffff;

    private record Key(long hostPort, long guestPort) {
    }

    private final VirtioVsock device;
    private final Active<VsockSession> active;
    private final long guestCid;
    private final Map<Key, Connection> connections = new HashMap<>();
    /** Packets without payload of connections, waiting for rx buffers, in order. */
    private final ArrayDeque<VsockHeader> control = new ArrayDeque<>();
    /** Resets for packets of no connection, waiting for rx buffers. */
    private final ArrayDeque<VsockHeader> replies = new ArrayDeque<>();
    /** Connections with something for the guest, served round robin. */
    private final Set<Connection> wantRx = new LinkedHashSet<>();
    private final Set<Connection> creditUpdates = new LinkedHashSet<>();
    private long nextEphemeral = FIRST_EPHEMERAL_PORT;
    /** Transparent socket impersonation, when the device offers it. */
    Tsi tsi;

    VsockSession(VirtioVsock device, Active<VsockSession> active, long guestCid) {
        this.device = device;
        this.active = active;
        this.guestCid = guestCid;
    }

    EventLoop loop() {
        return active.loop();
    }

    void guestError(String message) {
        device.reportGuestError(message);
    }

    int connectionCount() {
        return connections.size();
    }

    // ---- tx: packets from the guest

    void drainTx() {
        DescriptorChain chain;
        while ((chain = active.pop(VirtioVsock.TX)) != null) {
            try {
                handle(chain);
            } catch (GuestMemoryException | ShortChainException e) {
                guestError("tx packet unreadable: " + e.getMessage());
            }
            active.addUsed(VirtioVsock.TX, chain.head(), 0);
        }
        pumpRx();
    }

    private void handle(DescriptorChain chain) {
        ChainReader r = chain.reader(active.memory());
        if (r.remaining() < VsockHeader.SIZE) {
            guestError("tx packet of " + r.remaining() + " bytes, shorter than its header");
            return;
        }
        VsockHeader h = VsockHeader.decode(r.readBytes(VsockHeader.SIZE));
        if (h.srcCid() != guestCid || h.dstCid() != HOST_CID) {
            guestError("packet from cid " + h.srcCid() + " to cid " + h.dstCid() + " dropped");
            return;
        }
        if (h.type() != VsockHeader.TYPE_STREAM) {
            reply(h, VsockHeader.OP_RST);
            return;
        }
        if (h.len() > r.remaining()) {
            guestError("packet claims " + h.len() + " bytes of payload, carries " + r.remaining());
            reply(h, VsockHeader.OP_RST);
            return;
        }
        Connection c = connections.get(new Key(h.dstPort(), h.srcPort()));
        if (c != null) {
            long before = c.peerCredit();
            c.peerBufAlloc = h.bufAlloc();
            c.peerFwdCnt = h.fwdCnt();
            c.creditRequested = false;
            if (before == 0 && c.peerCredit() > 0 && c.state == Connection.State.ESTABLISHED && c.mayHaveOutput()) {
                wantRx(c); // every packet carries the guest's credit: data waited for it
            }
        }
        switch (h.op()) {
            case VsockHeader.OP_REQUEST -> request(h, c);
            case VsockHeader.OP_RESPONSE -> response(h, c);
            case VsockHeader.OP_RW -> {
                if (c == null || c.state != Connection.State.ESTABLISHED) {
                    reply(h, VsockHeader.OP_RST);
                    return;
                }
                List<MemorySegment> data = h.len() == 0 ? List.of() : r.take(h.len());
                if (!c.fromGuest(data, h.len())) {
                    reset(c);
                }
            }
            case VsockHeader.OP_SHUTDOWN -> shutdown(h, c);
            case VsockHeader.OP_RST -> {
                if (c != null) {
                    remove(c);
                }
            }
            case VsockHeader.OP_CREDIT_UPDATE -> {
                if (c == null) {
                    reply(h, VsockHeader.OP_RST);
                } else if (c.mayHaveOutput()) {
                    wantRx(c); // the guest made room
                }
            }
            case VsockHeader.OP_CREDIT_REQUEST -> {
                if (c == null) {
                    reply(h, VsockHeader.OP_RST);
                } else {
                    c.creditAsked = true;
                    creditUpdate(c);
                }
            }
            default -> {
                guestError("unknown op " + h.op());
                reply(h, VsockHeader.OP_RST);
            }
        }
    }

    private void request(VsockHeader h, Connection existing) {
        if (existing != null) {
            guestError("REQUEST for a connection that exists: " + existing);
            reset(existing);
            return;
        }
        if (connections.size() >= MAX_CONNECTIONS) {
            guestError("connection refused: " + MAX_CONNECTIONS + " connections already");
            reply(h, VsockHeader.OP_RST);
            return;
        }
        Connection c = new Connection(this, h.dstPort(), h.srcPort(), Connection.State.CONNECTING_HOST);
        c.peerBufAlloc = h.bufAlloc();
        c.peerFwdCnt = h.fwdCnt();
        if (!device.accept(c)) {
            c.close();
            reply(h, VsockHeader.OP_RST);
            return;
        }
        connections.put(new Key(c.hostPort, c.guestPort), c);
        if (c.state == Connection.State.ESTABLISHED) {
            send(c, VsockHeader.OP_RESPONSE, 0);
        }
    }

    /** A host connect under way finished (its socket became writable): answer the guest's REQUEST. */
    void hostConnected(Connection c) {
        int error = PosixNet.getIntOption(c.fd, PosixNet.SOL_SOCKET, PosixNet.SO_ERROR);
        if (error != 0) {
            reset(c);
            return;
        }
        established(c);
        send(c, VsockHeader.OP_RESPONSE, 0);
    }

    /** The host side of {@code c} is connected: relay from now on. */
    void established(Connection c) {
        c.state = Connection.State.ESTABLISHED;
        c.watchFor(Posix.EPOLLIN);
    }

    private void response(VsockHeader h, Connection c) {
        if (c == null || c.state != Connection.State.CONNECTING_GUEST) {
            reply(h, VsockHeader.OP_RST);
            return;
        }
        established(c);
    }

    private void shutdown(VsockHeader h, Connection c) {
        if (c == null) {
            reply(h, VsockHeader.OP_RST);
            return;
        }
        if ((h.flags() & VsockHeader.SHUTDOWN_RCV) != 0) {
            c.guestShutRecv = true;
        }
        if ((h.flags() & VsockHeader.SHUTDOWN_SEND) != 0 && !c.guestShutSend) {
            c.guestShutSend();
        }
        if (c.guestShutRecv && c.guestShutSend) {
            // The guest closed its socket and waits for our RST to finish (virtio 1.2 §5.10.6.6); what it
            // sent before has been handed to the host or waits there, and goes with the socket.
            reset(c);
        }
    }

    // ---- connections the device starts (host connections to a guest port)

    /** A host connection for guest port {@code guestPort} (accepted socket {@code fd}): ask the guest. */
    boolean connectGuest(long guestPort, int fd, Connection.Protocol protocol) {
        if (connections.size() >= MAX_CONNECTIONS) {
            return false;
        }
        long port = nextFreePort(guestPort);
        if (port < 0) {
            return false;
        }
        Connection c = new Connection(this, port, guestPort, Connection.State.CONNECTING_GUEST);
        c.protocol = protocol;
        c.peerBufAlloc = 0; // until the guest's RESPONSE says
        c.attach(fd, 0);
        connections.put(new Key(port, guestPort), c);
        send(c, VsockHeader.OP_REQUEST, 0);
        return true;
    }

    private long nextFreePort(long guestPort) {
        for (int tries = 0; tries < 65536; tries++) {
            long p = nextEphemeral;
            nextEphemeral = nextEphemeral >= LAST_EPHEMERAL_PORT ? FIRST_EPHEMERAL_PORT : nextEphemeral + 1;
            if (!connections.containsKey(new Key(p, guestPort)) && !device.isServicePort(p)) {
                return p;
            }
        }
        return -1;
    }

    // ---- rx: packets for the guest

    /** Answers a packet that has no connection with {@code op} (RST), swapping its ports. */
    private void reply(VsockHeader h, int op) {
        if (h.op() == VsockHeader.OP_RST) {
            return; // never answer a reset
        }
        if (replies.size() >= MAX_PENDING_REPLIES) {
            guestError("resets for packets of no connection dropped: the guest takes none");
            return;
        }
        replies.add(new VsockHeader(HOST_CID, guestCid, h.dstPort(), h.srcPort(), 0, VsockHeader.TYPE_STREAM, op, 0,
                BUF_ALLOC, 0));
    }

    /** Queues a control packet of {@code c}. */
    void send(Connection c, int op, int flags) {
        queue(new VsockHeader(HOST_CID, guestCid, c.hostPort, c.guestPort, 0, VsockHeader.TYPE_STREAM, op, flags,
                BUF_ALLOC, c.fwdCnt));
        if (op != VsockHeader.OP_RST) {
            c.fwdCntAdvertised = c.fwdCnt;
        }
    }

    private void queue(VsockHeader h) {
        if (control.size() >= MAX_PENDING_CONTROL) {
            // The guest posts no rx buffers while it keeps the device busy: it loses its connections.
            guestError("control packets dropped: the guest takes none; " + connections.size() + " connections reset");
            control.clear();
            for (Connection c : List.copyOf(connections.values())) {
                remove(c);
            }
            return;
        }
        control.add(h);
    }

    /** {@code c} has something for the guest (data, its own bytes, or end of stream). */
    void wantRx(Connection c) {
        if (c.state != Connection.State.CLOSED && !c.wantsRx) {
            c.wantsRx = true;
            wantRx.add(c);
        }
    }

    /**
     * Tells the guest how much of {@code c}'s credit is free again when it may be running short: the guest
     * believes {@code received - fwdCntAdvertised} bytes of our buffer are taken; once that is half of it
     * and we have forwarded more, a CREDIT_UPDATE (not one per packet: every packet costs the guest).
     */
    void maybeCreditUpdate(Connection c) {
        long believedTaken = (c.received - c.fwdCntAdvertised) & 0xffff_ffffL;
        if (believedTaken >= BUF_ALLOC / 2 && c.fwdCnt != c.fwdCntAdvertised) {
            creditUpdate(c);
        }
    }

    private void creditUpdate(Connection c) {
        creditUpdates.add(c);
    }

    /** Moves control packets and data into the guest's rx buffers while both exist. */
    void pumpRx() {
        while (!control.isEmpty() || !replies.isEmpty() || !creditUpdates.isEmpty() || !wantRx.isEmpty()) {
            VsockHeader next = nextControl();
            if (next != null) {
                DescriptorChain chain = active.pop(VirtioVsock.RX);
                if (chain == null) {
                    return;
                }
                active.addUsed(VirtioVsock.RX, chain.head(), writeHeader(chain, next));
                pollControl();
                continue;
            }
            if (wantRx.isEmpty()) {
                return;
            }
            Connection c = wantRx.iterator().next();
            wantRx.remove(c);
            c.wantsRx = false;
            if (c.state != Connection.State.ESTABLISHED) {
                continue;
            }
            if (!c.mayHaveOutput()) {
                c.drained(); // nothing after all: no rx buffer goes back empty for it
                continue;
            }
            if (!deliver(c)) {
                return; // no rx buffer: c stays wanting
            }
        }
    }

    /** One packet of data (or the end of stream) of {@code c} into an rx buffer; false when none is posted. */
    private boolean deliver(Connection c) {
        long credit = c.peerCredit();
        if (credit == 0) {
            if (!c.creditRequested) {
                // Wait for the guest's credit (every packet of it carries it); ask once in case none comes.
                c.creditRequested = true;
                send(c, VsockHeader.OP_CREDIT_REQUEST, 0);
            }
            return true;
        }
        DescriptorChain chain = active.pop(VirtioVsock.RX);
        if (chain == null) {
            c.wantsRx = true;
            wantRx.add(c);
            return false;
        }
        int used;
        try {
            ChainWriter w = chain.writer(active.memory());
            if (w.remaining() <= VsockHeader.SIZE) {
                guestError("rx buffer of " + w.remaining() + " bytes, too small for a packet");
                active.addUsed(VirtioVsock.RX, chain.head(), 0);
                wantRx(c);
                return true;
            }
            List<MemorySegment> header = w.take(VsockHeader.SIZE);
            long room = Math.min(Math.min(w.remaining(), credit), MAX_RX_PAYLOAD);
            List<MemorySegment> payload = w.take(room);
            long n = c.fillForGuest(payload, room);
            VsockHeader h;
            if (n > 0) {
                c.txCnt += n;
                h = new VsockHeader(HOST_CID, guestCid, c.hostPort, c.guestPort, n, VsockHeader.TYPE_STREAM,
                        VsockHeader.OP_RW, 0, BUF_ALLOC, c.fwdCnt);
                c.fwdCntAdvertised = c.fwdCnt;
                used = VsockHeader.SIZE + (int) n;
            } else if (n < 0 && !c.shutdownSent) {
                c.shutdownSent = true;
                h = new VsockHeader(HOST_CID, guestCid, c.hostPort, c.guestPort, 0, VsockHeader.TYPE_STREAM,
                        VsockHeader.OP_SHUTDOWN, VsockHeader.SHUTDOWN_SEND | VsockHeader.SHUTDOWN_RCV, BUF_ALLOC, c.fwdCnt);
                used = VsockHeader.SIZE;
            } else {
                // Nothing after all (another reader was first): the buffer goes back unused, the host is watched.
                active.addUsed(VirtioVsock.RX, chain.head(), 0);
                c.drained();
                return true;
            }
            write(header, h.encode());
        } catch (GuestMemoryException e) {
            guestError("rx buffer outside guest RAM: " + e.getMessage());
            used = 0;
        }
        active.addUsed(VirtioVsock.RX, chain.head(), used);
        if (c.state == Connection.State.ESTABLISHED && c.mayHaveOutput()) {
            wantRx(c);
        } else {
            c.drained();
        }
        return true;
    }

    /** The control packet due next (made now, for a credit update, so it carries the latest count), or null. */
    private VsockHeader nextControl() {
        if (!control.isEmpty()) {
            return control.peek();
        }
        if (!replies.isEmpty()) {
            return replies.peek();
        }
        for (Iterator<Connection> it = creditUpdates.iterator(); it.hasNext(); ) {
            Connection c = it.next();
            if (c.state != Connection.State.CLOSED && (c.fwdCnt != c.fwdCntAdvertised || c.creditAsked)) {
                return new VsockHeader(HOST_CID, guestCid, c.hostPort, c.guestPort, 0, VsockHeader.TYPE_STREAM,
                        VsockHeader.OP_CREDIT_UPDATE, 0, BUF_ALLOC, c.fwdCnt);
            }
            it.remove();
        }
        return null;
    }

    /** Takes the control packet {@link #nextControl()} returned off its queue. */
    private void pollControl() {
        if (!control.isEmpty()) {
            control.poll();
        } else if (!replies.isEmpty()) {
            replies.poll();
        } else {
            Iterator<Connection> it = creditUpdates.iterator();
            Connection c = it.next();
            it.remove();
            c.fwdCntAdvertised = c.fwdCnt;
            c.creditAsked = false;
        }
    }

    private int writeHeader(DescriptorChain chain, VsockHeader h) {
        try {
            ChainWriter w = chain.writer(active.memory());
            if (w.remaining() < VsockHeader.SIZE) {
                guestError("rx buffer of " + w.remaining() + " bytes, too small for a header");
                return 0;
            }
            w.write(h.encode());
            return VsockHeader.SIZE;
        } catch (GuestMemoryException | ShortChainException e) {
            guestError("rx buffer unusable: " + e.getMessage());
            return 0;
        }
    }

    private static void write(List<MemorySegment> dst, byte[] bytes) {
        int at = 0;
        for (MemorySegment d : dst) {
            int n = (int) d.byteSize();
            MemorySegment.copy(MemorySegment.ofArray(bytes), at, d, 0, n);
            at += n;
        }
    }

    /** Raises the interrupts the work done so far earned (after work that did not start with a kick). */
    void flush() {
        pumpRx();
        active.flushInterrupts();
    }

    // ---- ending connections

    /** Resets {@code c}: the guest hears RST, the host side is closed. */
    void reset(Connection c) {
        if (c.state == Connection.State.CLOSED) {
            return;
        }
        send(c, VsockHeader.OP_RST, 0);
        remove(c);
    }

    private void remove(Connection c) {
        connections.remove(new Key(c.hostPort, c.guestPort));
        wantRx.remove(c);
        creditUpdates.remove(c);
        c.close();
    }

    /** The activation ends: every host socket is closed (the guest's sockets went with its reset). */
    void closeAll() {
        for (Connection c : List.copyOf(connections.values())) {
            c.close();
        }
        if (tsi != null) {
            tsi.closeAll();
        }
        connections.clear();
        wantRx.clear();
        control.clear();
        replies.clear();
        creditUpdates.clear();
    }

    // ---- snapshots

    /**
     * Why this session cannot go into a snapshot, or null when it holds nothing of the guest's: no
     * connection (TSI sockets and listeners are connections to the TSI port), no accepted host connection
     * waiting for a guest listener, no packet waiting for an rx buffer.
     */
    String snapshotRefusal() {
        int accepted = tsi == null ? 0 : tsi.pendingCount();
        if (!connections.isEmpty() || accepted > 0) {
            return "the guest has " + connections.size() + " connections and " + accepted
                    + " accepted host connections (host sockets cannot go into a snapshot)";
        }
        int packets = control.size() + replies.size() + creditUpdates.size() + wantRx.size();
        if (packets > 0) {
            return packets + " packets wait for guest rx buffers";
        }
        return null;
    }

    long nextEphemeral() {
        return nextEphemeral;
    }

    void nextEphemeral(long port) {
        nextEphemeral = port;
    }

    /** EAGAIN-safe errno check for callers that connect host sockets. */
    static boolean inProgress(int r) {
        return r == -Errno.EINPROGRESS || r == -Errno.EAGAIN;
    }
}
