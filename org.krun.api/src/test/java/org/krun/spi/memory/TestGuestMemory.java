package org.krun.spi.memory;

import java.lang.foreign.Arena;
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

    /** Writes {@code data} into newly allocated RAM (8-byte aligned) and returns its guest address. */
    public long put(byte[] data) {
        long at = allocate(Math.max(data.length, 1), 8);
        memory.write(at, data);
        return at;
    }

    /**
     * Zeroes all of RAM and forgets every allocation, so that one memory serves many short tests (a fuzz
     * target's inputs) without mapping RAM afresh each time.
     */
    public void clear() {
        for (GuestRegion r : regions) {
            r.host().fill((byte) 0);
        }
        region = 0;
        next = regions.get(0).guestAddress();
    }

    @Override
    public void close() {
        arena.close();
    }
}
