package org.krun.vmm.internal.boot;

/** Where krun puts things in guest physical memory on x86_64 (DESIGN.md §3). */
public final class X86Layout {
    public static final long GDT_ADDRESS = 0x500;
    public static final long IDT_ADDRESS = 0x520;
    public static final long ZERO_PAGE_ADDRESS = 0x7000;
    public static final long BOOT_STACK_POINTER = 0x8ff0;
    public static final long PML4_ADDRESS = 0x9000;
    public static final long PDPT_ADDRESS = 0xa000;
    public static final long PD_ADDRESS = 0xb000;
    public static final long CMDLINE_ADDRESS = 0x20000;
    /** x86 COMMAND_LINE_SIZE, terminating NUL included. */
    public static final int CMDLINE_MAX = 2048;
    /** The MP table sits in the last KiB of base memory, where Linux looks for it. */
    public static final long MPTABLE_ADDRESS = 0x9fc00;
    /** End of RAM below 1 MiB (the rest of the legacy hole is not RAM). */
    public static final long BASE_MEMORY_END = 0x9fc00;
    public static final long HIGH_MEMORY_START = 0x100000;
    /** Where a bzImage's protected-mode kernel is loaded. */
    public static final long BZIMAGE_LOAD_ADDRESS = 0x100000;

    public static final long IOAPIC_ADDRESS = 0xfec0_0000L;
    public static final long LAPIC_ADDRESS = 0xfee0_0000L;
    public static final int IOAPIC_PINS = 24;

    /** virtio-mmio device n lives at VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE with IRQ VIRTIO_FIRST_IRQ + n. */
    public static final long VIRTIO_MMIO_BASE = 0xd000_0000L;
    public static final long VIRTIO_MMIO_SIZE = 0x1000;
    public static final int VIRTIO_FIRST_IRQ = 5;
    public static final int VIRTIO_MAX_DEVICES = IOAPIC_PINS - VIRTIO_FIRST_IRQ;
    /**
     * The run's configuration for an init restored from a template (InitPorts.configWindow, 16 MiB of
     * address space, no RAM behind it): in the MMIO hole, well clear of the virtio-mmio slots.
     */
    public static final long CONFIG_WINDOW_BASE = 0xd800_0000L;

    private X86Layout() {
    }
}
