package org.krun.device.virtiofs.internal;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.spi.virtio.SharedMemory;

/**
 * The DAX window of one virtio-fs activation (virtio 1.2 §5.11.5, shared memory region 0): host address
 * space reserved for the whole window, given to the guest as one mapping of the region the first time the
 * guest maps a file, into which FUSE_SETUPMAPPING maps pieces of files ({@code mmap MAP_FIXED}) and
 * FUSE_REMOVEMAPPING puts the reservation back. The hypervisor sees the same host range throughout: a
 * file mapped or removed changes the host's page tables, not the VM's memory slots.
 *
 * <p>Unmapped parts of the window are PROT_NONE host memory: a guest that touches them gets an error from
 * the hypervisor, which hurts only that guest. The host range is never unmapped while the guest has it
 * (only replaced), so no other mapping of this process can land in it.
 *
 * <p>Bounds: at most {@link #maxMappings()} files mapped at once (host VMAs), each a whole number of pages
 * inside the window, not overlapping another except to replace one exactly (the guest's kernel upgrades a
 * read mapping to a writable one that way); REMOVEMAPPING must name a mapping exactly. {@link #close()}
 * takes the window from the guest and frees the reservation (reset, VM end).
 */
final class DaxWindow implements AutoCloseable {
    static final long PAGE = Fuse.PAGE_SIZE;

    private final SharedMemory region;
    private final int maxMappings;
    /** Mapped pieces: window offset to length. Guarded by this. */
    private final TreeMap<Long, Long> mapped = new TreeMap<>();
    private MemorySegment reservation;
    private SharedMemory.Mapping guestMapping;
    private boolean closed;

    /** @param maxMappings how many pieces may be mapped at once */
    DaxWindow(SharedMemory region, int maxMappings) {
        this.region = region;
        this.maxMappings = maxMappings;
    }

    long size() {
        return region.size();
    }

    int maxMappings() {
        return maxMappings;
    }

    /** Pieces mapped now. */
    synchronized int mappings() {
        return mapped.size();
    }

    /** Whether the guest has been given the window (at its first SETUPMAPPING). */
    synchronized boolean attached() {
        return guestMapping != null;
    }

    /**
     * Checks a SETUPMAPPING against the window before anything on the host is opened: whole pages, inside
     * the window, no partial overlap, room for one more unless it replaces one.
     *
     * @throws FsException EINVAL for a range the window cannot take, ENOSPC past {@link #maxMappings()}
     */
    synchronized void check(long moffset, long length, long foffset) {
        if (closed) {
            throw new FsException(Errno.ENODEV);
        }
        if (length <= 0 || moffset < 0 || foffset < 0 || moffset % PAGE != 0 || length % PAGE != 0
                || foffset % PAGE != 0 || moffset > region.size() || length > region.size() - moffset
                || foffset > Long.MAX_VALUE - length) {
            throw new FsException(Errno.EINVAL);
        }
        Long exact = mapped.get(moffset);
        if (exact != null && exact == length) {
            return; // a replacement
        }
        Map.Entry<Long, Long> before = mapped.floorEntry(moffset + length - 1);
        if (before != null && before.getKey() + before.getValue() > moffset) {
            throw new FsException(Errno.EINVAL);
        }
        if (mapped.size() >= maxMappings) {
            throw new FsException(Errno.ENOSPC);
        }
    }

    /**
     * Maps {@code length} bytes of the file {@code fd} at {@code foffset} to {@code moffset} in the window
     * (shared with the host file: the guest sees the host's changes and the host the guest's writes).
     * {@code fd} stays the caller's; the mapping holds the file itself.
     */
    synchronized void map(long moffset, long length, int fd, long foffset, boolean writable) {
        check(moffset, length, foffset);
        attach();
        int prot = Posix.PROT_READ | (writable ? Posix.PROT_WRITE : 0);
        HostFs.mmapFixed(reservation.asSlice(moffset, length), prot, Posix.MAP_SHARED, fd, foffset);
        mapped.put(moffset, length);
    }

    /**
     * Removes the mapping at exactly {@code moffset} of {@code length} bytes: the range is reserved again.
     *
     * @throws FsException EINVAL when no mapping is there with that length
     */
    synchronized void remove(long moffset, long length) {
        Long len = mapped.get(moffset);
        if (closed || len == null || len != length) {
            throw new FsException(Errno.EINVAL);
        }
        reserve(reservation.asSlice(moffset, length));
        mapped.remove(moffset);
    }

    /**
     * Removes every mapping, the window staying the guest's: at FUSE_DESTROY (the guest unmounts; its kernel
     * sends DESTROY before it evicts the inodes whose mappings it would otherwise remove, and sends nothing
     * once the connection is down) and at FUSE_INIT (a new connection knows no mapping of the old one).
     */
    synchronized void removeAll() {
        if (closed || reservation == null) {
            mapped.clear();
            return;
        }
        for (var e : mapped.entrySet()) {
            reserve(reservation.asSlice(e.getKey(), e.getValue()));
        }
        mapped.clear();
    }

    /** The first mapping reserves the window on the host and gives it to the guest. */
    private void attach() {
        if (guestMapping != null) {
            return;
        }
        MemorySegment r = Posix.mmap("reserve a DAX window", region.size(), Posix.PROT_NONE,
                Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS | Posix.MAP_NORESERVE, -1, 0);
        try {
            guestMapping = region.map(0, r);
        } catch (RuntimeException e) {
            Posix.munmap(r);
            throw new FsException(Errno.ENOMEM);
        }
        reservation = r;
    }

    private static void reserve(MemorySegment range) {
        HostFs.mmapFixed(range, Posix.PROT_NONE, Posix.MAP_PRIVATE | Posix.MAP_ANONYMOUS | Posix.MAP_NORESERVE, -1, 0);
    }

    /** Takes the window from the guest, then frees the reservation and every file mapped in it. Idempotent. */
    @Override
    public synchronized void close() {
        closed = true;
        mapped.clear();
        if (guestMapping != null) {
            guestMapping.close(); // the guest loses the range before the host memory goes
            guestMapping = null;
        }
        if (reservation != null) {
            Posix.munmap(reservation);
            reservation = null;
        }
    }
}
