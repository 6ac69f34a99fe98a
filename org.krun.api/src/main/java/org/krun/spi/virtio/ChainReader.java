package org.krun.spi.virtio;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.krun.spi.memory.GuestMemory;

/**
 * Reads the device-readable part of a descriptor chain as one little-endian byte stream.
 *
 * @see DescriptorChain#reader(GuestMemory)
 */
public final class ChainReader extends ChainCursor {

    ChainReader(GuestMemory mem, long[] addresses, int[] lengths, int start, int end) {
        super(mem, addresses, lengths, start, end);
    }

    /**
     * Reads up to {@code length} bytes; returns how many were read (0 at the end).
     *
     * @throws org.krun.spi.memory.GuestMemoryException if a buffer lies outside guest RAM
     */
    public int read(byte[] dst, int offset, int length) {
        java.util.Objects.checkFromIndexSize(offset, length, dst.length);
        int n = (int) Math.min(length, remaining());
        int done = 0;
        while (done < n) {
            MemorySegment piece = nextPiece(n - done);
            MemorySegment.copy(piece, JAVA_BYTE, 0, dst, offset + done, (int) piece.byteSize());
            done += (int) piece.byteSize();
        }
        return n;
    }

    /** Reads exactly {@code length} bytes or throws {@link ShortChainException}. */
    public byte[] readBytes(int length) {
        if (length < 0 || length > remaining()) {
            throw new ShortChainException("need " + length + " readable bytes, chain has " + remaining());
        }
        // Resolve the guest buffers first: a chain claiming more than guest RAM holds fails here,
        // before the host allocates anything of the guest's choosing.
        java.util.List<MemorySegment> pieces = take(length);
        byte[] b = new byte[length];
        int at = 0;
        for (MemorySegment piece : pieces) {
            MemorySegment.copy(piece, JAVA_BYTE, 0, b, at, (int) piece.byteSize());
            at += (int) piece.byteSize();
        }
        return b;
    }

    /** Reads everything that is left. */
    public byte[] readAll() {
        if (remaining() > Integer.MAX_VALUE - 8) {
            throw new ShortChainException("chain too large to buffer");
        }
        return readBytes((int) remaining());
    }

    private ByteBuffer readLe(int n) {
        return ByteBuffer.wrap(readBytes(n)).order(ByteOrder.LITTLE_ENDIAN);
    }

    public int readU8() {
        return readBytes(1)[0] & 0xff;
    }

    public int readU16() {
        return readLe(2).getShort() & 0xffff;
    }

    public int readInt() {
        return readLe(4).getInt();
    }

    public long readLong() {
        return readLe(8).getLong();
    }
}
