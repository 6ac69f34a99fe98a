package org.krun.device.net.internal;

import java.lang.foreign.MemorySegment;

/**
 * What carries a card's frames on the host: a non-blocking descriptor the VM's event loop watches, and
 * frame-at-a-time sending and receiving without allocation. Loop-confined.
 *
 * <p>Frames are Ethernet frames, preceded by the 12-byte {@link VnetHeader} when {@link #vnetHeader()}
 * (TAP). A backend never holds more than one frame the peer did not take, and never reads more from the
 * peer than one buffer ({@link #receive}) until the device took the frame it gave: that is the back-pressure
 * both ways.
 */
interface Backend extends AutoCloseable {

    /** Room a backend may use before a frame handed to {@link #send} (a length prefix). */
    int HEADROOM = 16;

    /** The descriptor the device's event loop watches (EPOLLIN for {@link #receive}, EPOLLOUT for {@link #flush}). */
    int fd();

    /** Whether frames both ways carry the virtio-net header (and offloads can pass); plain frames by default. */
    default boolean vnetHeader() {
        return false;
    }

    /** The offload features this backend honours ({@link NetFeatures}); 0 without vnet headers. */
    default long offloads() {
        return 0;
    }

    /** The driver accepted {@code features}: tell the host which offloads it may hand the guest. */
    default void negotiated(long features) {
    }

    /**
     * Sends the frame in {@code buf[offset, offset + length)}; the {@link #HEADROOM} bytes before it are the
     * backend's to use.
     *
     * @return true when the frame was taken (sent, dropped as the peer's transport does, or held by the
     *         backend until {@link #flush}); false when the peer cannot take it now: send it again once the
     *         descriptor is writable
     * @throws PeerException when the peer is gone or broke the protocol: the card goes down
     */
    boolean send(MemorySegment buf, long offset, int length);

    /** Whether part of a sent frame waits for the peer (watch EPOLLOUT and {@link #flush}). */
    default boolean pending() {
        return false;
    }

    /** Writes what {@link #pending()} holds; true when nothing is left. */
    default boolean flush() {
        return true;
    }

    /**
     * The next frame from the peer: its length, and its bytes at {@link #frameOffset()} of {@link #frameBuffer()}
     * (header included when {@link #vnetHeader()}); -1 when none is there now. The same frame comes back until
     * {@link #consumed()}. Frames too long or too short are dropped here.
     *
     * @throws PeerException when the peer is gone or broke the protocol
     */
    int receive();

    MemorySegment frameBuffer();

    long frameOffset();

    /** The frame {@link #receive} returned was handed to the guest (or dropped). */
    void consumed();

    /** What the log says of frames this backend dropped since the last call, or null. */
    default String dropped() {
        return null;
    }

    @Override
    void close();

    /** The peer is gone or broke the protocol; the message says how, in one line. */
    final class PeerException extends RuntimeException {
        private static final long serialVersionUID = 1L;

        PeerException(String message) {
            super(message);
        }
    }
}
