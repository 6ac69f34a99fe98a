package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.List;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.Test;
import org.krun.api.VmConfigException;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;

class SharedMemoryWindowTest {

    /** Guest RAM as GuestRam lays it out for {@code bytes}, backed by nothing (only addresses matter). */
    private static GuestMemory ram(long bytes) {
        long low = Math.min(bytes, 0xd000_0000L);
        MemorySegment none = MemorySegment.NULL;
        List<GuestRegion> regions = bytes > low
                ? List.of(new GuestRegion(0, none.reinterpret(low)), new GuestRegion(1L << 32, none.reinterpret(bytes - low)))
                : List.of(new GuestRegion(0, none.reinterpret(low)));
        return new GuestMemory(regions);
    }

    @ParameterizedTest
    @ValueSource(longs = {128L << 20, 0xd000_0000L, 4L << 30, (16L << 30) + 4096})
    void regionsGoAboveRamTheMmioWindowAndTheInterruptControllers(long ramBytes) {
        GuestMemory mem = ram(ramBytes);
        SharedMemoryWindow w = new SharedMemoryWindow(mem);
        long a = w.place(256L << 20);
        long b = w.place(4096);
        long c = w.place(1L << 30);
        for (long[] r : new long[][] {{a, 256L << 20}, {b, 4096}, {c, 1L << 30}}) {
            assertTrue(r[0] % SharedMemoryWindow.REGION_ALIGN == 0);
            assertTrue(r[0] >= 1L << 32, "above the MMIO window, the IOAPIC, the LAPIC and KVM's TSS");
            for (GuestRegion g : mem.regions()) {
                assertTrue(r[0] >= g.end() || r[0] + r[1] <= g.guestAddress(), "overlaps RAM at 0x" + Long.toHexString(g.guestAddress()));
            }
        }
        assertTrue(b >= a + (256L << 20) && c >= b + 4096, "in order, without overlap");
        assertEquals(0, a % SharedMemoryWindow.WINDOW_ALIGN, "the window starts on a 1 GiB boundary");
    }

    @Test
    void largeRamPushesTheWindowUp() {
        long ramBytes = 20L << 30;
        long top = (1L << 32) + ramBytes - 0xd000_0000L;
        long at = new SharedMemoryWindow(ram(ramBytes)).place(4096);
        assertEquals((top + (1L << 30) - 1) & -(1L << 30), at);
    }

    @Test
    void regionsBeyond512GibAreRefusedInOneLine() {
        SharedMemoryWindow w = new SharedMemoryWindow(ram(1L << 30));
        w.place(500L << 30);
        VmConfigException e = assertThrows(VmConfigException.class, () -> w.place(64L << 30));
        assertTrue(!e.getMessage().contains("\n") && e.getMessage().contains("512 GiB"), e.getMessage());
    }
}
