package org.krun.spi.virtio;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.krun.spi.memory.GuestMemory;

/** A position within a run of guest buffers; the common half of {@link ChainReader} and {@link ChainWriter}. */
abstract sealed class ChainCursor permits ChainReader, ChainWriter {

    final GuestMemory mem;
    private final long[] addresses;
    private final int[] lengths;
    private final int end;
    private int index;
    private long offset;
    private long remaining;
    private long consumed;

    ChainCursor(GuestMemory mem, long[] addresses, int[] lengths, int start, int end) {
        this.mem = mem;
        this.addresses = addresses;
        this.lengths = lengths;
        this.index = start;
        this.end = end;
        long total = 0;
        for (int i = start; i < end; i++) {
            total += lengths[i] & 0xffffffffL;
        }
        this.remaining = total;
        skipEmpty();
    }

    private void skipEmpty() {
        while (index < end && offset == (lengths[index] & 0xffffffffL)) {
            index++;
            offset = 0;
        }
    }

    /** Bytes left. */
    public long remaining() {
        return remaining;
    }

    /** Bytes consumed so far. */
    public long position() {
        return consumed;
    }

    /**
     * The guest memory of the next {@code n} bytes (at most {@link #remaining()}), as host segments, and
     * advances past them. The segments alias guest RAM: for zero-copy I/O against host files.
     *
     * @throws org.krun.spi.memory.GuestMemoryException if a buffer lies outside guest RAM
     */
    public List<MemorySegment> take(long n) {
        if (n < 0 || n > remaining) {
            throw new IndexOutOfBoundsException("take " + n + " of " + remaining);
        }
        List<MemorySegment> out = new ArrayList<>(2);
        long left = n;
        while (left > 0) {
            long len = lengths[index] & 0xffffffffL;
            long chunk = Math.min(left, len - offset);
            out.addAll(mem.slices(addresses[index] + offset, chunk));
            advance(chunk);
            left -= chunk;
        }
        return out;
    }

    /** The next contiguous piece (up to {@code max} bytes) without splitting across descriptors. */
    MemorySegment nextPiece(long max) {
        long len = lengths[index] & 0xffffffffL;
        long chunk = Math.min(max, len - offset);
        MemorySegment s = mem.slices(addresses[index] + offset, chunk).get(0);
        advance(s.byteSize());
        return s;
    }

    /** Skips {@code n} bytes (at most {@link #remaining()}). */
    public void skip(long n) {
        if (n < 0 || n > remaining) {
            throw new IndexOutOfBoundsException("skip " + n + " of " + remaining);
        }
        long left = n;
        while (left > 0) {
            long len = lengths[index] & 0xffffffffL;
            long chunk = Math.min(left, len - offset);
            advance(chunk);
            left -= chunk;
        }
    }

    private void advance(long n) {
        offset += n;
        remaining -= n;
        consumed += n;
        skipEmpty();
    }
}
