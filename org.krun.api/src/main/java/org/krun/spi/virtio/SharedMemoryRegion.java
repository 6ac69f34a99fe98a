package org.krun.spi.virtio;

/**
 * A shared memory region a device asks for (virtio 1.2 §2.10): memory the device makes visible to the
 * driver at guest-physical addresses the transport chooses. The device maps host memory into it while it
 * runs ({@link SharedMemory#map}); what is not mapped is a hole the guest must not touch.
 *
 * @param id the region's shmid (device-specific: virtio-gpu's host-visible region is 1)
 * @param size its length in bytes, a positive multiple of {@link #PAGE_SIZE}
 * @since 1.6
 */
public record SharedMemoryRegion(int id, long size) {

    /** The granule of regions, offsets and mappings (the host's and guest's page). */
    public static final long PAGE_SIZE = 4096;
    /** The most one region may span: 64 GiB of guest-physical address space. */
    public static final long MAX_SIZE = 64L << 30;

    public SharedMemoryRegion {
        if (id < 0 || id > 255) {
            throw new IllegalArgumentException("shared memory region id " + id + " is not 0-255 (a u8 in virtio-mmio's SHMSel)");
        }
        if (size <= 0 || size % PAGE_SIZE != 0 || size > MAX_SIZE) {
            throw new IllegalArgumentException("shared memory region " + id + " of " + size
                    + " bytes: the size must be a positive multiple of 4 KiB, at most 64 GiB");
        }
    }
}
