package org.krun.vmm.internal.boot;

import org.krun.spi.memory.GuestMemory;

/** Identity-maps the first 1 GiB with 2 MiB pages: enough for the kernel's 64-bit entry to run. */
public final class PageTables {
    static final long PRESENT = 1;
    static final long WRITABLE = 2;
    static final long PAGE_SIZE_2M = 0x80;

    private PageTables() {
    }

    /** Writes PML4, PDPT and PD; returns the CR3 value. */
    public static long write(GuestMemory mem) {
        mem.setLong(X86Layout.PML4_ADDRESS, X86Layout.PDPT_ADDRESS | PRESENT | WRITABLE);
        mem.setLong(X86Layout.PDPT_ADDRESS, X86Layout.PD_ADDRESS | PRESENT | WRITABLE);
        for (long i = 0; i < 512; i++) {
            mem.setLong(X86Layout.PD_ADDRESS + 8 * i, (i << 21) | PRESENT | WRITABLE | PAGE_SIZE_2M);
        }
        return X86Layout.PML4_ADDRESS;
    }
}
