package org.krun.device.net.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.function.Supplier;

import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;

/**
 * Frames over a connected unix stream socket, each behind its {@link LengthPrefix}: passt (krun's own or one
 * the user started with {@code --socket}) and QEMU's stream netdev speak it.
 *
 * <p>Bounds: one receive buffer of {@link #RX_CAPACITY} (read only while no complete frame waits in it) and
 * one frame's worth of a partly written frame; a length past {@link VnetHeader#MAX_FRAME} ends the stream,
 * as does its end in the middle of a frame.
 */
final class StreamBackend implements Backend {

    /** Several frames per read for small frames, at least one of the largest. */
    static final int RX_CAPACITY = 256 * 1024;

    private final int fd;
    private final String peer;
    private final Supplier<String> peerState;
    private final Runnable onClose;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment rx;
    private final MemorySegment rest;
    /** Unparsed bytes of rx: [start, end). */
    private long start;
    private long end;
    /** The frame receive() returned, until consumed; -1 for none. */
    private int frameLength = -1;
    /** What a partial send left: rest[restStart, restEnd). */
    private long restStart;
    private long restEnd;
    private long droppedShort;
    private boolean closed;

    /**
     * @param fd a connected stream socket, non-blocking; the backend owns it
     * @param peer how messages name the peer ({@code passt}, the socket's path)
     * @param peerState what to add when the peer is gone (a child's exit status), or null
     * @param onClose run once when the backend closes (stop a child), after the socket is closed
     */
    StreamBackend(int fd, String peer, Supplier<String> peerState, Runnable onClose) {
        this.fd = fd;
        this.peer = peer;
        this.peerState = peerState;
        this.onClose = onClose;
        this.rx = arena.allocate(RX_CAPACITY, 64);
        this.rest = arena.allocate(LengthPrefix.SIZE + VnetHeader.MAX_FRAME, 64);
    }

    @Override
    public int fd() {
        return fd;
    }

    @Override
    public boolean send(MemorySegment buf, long offset, int length) {
        if (restEnd > restStart) {
            return false;
        }
        long at = offset - LengthPrefix.SIZE;
        LengthPrefix.put(buf, at, length);
        long total = LengthPrefix.SIZE + (long) length;
        long n = PosixNet.send(fd, buf.asSlice(at, total), PosixNet.MSG_DONTWAIT);
        if (n == -Errno.EAGAIN) {
            return false;
        }
        if (n < 0) {
            throw gone("send: " + Errno.name((int) -n));
        }
        if (n < total) {
            // The peer took part of it: the rest goes before anything else, as soon as it has room.
            MemorySegment.copy(buf, at + n, rest, 0, total - n);
            restStart = 0;
            restEnd = total - n;
        }
        return true;
    }

    @Override
    public boolean pending() {
        return restEnd > restStart;
    }

    @Override
    public boolean flush() {
        while (restEnd > restStart) {
            long n = PosixNet.send(fd, rest.asSlice(restStart, restEnd - restStart), PosixNet.MSG_DONTWAIT);
            if (n == -Errno.EAGAIN) {
                return false;
            }
            if (n < 0) {
                throw gone("send: " + Errno.name((int) -n));
            }
            restStart += n;
        }
        restStart = restEnd = 0;
        return true;
    }

    @Override
    public int receive() {
        if (frameLength >= 0) {
            return frameLength;
        }
        while (true) {
            int length = LengthPrefix.complete(rx, start, end, VnetHeader.MAX_FRAME);
            if (length >= 0) {
                if (length < VnetHeader.ETH_HLEN) {
                    droppedShort++;
                    skip(LengthPrefix.SIZE + length);
                    continue;
                }
                frameLength = length;
                return length;
            }
            if (RX_CAPACITY - end < LengthPrefix.SIZE + VnetHeader.MAX_FRAME && start > 0) {
                MemorySegment.copy(rx, start, rx, 0, end - start);
                end -= start;
                start = 0;
            }
            long n = PosixNet.recv(fd, rx.asSlice(end, RX_CAPACITY - end), PosixNet.MSG_DONTWAIT);
            if (n == -Errno.EAGAIN) {
                return -1;
            }
            if (n == 0) {
                throw gone(end > start ? "the stream ended in the middle of a frame (" + (end - start) + " bytes of it came)"
                        : "it closed the connection");
            }
            if (n < 0) {
                throw gone("receive: " + Errno.name((int) -n));
            }
            end += n;
        }
    }

    private void skip(long n) {
        start += n;
        if (start == end) {
            start = end = 0;
        }
    }

    @Override
    public MemorySegment frameBuffer() {
        return rx;
    }

    @Override
    public long frameOffset() {
        return start + LengthPrefix.SIZE;
    }

    @Override
    public void consumed() {
        if (frameLength >= 0) {
            skip(LengthPrefix.SIZE + (long) frameLength);
            frameLength = -1;
        }
    }

    @Override
    public String dropped() {
        if (droppedShort == 0) {
            return null;
        }
        String s = droppedShort + " frames from " + peer + " shorter than an Ethernet header dropped";
        droppedShort = 0;
        return s;
    }

    private PeerException gone(String what) {
        String state = peerState == null ? null : peerState.get();
        return new PeerException(peer + ": " + what + (state == null ? "" : " (" + state + ")"));
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Posix.close(fd);
        try {
            if (onClose != null) {
                onClose.run();
            }
        } finally {
            arena.close();
        }
    }

    @Override
    public String toString() {
        return peer;
    }
}
