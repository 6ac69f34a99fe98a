package org.krun.spi.virtio;

import org.krun.spi.memory.GuestMemory;

/**
 * Where the driver put one split virtqueue and how large it is (virtio 1.2 §2.7): what the transport
 * learnt from the driver's queue registers, fixed for one activation.
 *
 * @param size the number of entries (a power of 2)
 * @param descTable guest address of the descriptor table
 * @param availRing guest address of the driver area (avail ring)
 * @param usedRing guest address of the device area (used ring)
 */
public record QueueLayout(int size, long descTable, long availRing, long usedRing) {

    /** The largest queue size virtio 1.2 allows (§2.7). */
    public static final int MAX_SIZE = 32768;

    /**
     * Why this layout cannot be used with {@code mem} and a device maximum of {@code maxSize}, or null
     * when it can: the size must be a power of 2 no larger than {@code maxSize}, and the three areas
     * aligned (§2.7) and inside guest RAM (their EVENT_IDX fields included).
     */
    public String problem(GuestMemory mem, int maxSize) {
        if (size <= 0 || size > Math.min(maxSize, MAX_SIZE) || Integer.bitCount(size) != 1) {
            return "queue size " + size + " is not a power of 2 up to " + maxSize;
        }
        if ((descTable & 15) != 0 || (availRing & 1) != 0 || (usedRing & 3) != 0) {
            return "queue areas misaligned";
        }
        if (!mem.contains(descTable, (long) Virtqueue.DESC_SIZE * size)
                || !mem.contains(availRing, 6 + 2L * size)
                || !mem.contains(usedRing, 6 + 8L * size)) {
            return "queue areas outside guest RAM";
        }
        return null;
    }
}
