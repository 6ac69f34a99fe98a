package org.krun.device.vsock.internal;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.List;

import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.spi.virtio.EventLoop;

/**
 * One vsock stream connection between a guest port and a host port of the device, and what stands behind
 * it on the host: a socket descriptor relayed byte for byte, unless a {@link Protocol} (transparent socket
 * impersonation) speaks on the connection itself. Loop-confined.
 *
 * <p>Credit (virtio 1.2 §5.10.6.3): the guest may have at most {@link VsockSession#BUF_ALLOC} bytes that
 * the device took and has not yet handed to the host socket; those wait in {@link #toHost}, allocated only
 * while the host socket is full. The device sends the guest at most what the guest's own
 * {@code buf_alloc} minus its bytes in flight allows.
 */
final class Connection {

    /** Where a connection stands (virtio 1.2 §5.10.6.5-7). */
    enum State {
        /** The guest asked (REQUEST); the host side is being reached. */
        CONNECTING_HOST,
        /** The device asked the guest (REQUEST) for a host connection; waiting for RESPONSE. */
        CONNECTING_GUEST,
        ESTABLISHED,
        /** Reset or closed: nothing more happens. */
        CLOSED
    }

    /**
     * What speaks on a connection instead of a plain relay to {@link #fd}: the handshake, datagram framing
     * and listener records of transparent socket impersonation.
     */
    interface Protocol {
        /** Guest bytes for the protocol; false resets the connection. */
        boolean fromGuest(Connection c, List<MemorySegment> data);

        /** The host descriptor is ready ({@code events}); the protocol reads or accepts. */
        void onHostEvent(Connection c, int events);

        /** The guest will send no more. */
        default void guestShutSend(Connection c) {
        }

        /** What the device had for the guest has been delivered: the protocol may produce more. */
        default void drained(Connection c) {
        }

        /** The connection is gone: release what the protocol holds. */
        default void close() {
        }
    }

    final long hostPort;
    final long guestPort;
    private final VsockSession session;
    State state;
    /** The host socket relayed, or -1 while there is none (a protocol may make one later). */
    int fd = -1;
    private EventLoop.Watch watch;
    Protocol protocol;

    // credit: what the guest told us, and what we sent it (u32 arithmetic)
    long peerBufAlloc;
    long peerFwdCnt;
    long txCnt;
    /** Bytes of guest data received (RW payloads). */
    long received;
    /** Bytes of guest data handed on (to the host socket or a protocol): our fwd_cnt. */
    long fwdCnt;
    long fwdCntAdvertised;

    /** Guest data the host socket did not take yet (at most BUF_ALLOC bytes); null while empty. */
    private ByteBuffer toHost;
    /** Bytes the device itself has for the guest, ahead of relayed data (protocol responses, frames). */
    private ByteBuffer toGuest;

    boolean guestShutSend;
    boolean guestShutRecv;
    boolean hostEof;
    boolean shutdownSent;
    /** Once what the device has for the guest is delivered, the connection ends (a refused request). */
    boolean endAfterPending;
    /** The guest asked for our credit (CREDIT_REQUEST): answer even if it did not change. */
    boolean creditAsked;
    /** The device asked the guest for credit (CREDIT_REQUEST) and has not heard since. */
    boolean creditRequested;
    /** In the session's queue of connections with something for the guest. */
    boolean wantsRx;

    Connection(VsockSession session, long hostPort, long guestPort, State state) {
        this.session = session;
        this.hostPort = hostPort;
        this.guestPort = guestPort;
        this.state = state;
    }

    /** Takes {@code fd} as this connection's host socket and watches it for {@code events}. */
    void attach(int newFd, int events) {
        fd = newFd;
        watch = session.loop().watch(newFd, events, this::onHostEvent);
    }

    /** The host side is connected: relay from now on. */
    void established() {
        session.established(this);
    }

    /** Watches the host socket for {@code events} (EPOLLIN, EPOLLOUT) from now on. */
    void watchFor(int events) {
        if (watch != null) {
            watch.events(events);
        }
    }

    int watchedEvents() {
        return watch == null ? 0 : watch.events();
    }

    private void unwatch() {
        if (watch != null) {
            watch.close();
            watch = null;
        }
    }

    /**
     * Closes the host socket and keeps the connection (a refused request still answers the guest). Watching
     * with no events is not enough for a socket that failed: epoll reports its HUP and ERR regardless.
     */
    void closeHost() {
        unwatch();
        if (fd >= 0) {
            Posix.close(fd);
            fd = -1;
        }
    }

    private void onHostEvent(int events) {
        if (state == State.CLOSED) {
            return;
        }
        try {
            if (protocol != null) {
                protocol.onHostEvent(this, events);
            } else if (state == State.CONNECTING_HOST) {
                session.hostConnected(this);
            } else {
                if ((events & Posix.EPOLLOUT) != 0) {
                    flushToHost();
                }
                if ((events & (Posix.EPOLLIN | Posix.EPOLLHUP | Posix.EPOLLERR)) != 0 && state == State.ESTABLISHED) {
                    if ((events & (Posix.EPOLLHUP | Posix.EPOLLERR)) != 0 && toHost == null) {
                        // Done both ways: epoll reports HUP and ERR whatever it is asked for, so a watched dead
                        // socket would wake the loop for ever. What is left to read the rx pump reads unwatched;
                        // a later write fails (EPIPE) and resets.
                        unwatch();
                    } else {
                        watchFor(watchedEvents() & ~Posix.EPOLLIN);
                    }
                    if (mayHaveOutput()) {
                        // Data (or end of stream) waits: the rx pump reads it when the guest has room.
                        session.wantRx(this);
                    }
                }
            }
        } finally {
            session.flush();
        }
    }

    // ---- guest to host

    /** Credit the guest may still use: BUF_ALLOC less what waits for the host. */
    long freeForGuest() {
        return VsockSession.BUF_ALLOC - (toHost == null ? 0 : toHost.position());
    }

    /**
     * Guest data (RW payload, in guest memory) for the host: written to the socket at once where it takes it,
     * the rest kept within credit. False when the guest exceeded its credit or the host failed: reset.
     */
    boolean fromGuest(List<MemorySegment> data, long length) {
        received += length;
        if (protocol != null) {
            fwdCnt += length;
            return protocol.fromGuest(this, data);
        }
        if (fd < 0 || guestShutSend) {
            return false;
        }
        if (length > freeForGuest()) {
            session.guestError("connection " + this + ": " + length + " bytes beyond the credit given");
            return false;
        }
        for (MemorySegment piece : data) {
            long off = 0;
            if (toHost == null) {
                while (off < piece.byteSize()) {
                    long n = PosixNet.send(fd, piece.asSlice(off), PosixNet.MSG_DONTWAIT);
                    if (n == -Errno.EAGAIN) {
                        break;
                    }
                    if (n == -Errno.EINTR) {
                        continue;
                    }
                    if (n < 0) {
                        return false; // EPIPE, ECONNRESET: the host side is gone
                    }
                    off += n;
                    fwdCnt += n;
                }
            }
            if (off < piece.byteSize()) {
                keepForHost(piece.asSlice(off));
            }
        }
        session.maybeCreditUpdate(this);
        return true;
    }

    /** Guest bytes a protocol held back (already counted as received and forwarded) for the host socket. */
    void sendEarlyToHost(MemorySegment bytes) {
        long off = 0;
        while (off < bytes.byteSize()) {
            long n = PosixNet.send(fd, bytes.asSlice(off), PosixNet.MSG_DONTWAIT);
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n < 0) {
                break;
            }
            off += n;
        }
        if (off < bytes.byteSize()) {
            keepForHost(bytes.asSlice(off));
            fwdCnt -= bytes.byteSize() - off; // forwarded only once written
        }
    }

    private void keepForHost(MemorySegment rest) {
        if (toHost == null) {
            toHost = ByteBuffer.allocate((int) VsockSession.BUF_ALLOC);
            watchFor(watchedEvents() | Posix.EPOLLOUT);
        }
        toHost.put(rest.asByteBuffer());
    }

    /** Writes what waits for the host; at the end, a pending half-close. */
    private void flushToHost() {
        if (toHost != null) {
            toHost.flip();
            while (toHost.hasRemaining()) {
                long n = PosixNet.send(fd, MemorySegment.ofBuffer(toHost), PosixNet.MSG_DONTWAIT);
                if (n == -Errno.EAGAIN) {
                    break;
                }
                if (n == -Errno.EINTR) {
                    continue;
                }
                if (n < 0) {
                    session.reset(this);
                    return;
                }
                toHost.position(toHost.position() + (int) n);
                fwdCnt += n;
            }
            toHost.compact();
            if (toHost.position() == 0) {
                toHost = null;
                watchFor(watchedEvents() & ~Posix.EPOLLOUT);
            }
            session.maybeCreditUpdate(this);
        }
        if (toHost == null && guestShutSend && fd >= 0) {
            PosixNet.shutdown(fd, PosixNet.SHUT_WR);
        }
    }

    /** The guest will send no more: the host socket's write side closes once what waits is written. */
    void guestShutSend() {
        guestShutSend = true;
        if (protocol != null) {
            protocol.guestShutSend(this);
        } else if (toHost == null && fd >= 0) {
            PosixNet.shutdown(fd, PosixNet.SHUT_WR);
        }
    }

    boolean hasToHost() {
        return toHost != null;
    }

    // ---- host to guest

    /** Credit the guest gives us now. */
    long peerCredit() {
        long inFlight = (txCnt - peerFwdCnt) & 0xffff_ffffL;
        return Math.max(0, peerBufAlloc - inFlight);
    }

    /** Queues bytes of the device's own for the guest (protocol messages), ahead of relayed data. */
    void sendToGuest(ByteBuffer bytes) {
        if (toGuest == null || !toGuest.hasRemaining()) {
            toGuest = bytes;
        } else {
            ByteBuffer both = ByteBuffer.allocate(toGuest.remaining() + bytes.remaining());
            both.put(toGuest).put(bytes).flip();
            toGuest = both;
        }
        session.wantRx(this);
    }

    /** Bytes of the device's own waiting for the guest. */
    int pendingToGuest() {
        return toGuest == null ? 0 : toGuest.remaining();
    }

    /**
     * Fills {@code dst} (guest rx buffers) with what the guest should get next: the device's own bytes,
     * then data read from the host socket. Returns the bytes written; 0 when the host has nothing now;
     * -1 at the host's end of stream.
     */
    long fillForGuest(List<MemorySegment> dst, long max) {
        long done = 0;
        if (toGuest != null && toGuest.hasRemaining()) {
            for (MemorySegment d : dst) {
                int n = (int) Math.min(Math.min(d.byteSize(), toGuest.remaining()), max - done);
                if (n <= 0) {
                    break;
                }
                MemorySegment.copy(MemorySegment.ofBuffer(toGuest), 0, d, 0, n);
                toGuest.position(toGuest.position() + n);
                done += n;
            }
            return done;
        }
        if (endAfterPending) {
            return -1;
        }
        if (protocol != null || fd < 0 || hostEof || guestShutRecv) {
            return 0;
        }
        for (MemorySegment d : dst) {
            long room = Math.min(d.byteSize(), max - done);
            if (room <= 0) {
                break;
            }
            long n = PosixNet.recv(fd, d.asSlice(0, room), PosixNet.MSG_DONTWAIT);
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n == -Errno.EAGAIN) {
                break;
            }
            if (n == 0 || n < 0) {
                // End of stream (or an error, which ends it too: the guest hears SHUTDOWN, then RST on close).
                if (done == 0) {
                    hostEof = true;
                    return -1;
                }
                break;
            }
            done += n;
            if (n < room) {
                break;
            }
        }
        return done;
    }

    /**
     * Whether the host socket (or the device) may have something for the guest now. Not while epoll watches
     * the socket for input: it says when there is some, and a read now would only spend an rx buffer.
     */
    boolean mayHaveOutput() {
        if (toGuest != null && toGuest.hasRemaining()) {
            return true;
        }
        if (endAfterPending) {
            return !shutdownSent;
        }
        return protocol == null && fd >= 0 && !hostEof && !guestShutRecv && (watchedEvents() & Posix.EPOLLIN) == 0;
    }

    /** Called when the rx pump found nothing more to read: watch the host socket again. */
    void drained() {
        wantsRx = false;
        if (protocol != null) {
            protocol.drained(this);
            return;
        }
        if (protocol == null && fd >= 0 && !hostEof && !guestShutRecv && state == State.ESTABLISHED) {
            watchFor(watchedEvents() | Posix.EPOLLIN);
        }
    }

    /** Releases the host side; idempotent. */
    void close() {
        state = State.CLOSED;
        if (protocol != null) {
            protocol.close();
        }
        closeHost();
        toHost = null;
        toGuest = null;
    }

    @Override
    public String toString() {
        return "host port " + hostPort + " <-> guest port " + guestPort;
    }
}
