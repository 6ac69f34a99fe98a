package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.krun.spi.memory.GuestMemory;

class PageTablesTest {
    private static final long PRESENT = 1;
    private static final long PAGE_SIZE = 0x80;
    private static final long ADDRESS_MASK = 0x000f_ffff_ffff_f000L;

    /** Walks 4-level paging like the CPU; -1 where the address is not mapped. */
    private static long translate(GuestMemory mem, long cr3, long va) {
        long pml4e = mem.getLong(cr3 + 8 * ((va >>> 39) & 511));
        if ((pml4e & PRESENT) == 0) {
            return -1;
        }
        long pdpte = mem.getLong((pml4e & ADDRESS_MASK) + 8 * ((va >>> 30) & 511));
        if ((pdpte & PRESENT) == 0) {
            return -1;
        }
        long pde = mem.getLong((pdpte & ADDRESS_MASK) + 8 * ((va >>> 21) & 511));
        if ((pde & PRESENT) == 0 || (pde & PAGE_SIZE) == 0) {
            return -1;
        }
        return (pde & ADDRESS_MASK & ~0x1f_ffffL) | (va & 0x1f_ffffL);
    }

    @Test
    void tablesLieAt0x9000AndChainPml4ToPdptToPd() {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0)) {
            assertEquals(0x9000, PageTables.write(t.memory));
            assertEquals(0xa003, t.memory.getLong(0x9000), "PML4[0]: PDPT, present, writable");
            assertEquals(0xb003, t.memory.getLong(0xa000), "PDPT[0]: PD, present, writable");
            for (int i = 0; i < 512; i++) {
                assertEquals(((long) i << 21) | 0x83, t.memory.getLong(0xb000 + 8L * i), "PD[" + i + "]: 2 MiB page");
            }
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {0, 0x7000, 0x1f_ffff, 0x20_0000, 0x100_0000, 0x1234_5678, 0x3fff_ffff})
    void firstGibIsIdentityMapped(long address) {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0)) {
            long cr3 = PageTables.write(t.memory);
            assertEquals(address, translate(t.memory, cr3, address));
        }
    }

    @ParameterizedTest
    @ValueSource(longs = {0x4000_0000L, 0xd000_0000L, 0x1_0000_0000L, 0x80_0000_0000L})
    void nothingBeyondTheFirstGibIsMapped(long address) {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0)) {
            long cr3 = PageTables.write(t.memory);
            assertEquals(-1, translate(t.memory, cr3, address));
        }
    }
}
