package org.krun.spi.memory;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_LONG_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Guest physical memory: non-overlapping {@link GuestRegion}s. Every access is bounds-checked and an
 * access outside RAM throws {@link GuestMemoryException}, so addresses taken from the guest can be used
 * directly. Values are little-endian, as x86 and virtio are. Thread-safe (the regions never change;
 * concurrent access to the same bytes is the guest's business).
 */
public final class GuestMemory {

    private final GuestRegion[] regions;

    public GuestMemory(List<GuestRegion> regions) {
        this.regions = regions.stream().sorted(Comparator.comparingLong(GuestRegion::guestAddress))
                .toArray(GuestRegion[]::new);
        for (int i = 1; i < this.regions.length; i++) {
            if (this.regions[i].guestAddress() < this.regions[i - 1].end()) {
                throw new IllegalArgumentException("guest regions overlap");
            }
        }
    }

    public List<GuestRegion> regions() {
        return List.of(regions);
    }

    /** Total bytes of RAM. */
    public long size() {
        long total = 0;
        for (GuestRegion r : regions) {
            total += r.size();
        }
        return total;
    }

    /** Whether {@code [address, address + length)} is entirely RAM within one region. */
    public boolean contains(long address, long length) {
        return find(address, length) != null;
    }

    private GuestRegion find(long address, long length) {
        for (GuestRegion r : regions) {
            if (r.contains(address, length)) {
                return r;
            }
        }
        return null;
    }

    /**
     * The host view of {@code [address, address + length)}, which must lie in one region. Writes to the
     * returned segment are writes to guest memory.
     */
    public MemorySegment slice(long address, long length) {
        GuestRegion r = find(address, length);
        if (r == null) {
            throw new GuestMemoryException(address, length);
        }
        return r.host().asSlice(address - r.guestAddress(), length);
    }

    /**
     * The host views of {@code [address, address + length)}, split at region boundaries (the range may
     * span regions that are contiguous in guest physical space).
     */
    public List<MemorySegment> slices(long address, long length) {
        List<MemorySegment> out = new ArrayList<>(1);
        long a = address;
        long left = length;
        while (left > 0) {
            GuestRegion r = find(a, 1);
            if (r == null) {
                throw new GuestMemoryException(address, length);
            }
            long n = Math.min(left, r.end() - a);
            out.add(r.host().asSlice(a - r.guestAddress(), n));
            a += n;
            left -= n;
        }
        return out;
    }

    public byte getByte(long address) {
        return slice(address, 1).get(JAVA_BYTE, 0);
    }

    public short getShort(long address) {
        return slice(address, 2).get(JAVA_SHORT_UNALIGNED, 0);
    }

    public int getInt(long address) {
        return slice(address, 4).get(JAVA_INT_UNALIGNED, 0);
    }

    public long getLong(long address) {
        return slice(address, 8).get(JAVA_LONG_UNALIGNED, 0);
    }

    public void setByte(long address, byte value) {
        slice(address, 1).set(JAVA_BYTE, 0, value);
    }

    public void setShort(long address, short value) {
        slice(address, 2).set(JAVA_SHORT_UNALIGNED, 0, value);
    }

    public void setInt(long address, int value) {
        slice(address, 4).set(JAVA_INT_UNALIGNED, 0, value);
    }

    public void setLong(long address, long value) {
        slice(address, 8).set(JAVA_LONG_UNALIGNED, 0, value);
    }

    public void read(long address, byte[] dst, int offset, int length) {
        MemorySegment.copy(slice(address, length), JAVA_BYTE, 0, dst, offset, length);
    }

    public void write(long address, byte[] src, int offset, int length) {
        MemorySegment.copy(src, offset, slice(address, length), JAVA_BYTE, 0, length);
    }

    public void write(long address, byte[] src) {
        write(address, src, 0, src.length);
    }

    /** Zeroes {@code [address, address + length)}. */
    public void fill(long address, long length, byte value) {
        for (MemorySegment s : slices(address, length)) {
            s.fill(value);
        }
    }
}
