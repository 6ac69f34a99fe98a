package org.krun.spi.memory;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import org.junit.jupiter.api.Test;

class GuestMemoryTest {

    @Test
    void valuesAreLittleEndian() {
        try (TestGuestMemory ram = TestGuestMemory.create(4096)) {
            GuestMemory mem = ram.memory();
            mem.setInt(0x10, 0x11223344);
            mem.setLong(0x21, 0x0102030405060708L); // unaligned is fine
            mem.setShort(0x31, (short) 0xbeef);

            byte[] b = new byte[4];
            mem.read(0x10, b, 0, 4);
            assertArrayEquals(new byte[] {0x44, 0x33, 0x22, 0x11}, b);
            assertEquals(0x08, mem.getByte(0x21));
            assertEquals(0x0102030405060708L, mem.getLong(0x21));
            assertEquals((short) 0xbeef, mem.getShort(0x31));
            assertEquals(0x11223344, mem.getInt(0x10));
        }
    }

    @Test
    void accessesOutsideRamThrowGuestMemoryException() {
        try (TestGuestMemory ram = TestGuestMemory.create(4096)) {
            GuestMemory mem = ram.memory();
            assertThrows(GuestMemoryException.class, () -> mem.getByte(-1));
            assertThrows(GuestMemoryException.class, () -> mem.getByte(4096));
            assertThrows(GuestMemoryException.class, () -> mem.getShort(4095));
            assertThrows(GuestMemoryException.class, () -> mem.getLong(4089));
            assertThrows(GuestMemoryException.class, () -> mem.setInt(Long.MIN_VALUE, 0));
            assertThrows(GuestMemoryException.class, () -> mem.setInt(Long.MAX_VALUE - 1, 0));
            assertThrows(GuestMemoryException.class, () -> mem.slice(0, -1));
            assertThrows(GuestMemoryException.class, () -> mem.slice(8, Long.MAX_VALUE));
            assertThrows(GuestMemoryException.class, () -> mem.slice(Long.MAX_VALUE, Long.MAX_VALUE));
            assertThrows(GuestMemoryException.class, () -> mem.slices(4000, 97));
            assertThrows(GuestMemoryException.class, () -> mem.write(4095, new byte[2]));
            assertThrows(GuestMemoryException.class, () -> mem.fill(4000, 200, (byte) 1));
            assertEquals(0, mem.getLong(4088)); // the last whole long is fine
        }
    }

    @Test
    void containsRequiresTheWholeRangeInOneRegion() {
        try (TestGuestMemory ram = TestGuestMemory.withRegions(0, 4096, 4096, 4096, 16384, 4096)) {
            GuestMemory mem = ram.memory();
            assertTrue(mem.contains(0, 4096));
            assertTrue(mem.contains(4096, 4096));
            assertTrue(mem.contains(8191, 1));
            assertFalse(mem.contains(4000, 200)); // contiguous regions, but two of them
            assertFalse(mem.contains(8192, 1)); // the hole
            assertFalse(mem.contains(-1, 1));
            assertFalse(mem.contains(0, -1));
            assertFalse(mem.contains(16, Long.MAX_VALUE));
            assertFalse(mem.contains(Long.MAX_VALUE, 1));
            assertEquals(3 * 4096, mem.size());
        }
    }

    @Test
    void slicesSplitAtContiguousRegionBoundariesButNotAcrossHoles() {
        try (TestGuestMemory ram = TestGuestMemory.withRegions(0, 4096, 4096, 4096, 16384, 4096)) {
            GuestMemory mem = ram.memory();
            assertThrows(GuestMemoryException.class, () -> mem.slice(4000, 200));

            List<MemorySegment> pieces = mem.slices(4000, 200);
            assertEquals(List.of(96L, 104L), pieces.stream().map(MemorySegment::byteSize).toList());

            mem.fill(4000, 200, (byte) 0x5a);
            assertEquals(0x5a, mem.getByte(4000));
            assertEquals(0x5a, mem.getByte(4199));
            assertEquals(0, mem.getByte(4200));

            assertThrows(GuestMemoryException.class, () -> mem.slices(8100, 200)); // runs into the hole
            assertEquals(1, mem.slices(16384, 4096).size());
        }
    }

    @Test
    void overlappingRegionsAreRefused() {
        try (Arena arena = Arena.ofConfined()) {
            GuestRegion a = new GuestRegion(0, arena.allocate(8192));
            GuestRegion b = new GuestRegion(4096, arena.allocate(4096));
            assertThrows(IllegalArgumentException.class, () -> new GuestMemory(List.of(b, a)));
        }
    }

    @Test
    void regionsMustStartOnAPage() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = arena.allocate(4096);
            assertThrows(IllegalArgumentException.class, () -> new GuestRegion(100, s));
            assertThrows(IllegalArgumentException.class, () -> new GuestRegion(-4096, s));
            assertEquals(8192, new GuestRegion(4096, s).end());
        }
    }
}
