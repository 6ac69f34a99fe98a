package org.krun.device.net.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;

/**
 * The framing of a unix stream backend (QEMU's stream netdev, passt): each frame behind its length, 4 bytes,
 * big-endian. Pure: decides on bytes already read, so a peer's stream can be judged without a socket.
 */
final class LengthPrefix {

    static final int SIZE = 4;
    private static final java.lang.foreign.ValueLayout.OfInt BE = JAVA_INT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    private LengthPrefix() {
    }

    /**
     * The length of the frame whose prefix starts {@code buf[start, end)}: at least 0 when the whole frame is
     * there (its bytes follow the prefix), -1 when more bytes are needed.
     *
     * @throws Backend.PeerException when the prefix names more than {@code max} bytes: the peer broke the
     *         protocol and the stream cannot be trusted past it
     */
    static int complete(MemorySegment buf, long start, long end, int max) {
        if (end - start < SIZE) {
            return -1;
        }
        long length = buf.get(BE, start) & 0xffffffffL;
        if (length > max) {
            throw new Backend.PeerException("the peer announced a frame of " + length + " bytes, more than " + max);
        }
        return end - start - SIZE >= length ? (int) length : -1;
    }

    /** Writes the prefix of a {@code length}-byte frame at {@code at}. */
    static void put(MemorySegment buf, long at, int length) {
        buf.set(BE, at, length);
    }
}
