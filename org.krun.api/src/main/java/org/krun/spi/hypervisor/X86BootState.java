package org.krun.spi.hypervisor;

/**
 * The x86_64 register state at kernel entry in 64-bit long mode (Linux 64-bit boot protocol), computed
 * by the core and applied by the backend.
 */
public record X86BootState(
        long rip, long rsp, long rbp, long rsi, long rflags,
        Segment code, Segment data, Segment tss,
        DescriptorTable gdt, DescriptorTable idt,
        long cr0, long cr3, long cr4, long efer) {

    /** A segment register as loaded from a GDT entry. */
    public record Segment(long base, int limit, int selector, int type, boolean present, int dpl, boolean db,
            boolean s, boolean l, boolean g) {
    }

    /** GDTR or IDTR. */
    public record DescriptorTable(long base, int limit) {
    }
}
