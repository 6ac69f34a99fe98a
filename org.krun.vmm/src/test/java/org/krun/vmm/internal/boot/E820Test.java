package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.lang.foreign.Arena;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;
import org.krun.vmm.internal.memory.GuestRam;

class E820Test {
    private static final long MIB = 1 << 20;

    private static E820.Entry ram(long address, long size) {
        return new E820.Entry(address, size, E820.TYPE_RAM);
    }

    @Test
    void guestBelowTheMmioWindowHasBaseMemoryAndEverythingAbove1Mib() {
        try (GuestRam ram = GuestRam.allocate(256 * MIB)) {
            assertEquals(List.of(ram(0, 0x9fc00), ram(MIB, 255 * MIB)), E820.of(ram.memory()));
        }
    }

    @Test
    void guestLargerThanTheMmioWindowContinuesAbove4Gib() {
        try (GuestRam ram = GuestRam.allocate(0xd000_0000L + 64 * MIB)) {
            assertEquals(List.of(ram(0, 0x9fc00), ram(MIB, 0xd000_0000L - MIB), ram(1L << 32, 64 * MIB)),
                    E820.of(ram.memory()));
        }
    }

    @Test
    void guestSmallerThanBaseMemoryHasOneEntry() {
        try (Arena arena = Arena.ofConfined()) {
            GuestMemory mem = new GuestMemory(List.of(new GuestRegion(0, arena.allocate(0x80000, 4096))));
            assertEquals(List.of(ram(0, 0x80000)), E820.of(mem));
        }
    }

    @Test
    void mpTableAndLegacyHoleAreNotRam() {
        try (GuestRam ram = GuestRam.allocate(64 * MIB)) {
            for (E820.Entry e : E820.of(ram.memory())) {
                for (long a : new long[] {0x9fc00, 0x9ffff, 0xa0000, 0xf0000, 0xfffff}) {
                    assertFalse(a >= e.address() && a < e.address() + e.size(),
                            "0x" + Long.toHexString(a) + " in " + e);
                }
            }
        }
    }
}
