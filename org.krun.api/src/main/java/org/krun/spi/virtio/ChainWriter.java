package org.krun.spi.virtio;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.krun.spi.memory.GuestMemory;

/**
 * Writes into the device-writable part of a descriptor chain as one little-endian byte stream;
 * {@link #position()} is the length to report with {@link Virtqueue#addUsed}.
 *
 * @see DescriptorChain#writer(GuestMemory)
 */
public final class ChainWriter extends ChainCursor {

    ChainWriter(GuestMemory mem, long[] addresses, int[] lengths, int start, int end) {
        super(mem, addresses, lengths, start, end);
    }

    /** Writes as much of {@code src} as fits; returns how many bytes were written. */
    public int writeSome(byte[] src, int offset, int length) {
        int n = (int) Math.min(length, remaining());
        int done = 0;
        while (done < n) {
            MemorySegment piece = nextPiece(n - done);
            MemorySegment.copy(src, offset + done, piece, JAVA_BYTE, 0, (int) piece.byteSize());
            done += (int) piece.byteSize();
        }
        return n;
    }

    /** Writes all of {@code src} or throws {@link ShortChainException} (writing nothing) if it does not fit. */
    public void write(byte[] src, int offset, int length) {
        if (length > remaining()) {
            throw new ShortChainException("need " + length + " writable bytes, chain has " + remaining());
        }
        writeSome(src, offset, length);
    }

    public void write(byte[] src) {
        write(src, 0, src.length);
    }

    public void writeU8(int v) {
        write(new byte[] {(byte) v});
    }

    public void writeU16(int v) {
        write(ByteBuffer.allocate(2).order(ByteOrder.LITTLE_ENDIAN).putShort((short) v).array());
    }

    public void writeInt(int v) {
        write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
    }

    public void writeLong(long v) {
        write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(v).array());
    }
}
