package org.krun.vmm.internal.memory;

import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.krun.api.KrunException;
import org.krun.posix.Errno;
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
        return own(raw, bytes);
    }

    /**
     * Maps a snapshot's RAM file copy-on-write (MAP_PRIVATE): the guest reads the file's pages from the
     * host's page cache, shared with every other VM restored from the same file, and a page it writes
     * becomes its own. The file must stay unchanged while the mapping lives (a file truncated under it
     * would fault the JVM): snapshots are written to a new file and renamed, never rewritten in place.
     *
     * @throws KrunException when the file is missing or not {@code bytes} long (one line)
     */
    public static GuestRam mapSnapshot(Path file, long bytes) {
        long size;
        try {
            size = Files.size(file);
        } catch (IOException e) {
            throw new KrunException("snapshot RAM " + file + " cannot be read: " + e.getMessage());
        }
        if (size != bytes) {
            throw new KrunException("snapshot RAM " + file + " has " + size + " bytes; the snapshot needs " + bytes);
        }
        int fd = Posix.open(file.toString(), Posix.O_RDONLY | Posix.O_CLOEXEC);
        if (fd < 0) {
            throw new KrunException("snapshot RAM " + file + " cannot be opened: " + Errno.name(-fd));
        }
        try {
            // PROT_WRITE on a read-only fd is allowed for MAP_PRIVATE: writes go to private copies.
            MemorySegment raw = Posix.mmap("mmap snapshot RAM " + file, bytes, Posix.PROT_READ | Posix.PROT_WRITE,
                    Posix.MAP_PRIVATE | Posix.MAP_NORESERVE, fd, 0);
            return own(raw, bytes);
        } finally {
            Posix.close(fd); // the mapping keeps the file
        }
    }

    private static GuestRam own(MemorySegment raw, long bytes) {
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

    /** The page size of snapshot RAM files: a page of zeros is a hole. */
    static final int PAGE = 4096;
    private static final MemorySegment ZERO_PAGE = Arena.global().allocate(PAGE);

    /**
     * Writes all of guest RAM to {@code file} (regions in order, as {@link #mapSnapshot} maps them back) as
     * a sparse file: only pages that are not all zeros are written, each run of them with one positioned
     * write. The caller keeps the guest from changing RAM meanwhile (vCPUs paused, devices idle).
     *
     * @return the number of pages written (the rest are holes)
     */
    public long writeSnapshot(Path file) throws IOException {
        long written = 0;
        try (RandomAccessFile raf = new RandomAccessFile(file.toFile(), "rw"); FileChannel ch = raf.getChannel()) {
            raf.setLength(0);
            raf.setLength(memory.size());
            long fileOffset = 0;
            for (GuestRegion r : memory.regions()) {
                MemorySegment host = r.host();
                long pages = host.byteSize() / PAGE;
                long runStart = -1;
                for (long p = 0; p <= pages; p++) {
                    boolean data = p < pages && MemorySegment.mismatch(host, p * PAGE, (p + 1) * PAGE, ZERO_PAGE, 0, PAGE) >= 0;
                    if (data && runStart < 0) {
                        runStart = p;
                    } else if (!data && runStart >= 0) {
                        java.nio.ByteBuffer run = host.asSlice(runStart * PAGE, (p - runStart) * PAGE).asByteBuffer();
                        long at = fileOffset + runStart * PAGE;
                        while (run.hasRemaining()) {
                            at += ch.write(run, at);
                        }
                        written += p - runStart;
                        runStart = -1;
                    }
                }
                fileOffset += host.byteSize();
            }
        }
        return written;
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
