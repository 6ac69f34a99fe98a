package org.krun.spi.memory;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.ArrayList;
import java.util.List;

/**
 * Guest RAM for tests: {@link GuestMemory} over off-heap segments of a shared {@link Arena} (zero-filled),
 * with a bump allocator for placing rings and buffers. Close it to free the memory.
 *
 * <pre>{@code
 * try (TestGuestMemory ram = TestGuestMemory.create(1 << 20)) {
 *     long buf = ram.allocate(64, 8);
 *     ram.memory().setInt(buf, 42);
 * }
 * }</pre>
 */
public final class TestGuestMemory implements AutoCloseable {

    private final Arena arena;
    private final GuestMemory memory;
    private final List<GuestRegion> regions;
    private int region;
    private long next;

    private TestGuestMemory(Arena arena, List<GuestRegion> regions) {
        this.arena = arena;
        this.regions = regions;
        this.memory = new GuestMemory(regions);
        this.next = regions.get(0).guestAddress();
    }

    /** {@code bytes} of RAM at guest address 0. */
    public static TestGuestMemory create(long bytes) {
        return withRegions(0, bytes);
    }

    /**
     * RAM made of several regions, given as pairs of guest address and size (page-aligned addresses;
     * regions may be contiguous or leave holes).
     */
    public static TestGuestMemory withRegions(long... addressSizePairs) {
        if (addressSizePairs.length == 0 || addressSizePairs.length % 2 != 0) {
            throw new IllegalArgumentException("give guest address and size pairs");
        }
        Arena arena = Arena.ofShared();
        List<GuestRegion> regions = new ArrayList<>();
        for (int i = 0; i < addressSizePairs.length; i += 2) {
            regions.add(new GuestRegion(addressSizePairs[i], arena.allocate(addressSizePairs[i + 1], 4096)));
        }
        regions.sort((a, b) -> Long.compare(a.guestAddress(), b.guestAddress()));
        return new TestGuestMemory(arena, regions);
    }

    public GuestMemory memory() {
        return memory;
    }

    /**
     * Reserves {@code bytes} of guest RAM aligned to {@code alignment} (a power of 2) and returns its guest
     * address. Allocations never span regions and are never freed.
     *
     * @throws IllegalStateException when RAM is exhausted
     */
    public long allocate(long bytes, long alignment) {
        while (region < regions.size()) {
            GuestRegion r = regions.get(region);
            long at = Math.max(next, r.guestAddress());
            at = (at + alignment - 1) & -alignment;
            if (at + bytes <= r.end()) {
                next = at + bytes;
                return at;
            }
            region++;
        }
        throw new IllegalStateException("test guest memory exhausted allocating " + bytes + " bytes");
    }

    /**
     * Whether {@link #allocate} would succeed for each of {@code sizes} in turn, all at {@code alignment}:
     * a check that changes nothing and throws nothing (a fuzz target that fills RAM asks this instead of
     * catching an exception per attempt, whose stack trace would be charged to the device's allocations).
     */
    public boolean fits(long alignment, long... sizes) {
        int rg = region;
        long nx = next;
        for (long bytes : sizes) {
            boolean placed = false;
            while (rg < regions.size()) {
                GuestRegion r = regions.get(rg);
                long at = (Math.max(nx, r.guestAddress()) + alignment - 1) & -alignment;
                if (at + bytes <= r.end()) {
                    nx = at + bytes;
                    placed = true;
                    break;
                }
                rg++;
            }
            if (!placed) {
                return false;
            }
        }
        return true;
    }

    /** Writes {@code data} into newly allocated RAM (8-byte aligned) and returns its guest address. */
    public long put(byte[] data) {
        long at = allocate(Math.max(data.length, 1), 8);
        write(at, data, 0, data.length);
        return at;
    }

    // ---- the driver's accesses

    /*
     * The test's own reads and writes of guest RAM (a mock driver's rings and buffers): the same bytes as
     * memory() sees, reached without going through GuestMemory. GuestMemory is code under test, which a fuzz
     * run instruments: the harness's ring writes through it were traced as the device's comparisons (console
     * target, JFR: a third of each input's samples were MockDriverQueue's accesses through GuestMemory.find
     * and its compare hooks). Little-endian, as GuestMemory; outside RAM is a GuestMemoryException, as there.
     */

    private MemorySegment host(long address, long length) {
        for (int i = 0; i < regions.size(); i++) {
            GuestRegion r = regions.get(i);
            long offset = address - r.guestAddress();
            MemorySegment h = r.host();
            if (address >= r.guestAddress() && length >= 0 && offset <= h.byteSize() - length) {
                return h.asSlice(offset, length);
            }
        }
        throw new GuestMemoryException(address, length);
    }

    public short getShort(long address) {
        return host(address, 2).get(ValueLayout.JAVA_SHORT_UNALIGNED, 0);
    }

    public int getInt(long address) {
        return host(address, 4).get(ValueLayout.JAVA_INT_UNALIGNED, 0);
    }

    public long getLong(long address) {
        return host(address, 8).get(ValueLayout.JAVA_LONG_UNALIGNED, 0);
    }

    public void setShort(long address, short value) {
        host(address, 2).set(ValueLayout.JAVA_SHORT_UNALIGNED, 0, value);
    }

    public void setInt(long address, int value) {
        host(address, 4).set(ValueLayout.JAVA_INT_UNALIGNED, 0, value);
    }

    public void setLong(long address, long value) {
        host(address, 8).set(ValueLayout.JAVA_LONG_UNALIGNED, 0, value);
    }

    /** Copies {@code length} bytes at {@code address} (within one region) into {@code dst}. */
    public void read(long address, byte[] dst, int offset, int length) {
        MemorySegment.copy(host(address, length), ValueLayout.JAVA_BYTE, 0, dst, offset, length);
    }

    /** Copies {@code length} bytes of {@code src} to {@code address} (within one region). */
    public void write(long address, byte[] src, int offset, int length) {
        MemorySegment.copy(src, offset, host(address, length), ValueLayout.JAVA_BYTE, 0, length);
    }

    /**
     * Zeroes all of RAM and forgets every allocation, so that one memory serves many short tests (a fuzz
     * target's inputs) without mapping RAM afresh each time. Costs what the previous test touched, not the
     * size of RAM (see {@link #zero}).
     */
    public void clear() {
        for (GuestRegion r : regions) {
            zero(r.host());
        }
        region = 0;
        next = regions.get(0).guestAddress();
    }

    private static final long PAGE = 4096;
    private static final int MADV_DONTNEED = 4;
    /** madvise(2), or null where the C library has none. */
    private static final MethodHandle MADVISE = Linker.nativeLinker().defaultLookup().find("madvise")
            .map(f -> Linker.nativeLinker().downcallHandle(f,
                    FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT)))
            .orElse(null);

    /**
     * Makes every byte of {@code s} zero. Its whole pages are dropped with {@code MADV_DONTNEED}: the
     * segment is private anonymous memory (malloc's heap or its own mapping), which Linux guarantees reads
     * as zeroes afterwards, and dropping costs only the pages that were touched (a fuzz input touches a few
     * of the megabytes of RAM it has: writing zeroes over all of them cost more than the input itself).
     * The partial pages at either end, and all of it where madvise fails (another page size, no such call),
     * are written with zeroes.
     *
     * @return whether whole pages were dropped (else every byte was written)
     */
    static boolean zero(MemorySegment s) {
        long address = s.address();
        long start = (address + PAGE - 1) & -PAGE;
        long end = (address + s.byteSize()) & -PAGE;
        if (MADVISE != null && end - start >= 16 * PAGE && madvise(start, end - start) == 0) {
            s.asSlice(0, start - address).fill((byte) 0);
            s.asSlice(end - address).fill((byte) 0);
            return true;
        }
        s.fill((byte) 0);
        return false;
    }

    private static int madvise(long address, long length) {
        try {
            return (int) MADVISE.invokeExact(address, length, MADV_DONTNEED);
        } catch (Throwable t) {
            return -1;
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
