package org.krun.device.virtiofs.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.krun.posix.Errno;

/**
 * The guest's file locks on the host: POSIX record locks (FUSE_POSIX_LOCKS) as OFD locks, BSD locks
 * (FUSE_FLOCK_LOCKS) as flock on the handle's descriptor.
 *
 * <p>OFD locks belong to open file descriptions while POSIX locks belong to processes: each guest lock
 * owner gets a description of its own for each open file (a re-open of the handle's file), so two guest
 * processes sharing a handle still conflict as POSIX says. Such a descriptor is made only when the owner
 * takes a lock (GETLK and unlocking need none), and closed when the guest closes a descriptor of the file
 * (FLUSH carries the owner: POSIX drops a process's locks on any close) or releases the handle. At most
 * {@code maxOwners} exist at once: beyond, SETLK fails with ENOLCK.
 *
 * <p>Waiting (SETLKW) never blocks in the kernel: it tries and pauses ({@link LockWaits.Wait}), so an
 * INTERRUPT, a reset or a close ends it.
 */
final class FileLocks implements AutoCloseable {

    private record Owner(long fh, long owner) {
    }

    static final int LOCK_SH = 1;
    static final int LOCK_EX = 2;
    static final int LOCK_NB = 4;
    static final int LOCK_UN = 8;

    private final FdTable<PassthroughFs.Handle> handles;
    /** The owners' descriptors; pinned while a request uses one, so a FLUSH cannot close it under a waiting SETLKW. */
    private final FdTable<Owner> owners;
    private final Map<Owner, FdTable<Owner>.Entry> byOwner = new HashMap<>();

    FileLocks(FdTable<PassthroughFs.Handle> handles, int maxOwners) {
        this.handles = handles;
        this.owners = new FdTable<>(1, maxOwners, Errno.ENOLCK);
    }

    int ownerCount() {
        return owners.size();
    }

    /** The first lock that would conflict with {@code want}, or {@code want} with type F_UNLCK if none would. */
    PassthroughFs.Lock getlk(long fh, long owner, PassthroughFs.Lock want) {
        try (var h = handles.acquire(fh); var o = existing(new Owner(fh, owner)); Arena a = Arena.ofConfined()) {
            // An owner without a descriptor of its own holds no locks: the handle's description (which
            // holds none either) sees the same conflicts.
            int fd = o != null ? o.fd() : h.fd();
            MemorySegment fl = flock(a, want);
            HostFs.fcntlLock(fd, HostFs.F_OFD_GETLK, fl);
            int type = fl.get(JAVA_SHORT, 0);
            long start = fl.get(JAVA_LONG, 8);
            long len = fl.get(JAVA_LONG, 16);
            return new PassthroughFs.Lock(start, len == 0 ? Long.MAX_VALUE : start + len - 1, type,
                    type == PassthroughFs.F_UNLCK ? 0 : fl.get(JAVA_INT, 24));
        }
    }

    /**
     * Sets or clears a POSIX lock of {@code owner} through handle {@code fh}. When it conflicts, waits
     * while {@code wait} is given and not cancelled (then EINTR), or fails with EAGAIN at once.
     */
    void setlk(long fh, long owner, PassthroughFs.Lock lock, LockWaits.Wait wait) {
        Owner key = new Owner(fh, owner);
        try (var h = handles.acquire(fh)) {
            var o = lock.type() == PassthroughFs.F_UNLCK ? existing(key) : ownerFd(key, h);
            if (o == null) {
                return; // unlocking what an owner without a descriptor never locked
            }
            try (o; Arena a = Arena.ofConfined()) {
                MemorySegment fl = flock(a, lock);
                retry(wait, () -> HostFs.fcntlLock(o.fd(), HostFs.F_OFD_SETLK, fl));
            }
        }
    }

    /** A BSD lock operation (LOCK_SH, LOCK_EX, LOCK_UN) on handle {@code fh}'s description; waits as {@link #setlk}. */
    void flock(long fh, int op, LockWaits.Wait wait) {
        try (var h = handles.acquire(fh)) {
            retry(wait, () -> HostFs.flock(h.fd(), op | LOCK_NB));
        }
    }

    private static void retry(LockWaits.Wait wait, Runnable attempt) {
        while (true) {
            try {
                attempt.run();
                return;
            } catch (FsException e) {
                // EAGAIN from flock and OFD locks; EACCES too from fcntl on some systems (fcntl(2))
                if (wait == null || (e.errno != Errno.EAGAIN && e.errno != Errno.EACCES)) {
                    throw e;
                }
            }
            if (wait.cancelled() || Thread.currentThread().isInterrupted()) {
                throw new FsException(Errno.EINTR);
            }
            wait.pause();
        }
    }

    /** FLUSH: the guest closed a descriptor; {@code owner} loses its POSIX locks on this handle. */
    void releaseOwner(long fh, long owner) {
        synchronized (owners) {
            FdTable<Owner>.Entry e = byOwner.remove(new Owner(fh, owner));
            if (e != null) {
                owners.drop(e.id, Long.MAX_VALUE);
            }
        }
    }

    /** RELEASE: every owner's locks through handle {@code fh} go. */
    void releaseHandle(long fh) {
        synchronized (owners) {
            List<Owner> gone = new ArrayList<>();
            for (var e : byOwner.entrySet()) {
                if (e.getKey().fh() == fh) {
                    owners.drop(e.getValue().id, Long.MAX_VALUE);
                    gone.add(e.getKey());
                }
            }
            gone.forEach(byOwner::remove);
        }
    }

    /** The owner's descriptor pinned, or null when it has none. */
    private FdTable<Owner>.Ref existing(Owner key) {
        synchronized (owners) {
            FdTable<Owner>.Entry e = byOwner.get(key);
            return e == null ? null : owners.pin(e);
        }
    }

    /** The owner's descriptor pinned, made now (a re-open of the handle's file) if it has none; ENOLCK when too many exist. */
    private FdTable<Owner>.Ref ownerFd(Owner key, FdTable<PassthroughFs.Handle>.Ref h) {
        FdTable<Owner>.Ref o = existing(key);
        if (o != null) {
            return o;
        }
        owners.requireRoom();
        int fd = HostFs.reopen(h.fd(), h.value().accessMode());
        synchronized (owners) {
            FdTable<Owner>.Entry e = byOwner.get(key);
            if (e != null) { // another request of this owner made one meanwhile
                HostFs.close(fd);
                return owners.pin(e);
            }
            e = owners.add(fd, key);
            byOwner.put(key, e);
            return owners.pin(e);
        }
    }

    private static MemorySegment flock(Arena a, PassthroughFs.Lock l) {
        MemorySegment fl = a.allocate(HostFs.FLOCK);
        fl.set(JAVA_SHORT, 0, (short) l.type());
        fl.set(JAVA_SHORT, 2, (short) 0); // SEEK_SET
        fl.set(JAVA_LONG, 8, l.start());
        fl.set(JAVA_LONG, 16, l.end() == Long.MAX_VALUE ? 0 : l.end() - l.start() + 1);
        fl.set(JAVA_INT, 24, 0);
        return fl;
    }

    @Override
    public void close() {
        synchronized (owners) {
            byOwner.clear();
            owners.close();
        }
    }
}
