package org.krun.vmm.internal.boot;

import org.krun.api.VmConfigException;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;

/**
 * Where devices' shared memory regions go in guest-physical memory on x86_64: above everything else, from
 * the first 1 GiB boundary at or above both 4 GiB and the end of guest RAM, each region 2 MiB-aligned after
 * the one before. Below 4 GiB are low RAM and the MMIO window (virtio-mmio slots, the IOAPIC, the LAPIC,
 * KVM's TSS pages); above it only the RAM beyond the window. The regions are not in the e820 map: the
 * guest's driver claims its region as device memory.
 */
public final class SharedMemoryWindow {

    /** The window starts on a boundary of this many bytes. */
    public static final long WINDOW_ALIGN = 1L << 30;
    /** Each region starts on a boundary of this many bytes (a 2 MiB page of the guest's and the host's). */
    public static final long REGION_ALIGN = 2L << 20;
    /**
     * The end of the guest-physical space the window may use: 512 GiB, within the 39 physical address bits
     * every x86_64 CPU KVM runs on reports to its guests.
     */
    public static final long LIMIT = 1L << 39;
    private static final long FOUR_GIB = 1L << 32;

    private long next;

    /** A window above {@code ram}. */
    public SharedMemoryWindow(GuestMemory ram) {
        long top = FOUR_GIB;
        for (GuestRegion r : ram.regions()) {
            top = Math.max(top, r.end());
        }
        this.next = alignUp(top, WINDOW_ALIGN);
    }

    /** Where the window starts now (the next region goes at or above). */
    public long next() {
        return next;
    }

    /**
     * Places a region of {@code size} bytes; returns its guest-physical address.
     *
     * @throws VmConfigException (one line) when the regions asked for do not fit below {@link #LIMIT}
     */
    public long place(long size) {
        long at = alignUp(next, REGION_ALIGN);
        if (size <= 0 || at > LIMIT || size > LIMIT - at) {
            throw new VmConfigException("devices' shared memory (" + (size >> 20) + " MiB more at 0x" + Long.toHexString(at)
                    + ") does not fit below 512 GiB of guest-physical space");
        }
        next = at + size;
        return at;
    }

    private static long alignUp(long v, long align) {
        return (v + align - 1) & -align;
    }
}
