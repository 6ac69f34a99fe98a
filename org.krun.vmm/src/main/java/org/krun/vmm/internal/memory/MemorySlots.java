package org.krun.vmm.internal.memory;

import java.util.BitSet;

import org.krun.spi.hypervisor.HypervisorVm;

/**
 * The hypervisor memory slots of one VM that devices' shared memory mappings may take while it runs: every
 * slot above guest RAM's, up to the backend's count and {@link #MAX_MAPPINGS}. Thread-safe.
 */
public final class MemorySlots {

    /**
     * The most mappings one VM holds at once, whatever the backend allows (KVM offers up to 32764 slots; each
     * costs the host kernel memory): a guest that asks for more gets its device's error, never more slots.
     */
    public static final int MAX_MAPPINGS = 1024;

    private final HypervisorVm vm;
    private final int first;
    private final int end;
    private final BitSet used = new BitSet();

    /** The slots from {@code first} (the first one guest RAM left free) to what {@code vm} has. */
    public MemorySlots(HypervisorVm vm, int first) {
        this.vm = vm;
        this.first = first;
        this.end = (int) Math.min((long) first + MAX_MAPPINGS, Math.max(first, vm.memorySlots()));
    }

    /** Whether the backend can map memory while the VM runs at all. */
    public boolean available() {
        return end > first;
    }

    /** How many slots are taken now. */
    public synchronized int inUse() {
        return used.cardinality();
    }

    /**
     * Takes a free slot; -1 when none is left.
     */
    public synchronized int take() {
        int s = used.nextClearBit(first);
        if (s >= end) {
            return -1;
        }
        used.set(s);
        return s;
    }

    /** Gives {@code slot} back (its memory already removed from the VM). */
    public synchronized void give(int slot) {
        used.clear(slot);
    }

    public HypervisorVm vm() {
        return vm;
    }
}
