package org.krun.spi.virtio;

/** Feature bits common to all devices (virtio 1.2 §6), as masks. */
public final class VirtioFeatures {
    /** virtio 1.2 §2.7.5: indirect descriptors. */
    public static final long RING_INDIRECT_DESC = 1L << 28;
    /** virtio 1.2 §2.7.7, §2.7.10: used_event / avail_event notification suppression. */
    public static final long RING_EVENT_IDX = 1L << 29;
    /** Compliance with virtio 1.x (no legacy interface). */
    public static final long VERSION_1 = 1L << 32;

    private VirtioFeatures() {
    }
}
