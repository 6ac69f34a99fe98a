package org.krun.spi.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

import org.junit.jupiter.api.Test;

/** {@link TestGuestMemory#clear}: every byte of RAM reads zero afterwards, and nothing outside RAM changes. */
class TestGuestMemoryTest {

    @Test
    void clearZeroesEveryByteOfEveryRegionAndRestartsAllocation() {
        // whole pages, a partial last page, and a region too small to be dropped page-wise
        try (TestGuestMemory ram = TestGuestMemory.withRegions(0, 1 << 20, 2 << 20, (256 << 10) + 100, 4 << 20, 4000)) {
            long first = ram.allocate(64, 8);
            for (int round = 0; round < 3; round++) {
                for (GuestRegion r : ram.memory().regions()) {
                    r.host().fill((byte) (0x5a + round));
                }
                ram.clear();
                for (GuestRegion r : ram.memory().regions()) {
                    assertEquals(-1, r.host().mismatch(MemorySegment.ofArray(new byte[(int) r.host().byteSize()])),
                            "a byte left in the region at " + r.guestAddress() + " (round " + round + ")");
                }
                assertEquals(first, ram.allocate(64, 8), "allocation starts afresh");
            }
        }
    }

    @Test
    void fitsSaysWhatAllocateWouldDoAndChangesNothing() {
        try (TestGuestMemory ram = TestGuestMemory.withRegions(0, 64 << 10, 1 << 20, 8192)) {
            assertEquals(true, ram.fits(8, 60000, 8192), "one in each region");
            assertEquals(false, ram.fits(8, 60000, 8193), "the second fits in neither the rest nor the next region");
            assertEquals(0, ram.allocate(8, 8), "fits allocated nothing");
            ram.allocate(60000 - 8, 8);
            assertEquals(true, ram.fits(8, (64 << 10) - 60000));
            assertEquals(true, ram.fits(8, (64 << 10) - 60000 + 1), "in the next region");
            assertEquals(false, ram.fits(8, 8193));
            assertEquals(60000, ram.allocate((64 << 10) - 60000, 8), "exactly as fits said");
            assertEquals(1 << 20, ram.allocate(1, 8));
        }
    }

    @Test
    void zeroingASliceLeavesTheBytesAroundItAlone() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment all = arena.allocate(1 << 20, 4096);
            for (long[] range : new long[][] {{100, (512 << 10) + 7}, {4096, 256 << 10}, {1, 5000}, {0, 1 << 20}}) {
                all.fill((byte) 0x33);
                MemorySegment slice = all.asSlice(range[0], range[1]);
                boolean dropped = TestGuestMemory.zero(slice);
                if (range[1] >= 256 << 10) {
                    // Linux, 4 KiB pages: the cheap way is the one taken
                    assertEquals(true, dropped, "pages of slice " + range[0] + "+" + range[1] + " dropped");
                }
                for (long i = 0; i < all.byteSize(); i++) {
                    boolean inside = i >= range[0] && i < range[0] + range[1];
                    assertEquals(inside ? 0 : 0x33, all.get(ValueLayout.JAVA_BYTE, i), "byte " + i + " of slice " + range[0]
                            + "+" + range[1]);
                }
            }
        }
    }
}
