package org.krun.device.virtiofs.internal;

import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.atomic.AtomicReference;

import org.krun.posix.Errno;

/**
 * The inodes the guest knows: FUSE node id to an O_PATH descriptor of the host inode, one node id per
 * host (device, inode) pair, with the FUSE lookup count. Node id 1 is the share's root and is never
 * forgotten. The descriptor pins its inode, so the host cannot hand the same inode number to a new file
 * while the guest still knows the old one: (device, inode) is a safe identity.
 */
final class InodeTable {
    static final long ROOT_ID = 1;

    /** What is known of a host inode besides its descriptor. */
    record Key(long dev, long ino) {
    }

    /**
     * The inode's type bits (S_IFMT) and identity, and what its file looked like when the guest last opened it
     * ({@link ContentStamp}; null until then).
     */
    record Info(Key key, int type, AtomicReference<ContentStamp> opened) {
        Info(Key key, int type) {
            this(key, type, new AtomicReference<>());
        }
    }

    private final FdTable<Info> table;
    private final Map<Key, FdTable<Info>.Entry> byKey = new HashMap<>();

    /**
     * Takes ownership of {@code rootFd}, an O_PATH descriptor of the shared directory; at most
     * {@code capacity} inodes (the root included) are known at once, and a lookup of another one fails
     * with ENFILE until the guest forgets some.
     */
    InodeTable(int rootFd, int capacity) {
        this.table = new FdTable<>(ROOT_ID, capacity, Errno.ENFILE);
        Stat st = HostFs.stat(rootFd, new byte[0]);
        Info info = new Info(new Key(st.dev(), st.ino()), st.mode() & HostFs.S_IFMT);
        FdTable<Info>.Entry root = table.add(rootFd, info);
        byKey.put(info.key(), root);
    }

    FdTable<Info>.Ref acquire(long nodeid) {
        return table.acquire(nodeid);
    }

    /**
     * Registers a lookup of the inode behind {@code fd} (an O_PATH descriptor the caller opened): the
     * existing node id if the guest already knows this inode (then {@code fd} is closed), else a new one.
     * Either way the lookup count grows by one. A new inode in a full table closes {@code fd} and throws
     * ENFILE.
     */
    long lookedUp(int fd, Stat st) {
        Key key = new Key(st.dev(), st.ino());
        synchronized (table) {
            FdTable<Info>.Entry e = byKey.get(key);
            if (e != null && table.get(e.id) == e) {
                e.count++;
                HostFs.close(fd);
                return e.id;
            }
            FdTable<Info>.Entry added = table.add(fd, new Info(key, st.mode() & HostFs.S_IFMT));
            byKey.put(key, added);
            return added.id;
        }
    }

    /** FUSE FORGET: the guest drops {@code nlookup} references. */
    void forget(long nodeid, long nlookup) {
        if (nodeid == ROOT_ID) {
            return;
        }
        synchronized (table) {
            FdTable<Info>.Entry e = table.get(nodeid);
            if (e != null && table.drop(nodeid, nlookup)) {
                byKey.remove(e.value.key(), e);
            }
        }
    }

    int size() {
        return table.size();
    }

    int capacity() {
        return table.capacity();
    }

    /** Throws ENFILE when no further inode can be known: before creating one on the host. */
    void requireRoom() {
        table.requireRoom();
    }

    void close() {
        synchronized (table) {
            byKey.clear();
            table.close();
        }
    }
}
