package org.krun.vmm.internal.virtio;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

import org.krun.spi.virtio.SharedMemory;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.vmm.internal.memory.MemorySlots;

/**
 * A device's shared memory region placed in guest-physical memory (virtio 1.2 §2.10), with the host ranges
 * mapped into it now, each in its own hypervisor memory slot. Checks every mapping (page-aligned, inside the
 * region, no overlap) before it reaches the hypervisor; {@link #unmapAll} removes what the device left.
 */
final class PlacedSharedMemory implements SharedMemory {

    private final SharedMemoryRegion region;
    private final long guestAddress;
    private final MemorySlots slots;
    /** Mappings in place, by offset. Guarded by this. */
    private final TreeMap<Long, Placed> mappings = new TreeMap<>();

    PlacedSharedMemory(SharedMemoryRegion region, long guestAddress, MemorySlots slots) {
        this.region = region;
        this.guestAddress = guestAddress;
        this.slots = slots;
    }

    @Override
    public int id() {
        return region.id();
    }

    @Override
    public long guestAddress() {
        return guestAddress;
    }

    @Override
    public long size() {
        return region.size();
    }

    @Override
    public synchronized int mappings() {
        return mappings.size();
    }

    @Override
    public synchronized Mapping map(long offset, MemorySegment host) {
        long page = SharedMemoryRegion.PAGE_SIZE;
        long size = host.byteSize();
        if (offset < 0 || offset % page != 0 || size == 0 || size % page != 0 || host.address() % page != 0) {
            throw new IllegalArgumentException("shared memory " + id() + ": a mapping of " + size + " bytes at host 0x"
                    + Long.toHexString(host.address()) + " to offset 0x" + Long.toHexString(offset) + " is not whole pages");
        }
        if (offset > region.size() || size > region.size() - offset) {
            throw new IllegalArgumentException("shared memory " + id() + ": " + size + " bytes at offset 0x"
                    + Long.toHexString(offset) + " leave the region of " + region.size() + " bytes");
        }
        Map.Entry<Long, Placed> before = mappings.floorEntry(offset + size - 1);
        if (before != null && before.getKey() + before.getValue().size > offset) {
            throw new IllegalArgumentException("shared memory " + id() + ": offset 0x" + Long.toHexString(offset) + " (+"
                    + size + ") overlaps the mapping at 0x" + Long.toHexString(before.getKey()));
        }
        if (!slots.available()) {
            throw new UnsupportedOperationException("the hypervisor cannot map memory into a running VM");
        }
        int slot = slots.take();
        if (slot < 0) {
            throw new IllegalStateException("shared memory " + id() + ": every one of the VM's " + slots.inUse()
                    + " mappings is in use");
        }
        try {
            slots.vm().mapMemory(slot, guestAddress + offset, host);
        } catch (RuntimeException e) {
            slots.give(slot);
            throw e;
        }
        Placed p = new Placed(offset, size, slot);
        mappings.put(offset, p);
        return p;
    }

    /** Removes every mapping (device reset, VM end). */
    synchronized void unmapAll() {
        for (Placed p : mappings.values().toArray(Placed[]::new)) {
            unmap(p);
        }
    }

    private synchronized void unmap(Placed p) {
        if (p.removed || mappings.get(p.offset) != p) {
            return;
        }
        p.removed = true;
        mappings.remove(p.offset);
        // A slot the hypervisor did not take back stays taken: it may still map the host memory.
        slots.vm().unmapMemory(p.slot);
        slots.give(p.slot);
    }

    private final class Placed implements Mapping {
        final long offset;
        final long size;
        final int slot;
        boolean removed;

        Placed(long offset, long size, int slot) {
            this.offset = offset;
            this.size = size;
            this.slot = slot;
        }

        @Override
        public long offset() {
            return offset;
        }

        @Override
        public long size() {
            return size;
        }

        @Override
        public void close() {
            unmap(this);
        }
    }
}
