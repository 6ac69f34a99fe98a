package org.krun.vmm.internal.memory;

import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.krun.posix.Posix;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;

/**
 * The guest's RAM: one anonymous private mapping, split into a region below the MMIO window and, for
 * larger guests, one above 4 GiB (DESIGN.md §3).
 *
 * <p>The mapping belongs to a shared {@link Arena}: every segment devices hold (regions, slices, request
 * buffers) is scoped to it, so once {@link #close()} has closed the arena, a late access from Java code
 * fails with an {@link IllegalStateException} instead of touching unmapped memory (a SIGSEGV that would
 * take down every VM of the JVM), and closing waits for accesses in progress. Native calls that were given
 * a guest segment keep the arena open until they return; calls given raw addresses (an iovec) are not
 * covered: the devices making them wait for their requests before they close, and tell the core with
 * {@link org.krun.spi.virtio.VirtioDevice#touchesGuestMemoryAfterClose()} when they could not, and the
 * core then {@link #keepMapped keeps the mapping} rather than unmap it under them.
 */
public final class GuestRam implements AutoCloseable {
    private static final System.Logger LOG = System.getLogger(GuestRam.class.getName());

    /** Start of the MMIO window: guest RAM below 4 GiB ends here. */
    public static final long MMIO_WINDOW_START = 0xd000_0000L;
    public static final long FOUR_GIB = 1L << 32;
    /** How long close waits for native calls that hold the mapping. */
    static final long CLOSE_WAIT_MILLIS = 5_000;

    private final Arena arena;
    private final GuestMemory memory;
    private boolean closed;
    private String keptBecause;

    private GuestRam(Arena arena, List<GuestRegion> regions) {
        this.arena = arena;
        this.memory = new GuestMemory(regions);
    }

    /** Maps {@code bytes} of zeroed memory (reserved lazily by the host). */
    public static GuestRam allocate(long bytes) {
        MemorySegment raw = Posix.mmap("mmap guest RAM (" + (bytes >> 20) + " MiB)", bytes,
                Posix.PROT_READ | Posix.PROT_WRITE, Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS | Posix.MAP_NORESERVE, -1, 0);
        // A forked child (none expected, but libraries fork) must not inherit the guest's memory.
        Posix.madvise(raw, Posix.MADV_DONTFORK);
        Arena arena = Arena.ofShared();
        // The arena owns the mapping from here: closing it unmaps (the cleanup gets a global-scope view).
        MemorySegment mapping = raw.reinterpret(arena, Posix::munmap);
        List<GuestRegion> regions = new ArrayList<>(2);
        long low = Math.min(bytes, MMIO_WINDOW_START);
        regions.add(new GuestRegion(0, mapping.asSlice(0, low)));
        if (bytes > low) {
            regions.add(new GuestRegion(FOUR_GIB, mapping.asSlice(low, bytes - low)));
        }
        return new GuestRam(arena, regions);
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

    /**
     * Something may still touch the mapping by raw address ({@code reason}): {@link #close()} leaves it
     * mapped (leaked) rather than free memory that work in progress writes to.
     */
    public synchronized void keepMapped(String reason) {
        keptBecause = reason;
    }

    /** Whether close left the mapping in place. */
    public synchronized boolean leaked() {
        return closed && keptBecause != null;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (keptBecause != null) {
            LOG.log(Level.ERROR, "guest RAM (" + (memory.size() >> 20) + " MiB) stays mapped: " + keptBecause);
            return;
        }
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(CLOSE_WAIT_MILLIS);
        while (true) {
            try {
                arena.close(); // unmaps; fails while a native call still holds a segment of it
                return;
            } catch (IllegalStateException busy) {
                if (System.nanoTime() - deadline > 0) {
                    keptBecause = "a native call still uses it after " + CLOSE_WAIT_MILLIS + " ms";
                    LOG.log(Level.ERROR, "guest RAM stays mapped: " + keptBecause);
                    return;
                }
                try {
                    Thread.sleep(10);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }
}
