package org.krun.vmm.internal.boot;

import org.krun.spi.hypervisor.X86BootState;
import org.krun.spi.memory.GuestMemory;

/**
 * The boot GDT (null, 64-bit code, data, TSS) and the segment registers loaded from it, as the Linux
 * 64-bit boot protocol expects (__BOOT_CS = 0x10 is not required: any flat segments work).
 */
public final class Gdt {
    static final int CODE_SELECTOR = 0x08;
    static final int DATA_SELECTOR = 0x10;
    static final int TSS_SELECTOR = 0x18;

    /** Descriptor entries: flags/access as 0xFAAA (flags nibble, access byte), base 0, limit 0xfffff. */
    static final long[] ENTRIES = {
        0,
        entry(0xa09b, 0, 0xfffff), // code: present, ring 0, execute/read, long mode, 4 KiB granularity
        entry(0xc093, 0, 0xfffff), // data: present, ring 0, read/write, 32-bit, 4 KiB granularity
        entry(0x808b, 0, 0xfffff), // TSS: present, busy 64-bit TSS
    };

    private Gdt() {
    }

    /** Encodes a segment descriptor from its flags/access word, base and 20-bit limit. */
    static long entry(int flags, long base, long limit) {
        return ((base & 0xff000000L) << 32) | ((flags & 0xf0ffL) << 40) | ((limit & 0xf0000L) << 32)
                | ((base & 0x00ffffffL) << 16) | (limit & 0xffffL);
    }

    /** The register view of a descriptor, with the limit scaled to bytes as KVM expects. */
    static X86BootState.Segment segment(long entry, int selector) {
        long base = ((entry >>> 16) & 0xffffffL) | ((entry >>> 32) & 0xff000000L);
        long rawLimit = ((entry >>> 32) & 0xf0000L) | (entry & 0xffffL);
        boolean g = ((entry >>> 55) & 1) != 0;
        int limit = (int) (g ? (rawLimit << 12) | 0xfff : rawLimit);
        int type = (int) ((entry >>> 40) & 0xf);
        boolean s = ((entry >>> 44) & 1) != 0;
        int dpl = (int) ((entry >>> 45) & 3);
        boolean present = ((entry >>> 47) & 1) != 0;
        boolean l = ((entry >>> 53) & 1) != 0;
        boolean db = ((entry >>> 54) & 1) != 0;
        return new X86BootState.Segment(base, limit, selector, type, present, dpl, db, s, l, g);
    }

    public static void write(GuestMemory mem) {
        for (int i = 0; i < ENTRIES.length; i++) {
            mem.setLong(X86Layout.GDT_ADDRESS + 8L * i, ENTRIES[i]);
        }
        mem.setLong(X86Layout.IDT_ADDRESS, 0);
    }

    public static X86BootState.Segment code() {
        return segment(ENTRIES[1], CODE_SELECTOR);
    }

    public static X86BootState.Segment data() {
        return segment(ENTRIES[2], DATA_SELECTOR);
    }

    public static X86BootState.Segment tss() {
        return segment(ENTRIES[3], TSS_SELECTOR);
    }

    public static X86BootState.DescriptorTable gdtr() {
        return new X86BootState.DescriptorTable(X86Layout.GDT_ADDRESS, ENTRIES.length * 8 - 1);
    }

    public static X86BootState.DescriptorTable idtr() {
        return new X86BootState.DescriptorTable(X86Layout.IDT_ADDRESS, 7);
    }
}
