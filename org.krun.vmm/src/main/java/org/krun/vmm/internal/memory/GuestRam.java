package org.krun.vmm.internal.memory;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;
import org.krun.posix.Posix;

/**
 * The guest's RAM: one anonymous private mapping, split into a region below the MMIO window and, for
 * larger guests, one above 4 GiB (DESIGN.md §3). Owns the mapping; {@link #close()} unmaps it.
 */
public final class GuestRam implements AutoCloseable {

    /** Start of the MMIO window: guest RAM below 4 GiB ends here. */
    public static final long MMIO_WINDOW_START = 0xd000_0000L;
    public static final long FOUR_GIB = 1L << 32;

    private final MemorySegment mapping;
    private final GuestMemory memory;
    private boolean closed;

    private GuestRam(MemorySegment mapping, List<GuestRegion> regions) {
        this.mapping = mapping;
        this.memory = new GuestMemory(regions);
    }

    /** Maps {@code bytes} of zeroed memory (reserved lazily by the host). */
    public static GuestRam allocate(long bytes) {
        MemorySegment mapping = Posix.mmap("mmap guest RAM (" + (bytes >> 20) + " MiB)", bytes,
                Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS | Posix.MAP_NORESERVE, -1, 0);
        // A forked child (none expected, but libraries fork) must not inherit the guest's memory.
        Posix.madvise(mapping, Posix.MADV_DONTFORK);
        List<GuestRegion> regions = new ArrayList<>(2);
        long low = Math.min(bytes, MMIO_WINDOW_START);
        regions.add(new GuestRegion(0, mapping.asSlice(0, low)));
        if (bytes > low) {
            regions.add(new GuestRegion(FOUR_GIB, mapping.asSlice(low, bytes - low)));
        }
        return new GuestRam(mapping, regions);
    }

    public GuestMemory memory() {
        return memory;
    }

    /** End of the RAM below the MMIO window. */
    public long lowEnd() {
        return memory.regions().get(0).end();
    }

    /** Registers every region as a memory slot of {@code vm}. */
    public void mapInto(HypervisorVm vm) {
        int slot = 0;
        for (GuestRegion r : memory.regions()) {
            vm.mapMemory(slot++, r.guestAddress(), r.host());
        }
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Posix.munmap(mapping);
        }
    }
}
