package org.krun.device.virtiofs.internal;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.krun.posix.Errno;

/**
 * Host file descriptors the guest refers to by number (FUSE node ids, file handles), safe against a
 * guest that releases a number while another request still uses it: a request pins the entry while it
 * works, and the descriptor is closed only when the entry is released and no request holds it. A closed
 * descriptor is never used, so a reused fd number can never redirect a request to the wrong file.
 *
 * @param <T> what each entry carries besides its fd
 */
final class FdTable<T> {

    /** One pinned use of an entry; closing it unpins. */
    final class Ref implements AutoCloseable {
        final Entry entry;
        private boolean closed;

        private Ref(Entry entry) {
            this.entry = entry;
        }

        int fd() {
            return entry.fd;
        }

        T value() {
            return entry.value;
        }

        long id() {
            return entry.id;
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                unpin(entry);
            }
        }
    }

    /** An fd, its id, and a count the owner may use (FUSE lookups). */
    final class Entry {
        final long id;
        final int fd;
        final T value;
        long count;
        private int pins;
        private boolean removed;

        private Entry(long id, int fd, T value) {
            this.id = id;
            this.fd = fd;
            this.value = value;
        }
    }

    private final Map<Long, Entry> entries = new HashMap<>();
    private final int capacity;
    private final int fullErrno;
    private long nextId;
    private boolean closed;

    /**
     * @param firstId the id of the first entry
     * @param capacity the most entries (descriptors) the table holds at once
     * @param fullErrno what adding to a full table throws (EMFILE, ENFILE, ENOLCK)
     */
    FdTable(long firstId, int capacity, int fullErrno) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity " + capacity);
        }
        this.nextId = firstId;
        this.capacity = capacity;
        this.fullErrno = fullErrno;
    }

    /**
     * Adds {@code fd} (now owned by the table) under a fresh id with count 1; when the table is full the
     * fd is closed and the table's errno thrown.
     */
    synchronized Entry add(int fd, T value) {
        if (closed) {
            HostFs.close(fd);
            throw new FsException(Errno.EIO);
        }
        if (entries.size() >= capacity) {
            HostFs.close(fd);
            throw new FsException(fullErrno);
        }
        Entry e = new Entry(nextId++, fd, value);
        e.count = 1;
        entries.put(e.id, e);
        return e;
    }

    /** Pins the entry {@code id}, or throws EBADF when the guest names one that does not exist. */
    synchronized Ref acquire(long id) {
        Entry e = entries.get(id);
        if (e == null) {
            throw new FsException(Errno.EBADF);
        }
        e.pins++;
        return new Ref(e);
    }

    /** Pins an entry the caller already holds. */
    synchronized Ref pin(Entry e) {
        e.pins++;
        return new Ref(e);
    }

    synchronized Entry get(long id) {
        return entries.get(id);
    }

    private synchronized void unpin(Entry e) {
        e.pins--;
        if (e.removed && e.pins == 0) {
            HostFs.close(e.fd);
        }
    }

    /**
     * Subtracts {@code n} from the entry's count and removes it when none is left (FUSE FORGET, RELEASE);
     * returns whether it was removed. Unknown ids are ignored: a forget has no reply to carry an error.
     */
    synchronized boolean drop(long id, long n) {
        Entry e = entries.get(id);
        if (e == null) {
            return false;
        }
        e.count -= Math.min(n, e.count);
        if (e.count > 0) {
            return false;
        }
        entries.remove(id);
        e.removed = true;
        if (e.pins == 0) {
            HostFs.close(e.fd);
        }
        return true;
    }

    synchronized int size() {
        return entries.size();
    }

    int capacity() {
        return capacity;
    }

    /** Throws the table's errno when it is full: before making on the host what could not be registered. */
    synchronized void requireRoom() {
        if (entries.size() >= capacity) {
            throw new FsException(fullErrno);
        }
    }

    /** Closes every descriptor not in use now; those in use close when their last request ends. */
    synchronized void close() {
        closed = true;
        List<Entry> all = new ArrayList<>(entries.values());
        entries.clear();
        for (Entry e : all) {
            e.removed = true;
            if (e.pins == 0) {
                HostFs.close(e.fd);
            }
        }
    }
}
