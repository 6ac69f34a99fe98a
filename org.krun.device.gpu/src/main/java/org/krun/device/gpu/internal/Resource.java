package org.krun.device.gpu.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Arrays;

import org.krun.spi.memory.GuestMemory;

/**
 * One 2D resource: its pixels in host memory (off-heap, owned by an arena that {@link #close} frees) and
 * the guest pages attached as its backing, from which TRANSFER_TO_HOST_2D copies. The backing is a list of
 * guest-physical ranges, checked against guest RAM when attached and resolved again at each transfer.
 */
final class Resource implements AutoCloseable {

    static final ValueLayout.OfInt PIXEL = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final int id;
    final PixelFormat format;
    final int width;
    final int height;
    private final Arena arena;
    private final MemorySegment pixels;
    /** Backing ranges, and where each starts within the backing (prefix sums); null while detached. */
    private long[] backingAddresses;
    private long[] backingStarts;
    private long backingBytes;

    Resource(int id, PixelFormat format, int width, int height) {
        this.id = id;
        this.format = format;
        this.width = width;
        this.height = height;
        this.arena = Arena.ofShared();
        try {
            this.pixels = arena.allocate(hostBytes(width, height), 64);
        } catch (RuntimeException | OutOfMemoryError e) {
            arena.close(); // the host is out of native memory: the caller answers ERR_OUT_OF_MEMORY
            throw e;
        }
    }

    /** Host bytes a resource of this size takes. */
    static long hostBytes(long width, long height) {
        return width * height * PixelFormat.BYTES_PER_PIXEL;
    }

    long stride() {
        return (long) width * PixelFormat.BYTES_PER_PIXEL;
    }

    long hostBytes() {
        return pixels.byteSize();
    }

    MemorySegment pixels() {
        return pixels;
    }

    boolean hasBacking() {
        return backingAddresses != null;
    }

    int backingEntries() {
        return backingAddresses == null ? 0 : backingAddresses.length;
    }

    long backingBytes() {
        return backingBytes;
    }

    /** Attaches backing ranges (already checked against guest RAM); zero-length entries are dropped. */
    void attach(long[] addresses, int[] lengths) {
        int n = 0;
        long[] a = new long[addresses.length];
        long[] starts = new long[addresses.length + 1];
        long total = 0;
        for (int i = 0; i < addresses.length; i++) {
            if (lengths[i] != 0) {
                a[n] = addresses[i];
                starts[n] = total;
                total += lengths[i] & 0xffffffffL;
                n++;
            }
        }
        starts[n] = total;
        backingAddresses = Arrays.copyOf(a, n);
        backingStarts = Arrays.copyOf(starts, n + 1);
        backingBytes = total;
    }

    void detach() {
        backingAddresses = null;
        backingStarts = null;
        backingBytes = 0;
    }

    /**
     * Copies {@code length} bytes at {@code offset} of the backing into the pixels at {@code to}. The caller
     * has checked both ranges.
     *
     * @throws org.krun.spi.memory.GuestMemoryException if a backing range is no longer guest RAM
     */
    void copyFromBacking(GuestMemory memory, long offset, long to, long length) {
        int i = Arrays.binarySearch(backingStarts, 0, backingAddresses.length, offset);
        if (i < 0) {
            i = -i - 2; // the entry that contains offset
        }
        while (i < backingAddresses.length && backingStarts[i + 1] == backingStarts[i]) {
            i++;
        }
        long left = length;
        long at = offset;
        long dst = to;
        while (left > 0) {
            long inEntry = at - backingStarts[i];
            long n = Math.min(left, backingStarts[i + 1] - at);
            for (MemorySegment piece : memory.slices(backingAddresses[i] + inEntry, n)) {
                MemorySegment.copy(piece, 0, pixels, dst, piece.byteSize());
                dst += piece.byteSize();
            }
            at += n;
            left -= n;
            i++;
        }
    }

    /** Reads {@code count} pixels starting at byte {@code offset} as 0xAARRGGBB into {@code out} at {@code index}. */
    void readArgb(long offset, int[] out, int index, int count) {
        MemorySegment.copy(pixels, PIXEL, offset, out, index, count);
        format.toArgb(out, index, count);
    }

    @Override
    public void close() {
        detach();
        arena.close();
    }

    boolean isFreed() {
        return !arena.scope().isAlive();
    }
}
