package org.krun.device.blk.internal;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/** Lists of memory segments as one run of bytes (a scatter-gather list): slicing, sizing, zeroing. */
final class Segments {

    private Segments() {
    }

    /** Total bytes of {@code segments}. */
    static long size(List<MemorySegment> segments) {
        long total = 0;
        for (MemorySegment s : segments) {
            total += s.byteSize();
        }
        return total;
    }

    /** The bytes {@code [offset, offset + length)} of the run, as segments aliasing the originals. */
    static List<MemorySegment> slice(List<MemorySegment> segments, long offset, long length) {
        if (offset < 0 || length < 0) {
            throw new IndexOutOfBoundsException("slice " + offset + "+" + length);
        }
        List<MemorySegment> out = new ArrayList<>(2);
        long skip = offset;
        long left = length;
        for (MemorySegment s : segments) {
            if (left == 0) {
                break;
            }
            long size = s.byteSize();
            if (skip >= size) {
                skip -= size;
                continue;
            }
            long n = Math.min(size - skip, left);
            out.add(s.asSlice(skip, n));
            skip = 0;
            left -= n;
        }
        if (left != 0) {
            throw new IndexOutOfBoundsException("slice " + offset + "+" + length + " of " + size(segments));
        }
        return out;
    }

    /** Zeroes every byte of {@code segments}. */
    static void zero(List<MemorySegment> segments) {
        for (MemorySegment s : segments) {
            s.fill((byte) 0);
        }
    }

    /** Whether every segment's address and size are multiples of {@code alignment} (a power of 2). */
    static boolean aligned(List<MemorySegment> segments, long alignment) {
        for (MemorySegment s : segments) {
            if (((s.address() | s.byteSize()) & (alignment - 1)) != 0) {
                return false;
            }
        }
        return true;
    }
}
