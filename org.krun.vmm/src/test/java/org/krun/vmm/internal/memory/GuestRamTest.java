package org.krun.vmm.internal.memory;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertFalse;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.hypervisor.Notifier;
import org.krun.spi.hypervisor.Vcpu;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.memory.GuestRegion;

class GuestRamTest {
    private static final long MIB = 1 << 20;
    private static final long WINDOW = 0xd000_0000L;
    private static final long FOUR_GIB = 1L << 32;

    /** Records memory slots; nothing else is expected of it. */
    private static final class SlotRecorder implements HypervisorVm {
        final List<String> slots = new ArrayList<>();

        @Override
        public void mapMemory(int slot, long guestAddress, MemorySegment host) {
            slots.add(slot + "@" + Long.toHexString(guestAddress) + "+" + Long.toHexString(host.byteSize()));
        }

        @Override
        public void createInterruptControllers() {
            throw new UnsupportedOperationException();
        }

        @Override
        public Vcpu createVcpu(int index) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean registerIoEvent(IoEventAddress address, Notifier notifier) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void unregisterIoEvent(IoEventAddress address, Notifier notifier) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean registerInterrupt(Notifier notifier, int gsi) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void unregisterInterrupt(Notifier notifier, int gsi) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void setIrqLine(int gsi, boolean level) {
            throw new UnsupportedOperationException();
        }

        @Override
        public void close() {
        }
    }

    private static String region(GuestRegion r) {
        return Long.toHexString(r.guestAddress()) + "+" + Long.toHexString(r.size());
    }

    @Test
    void smallGuestIsOneZeroedRegionAtAddressZero() {
        try (GuestRam ram = GuestRam.allocate(64 * MIB)) {
            GuestMemory mem = ram.memory();
            assertEquals(List.of("0+4000000"), mem.regions().stream().map(GuestRamTest::region).toList());
            assertEquals(64 * MIB, mem.size());
            assertEquals(64 * MIB, ram.lowEnd());
            assertEquals(0, mem.getLong(0));
            assertEquals(0, mem.getLong(64 * MIB - 8));
            mem.setLong(0x100000, 0x1122334455667788L);
            assertEquals(0x1122334455667788L, mem.getLong(0x100000));
            assertThrows(GuestMemoryException.class, () -> mem.getByte(64 * MIB));
        }
    }

    @Test
    void guestLargerThanTheMmioWindowContinuesAbove4Gib() {
        try (GuestRam ram = GuestRam.allocate(WINDOW + 64 * MIB)) {
            GuestMemory mem = ram.memory();
            assertEquals(List.of("0+d0000000", "100000000+4000000"),
                    mem.regions().stream().map(GuestRamTest::region).toList());
            assertEquals(WINDOW + 64 * MIB, mem.size());
            assertEquals(WINDOW, ram.lowEnd());
            mem.setLong(FOUR_GIB, 42);
            mem.setLong(WINDOW - 8, 7);
            assertEquals(42, mem.getLong(FOUR_GIB));
            assertEquals(7, mem.getLong(WINDOW - 8));
            assertEquals(0, mem.getLong(FOUR_GIB + 64 * MIB - 8));
            assertThrows(GuestMemoryException.class, () -> mem.getByte(WINDOW), "the MMIO window is not RAM");
            assertThrows(GuestMemoryException.class, () -> mem.getByte(FOUR_GIB - 1));
        }
    }

    @Test
    void guestOfExactlyTheWindowSizeHasNoHighRegion() {
        try (GuestRam ram = GuestRam.allocate(WINDOW)) {
            assertEquals(1, ram.memory().regions().size());
            assertEquals(WINDOW, ram.lowEnd());
        }
    }

    @Test
    void everyRegionBecomesAMemorySlot() {
        SlotRecorder vm = new SlotRecorder();
        try (GuestRam ram = GuestRam.allocate(WINDOW + 64 * MIB)) {
            ram.mapInto(vm);
        }
        assertEquals(List.of("0@0+d0000000", "1@100000000+4000000"), vm.slots);
    }

    @Test
    void closeIsIdempotent() {
        GuestRam ram = GuestRam.allocate(16 * MIB);
        ram.close();
        ram.close();
    }

    @Test
    void anAccessAfterCloseFailsInsteadOfTouchingUnmappedMemory() {
        GuestRam ram = GuestRam.allocate(16 * MIB);
        GuestMemory mem = ram.memory();
        java.lang.foreign.MemorySegment heldByADevice = mem.slice(0x1000, 4096);
        mem.setLong(0x1000, 7);
        ram.close();
        assertFalse(ram.leaked());
        // Without the arena this would read unmapped memory: a SIGSEGV of the whole JVM.
        assertThrows(IllegalStateException.class, () -> mem.getLong(0x1000));
        assertThrows(IllegalStateException.class, () -> heldByADevice.get(java.lang.foreign.ValueLayout.JAVA_LONG, 0));
    }

    @Test
    void ramKeptMappedForWorkStillRunningStaysUsableAfterClose() {
        GuestRam ram = GuestRam.allocate(16 * MIB);
        GuestMemory mem = ram.memory();
        ram.keepMapped("a test request still runs");
        ram.close();
        assertTrue(ram.leaked());
        mem.setLong(0x2000, 9); // the late writer finds memory, not a hole
        assertEquals(9, mem.getLong(0x2000));
    }
}
