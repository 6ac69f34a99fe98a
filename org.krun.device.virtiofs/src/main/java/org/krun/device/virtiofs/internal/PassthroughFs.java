package org.krun.device.virtiofs.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import org.krun.posix.Errno;

/**
 * A host directory served as a filesystem: the semantics behind every FUSE operation.
 *
 * <p>Confinement: the guest names inodes only by node ids this class handed out, each backed by an O_PATH
 * descriptor, and names within a directory by single components (no '/', not "." or ".."). Every host
 * call is relative to such a descriptor and never follows a symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW,
 * AT_EMPTY_PATH); re-opening an inode for I/O goes through /proc/self/fd, which names the inode itself.
 * So no path the guest writes, no symlink it plants and no rename it races can lead the host outside the
 * shared directory. Special files are never opened on the host.
 *
 * <p>Ownership: files are created by this process (so they belong on the host to the user running krun);
 * when that user is root, a file created by another guest user is given to that user, as a passthrough
 * filesystem should.
 *
 * <p>Not final only so that tests can make a host operation fail in ways the host rarely does (an Error).
 */
class PassthroughFs implements AutoCloseable {

    /** Caller credentials from the FUSE request header. */
    record Caller(int uid, int gid, int pid) {
    }

    /** A looked-up inode: its node id and attributes. */
    record Entry(long nodeid, Stat stat) {
    }

    /** An opened file: its handle and, for CREATE, the new inode. */
    record Opened(long fh, Entry entry) {
    }

    /** What an open file handle carries: its inode, kind, a lock for readdir, the open access mode. */
    record Handle(long nodeid, boolean directory, Object lock, int accessMode) {
    }

    /** Attribute changes of SETATTR (fuse_setattr_in, with FATTR_* bits in {@code valid}). */
    record SetAttr(int valid, long fh, long size, long atime, int atimeNsec, long mtime, int mtimeNsec, int mode,
            int uid, int gid) {
    }

    static final int FATTR_MODE = 1;
    static final int FATTR_UID = 1 << 1;
    static final int FATTR_GID = 1 << 2;
    static final int FATTR_SIZE = 1 << 3;
    static final int FATTR_ATIME = 1 << 4;
    static final int FATTR_MTIME = 1 << 5;
    static final int FATTR_FH = 1 << 6;
    static final int FATTR_ATIME_NOW = 1 << 7;
    static final int FATTR_MTIME_NOW = 1 << 8;

    /** Guest xattr names outside "user." live on the host under this prefix, so the guest can never set host security attributes. */
    static final String XATTR_PREFIX = "user.krun.";

    private final Path root;
    private final boolean readOnly;
    private final FsLimits limits;
    private final InodeTable inodes;
    private final FdTable<Handle> handles;
    private final FileLocks locks;
    private final boolean hostRoot = HostFs.geteuid() == 0;
    private final java.util.function.LongSupplier clock;

    /** A share with this process's default {@link FsLimits}. */
    PassthroughFs(Path root, boolean readOnly) {
        this(root, readOnly, FsLimits.forThisProcess());
    }

    PassthroughFs(Path root, boolean readOnly, FsLimits limits) {
        this(root, readOnly, limits, PassthroughFs::realTimeNanos);
    }

    /** With {@code clock} as the host's real-time clock in nanoseconds (tests move it on). */
    PassthroughFs(Path root, boolean readOnly, FsLimits limits, java.util.function.LongSupplier clock) {
        this.clock = clock;
        this.root = root;
        this.readOnly = readOnly;
        this.limits = limits;
        int fd = HostFs.openat(HostFs.AT_FDCWD, root.toString().getBytes(StandardCharsets.UTF_8),
                HostFs.O_PATH | HostFs.O_DIRECTORY | HostFs.O_CLOEXEC, 0);
        this.inodes = new InodeTable(fd, limits.maxInodes());
        this.handles = new FdTable<>(1, limits.maxOpenFiles(), Errno.EMFILE);
        this.locks = new FileLocks(handles, limits.maxLockOwners());
    }

    FsLimits limits() {
        return limits;
    }

    Path root() {
        return root;
    }

    boolean readOnly() {
        return readOnly;
    }

    int inodeCount() {
        return inodes.size();
    }

    int handleCount() {
        return handles.size();
    }

    int lockOwnerCount() {
        return locks.ownerCount();
    }

    private void requireWritable() {
        if (readOnly) {
            throw new FsException(Errno.EROFS);
        }
    }

    /** One path component from the guest: not empty, no '/', not "." or "..", at most 255 bytes. */
    static byte[] checkName(byte[] name) {
        if (name.length == 0) {
            throw new FsException(Errno.ENOENT);
        }
        if (name.length > 255) {
            throw new FsException(Errno.ENAMETOOLONG);
        }
        if ((name.length == 1 && name[0] == '.') || (name.length == 2 && name[0] == '.' && name[1] == '.')) {
            throw new FsException(Errno.EINVAL);
        }
        for (byte b : name) {
            if (b == '/' || b == 0) {
                throw new FsException(Errno.EINVAL);
            }
        }
        return name;
    }

    // ---- lookup and attributes

    Entry lookup(long parent, byte[] name) {
        checkName(name);
        try (var dir = inodes.acquire(parent)) {
            int fd = HostFs.openat(dir.fd(), name, HostFs.O_PATH | HostFs.O_NOFOLLOW | HostFs.O_CLOEXEC, 0);
            return register(fd);
        }
    }

    /** Registers an O_PATH fd just opened as a lookup of its inode. */
    private Entry register(int fd) {
        Stat st;
        try {
            st = HostFs.stat(fd, new byte[0]);
        } catch (FsException e) {
            HostFs.close(fd);
            throw e;
        }
        return new Entry(inodes.lookedUp(fd, st), st);
    }

    void forget(long nodeid, long nlookup) {
        inodes.forget(nodeid, nlookup);
    }

    Stat getattr(long nodeid) {
        try (var ino = inodes.acquire(nodeid)) {
            return HostFs.stat(ino.fd(), new byte[0]);
        }
    }

    Stat setattr(long nodeid, SetAttr a) {
        requireWritable();
        try (var ino = inodes.acquire(nodeid)) {
            int type = ino.value().type();
            if ((a.valid() & FATTR_MODE) != 0) {
                if (type == HostFs.S_IFLNK) {
                    throw new FsException(Errno.EOPNOTSUPP);
                }
                HostFs.chmod(ino.fd(), a.mode() & 07777);
            }
            if ((a.valid() & (FATTR_UID | FATTR_GID)) != 0) {
                int uid = (a.valid() & FATTR_UID) != 0 ? a.uid() : -1;
                int gid = (a.valid() & FATTR_GID) != 0 ? a.gid() : -1;
                HostFs.chown(ino.fd(), uid, gid);
            }
            if ((a.valid() & FATTR_SIZE) != 0) {
                if (type != HostFs.S_IFREG) {
                    throw new FsException(type == HostFs.S_IFDIR ? Errno.EISDIR : Errno.EINVAL);
                }
                if ((a.valid() & FATTR_FH) != 0) {
                    try (var h = handles.acquire(a.fh())) {
                        HostFs.ftruncate(h.fd(), a.size());
                    }
                } else {
                    HostFs.truncate(ino.fd(), a.size());
                }
            }
            if ((a.valid() & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) != 0) {
                if (type == HostFs.S_IFLNK) {
                    throw new FsException(Errno.EOPNOTSUPP);
                }
                long aSec = 0;
                long aNsec = HostFs.UTIME_OMIT;
                long mSec = 0;
                long mNsec = HostFs.UTIME_OMIT;
                if ((a.valid() & FATTR_ATIME_NOW) != 0) {
                    aNsec = HostFs.UTIME_NOW;
                } else if ((a.valid() & FATTR_ATIME) != 0) {
                    aSec = a.atime();
                    aNsec = a.atimeNsec();
                }
                if ((a.valid() & FATTR_MTIME_NOW) != 0) {
                    mNsec = HostFs.UTIME_NOW;
                } else if ((a.valid() & FATTR_MTIME) != 0) {
                    mSec = a.mtime();
                    mNsec = a.mtimeNsec();
                }
                HostFs.utimens(ino.fd(), aSec, aNsec, mSec, mNsec);
            }
            return HostFs.stat(ino.fd(), new byte[0]);
        }
    }

    byte[] readlink(long nodeid) {
        try (var ino = inodes.acquire(nodeid)) {
            if (ino.value().type() != HostFs.S_IFLNK) {
                throw new FsException(Errno.EINVAL);
            }
            return HostFs.readlink(ino.fd());
        }
    }

    // ---- creating and removing names

    /** After creating {@code name} in {@code dir}: open it O_PATH, give it to the guest caller, register the lookup. */
    private Entry created(int dirFd, byte[] name, Caller caller, Integer exactMode) {
        int fd = HostFs.openat(dirFd, name, HostFs.O_PATH | HostFs.O_NOFOLLOW | HostFs.O_CLOEXEC, 0);
        try {
            if (exactMode != null) {
                HostFs.chmod(fd, exactMode); // this process's umask must not change the guest's mode
            }
            giveToCaller(fd, caller);
        } catch (FsException e) {
            HostFs.close(fd);
            throw e;
        }
        return register(fd);
    }

    private void giveToCaller(int fd, Caller caller) {
        if (hostRoot && (caller.uid() != 0 || caller.gid() != 0)) {
            HostFs.chown(fd, caller.uid(), caller.gid());
        }
    }

    Entry mkdir(long parent, byte[] name, int mode, Caller caller) {
        requireWritable();
        checkName(name);
        inodes.requireRoom();
        try (var dir = inodes.acquire(parent)) {
            HostFs.mkdirat(dir.fd(), name, mode & 07777);
            return created(dir.fd(), name, caller, mode & 07777);
        }
    }

    Entry mknod(long parent, byte[] name, int mode, int rdev, Caller caller) {
        requireWritable();
        checkName(name);
        inodes.requireRoom();
        try (var dir = inodes.acquire(parent)) {
            long dev = Stat.hostDev(Stat.fuseDevMajor(rdev), Stat.fuseDevMinor(rdev));
            HostFs.mknodat(dir.fd(), name, mode, dev);
            return created(dir.fd(), name, caller, mode & 07777);
        }
    }

    Entry symlink(long parent, byte[] name, byte[] target, Caller caller) {
        requireWritable();
        checkName(name);
        inodes.requireRoom();
        if (target.length == 0 || target.length >= 4096) {
            throw new FsException(target.length == 0 ? Errno.ENOENT : Errno.ENAMETOOLONG);
        }
        try (var dir = inodes.acquire(parent)) {
            HostFs.symlinkat(target, dir.fd(), name);
            return created(dir.fd(), name, caller, null);
        }
    }

    Entry link(long nodeid, long newParent, byte[] newName) {
        requireWritable();
        checkName(newName);
        try (var ino = inodes.acquire(nodeid); var dir = inodes.acquire(newParent)) {
            if (ino.value().type() == HostFs.S_IFDIR) {
                throw new FsException(Errno.EPERM);
            }
            HostFs.link(ino.fd(), dir.fd(), newName);
            int fd = HostFs.openat(dir.fd(), newName, HostFs.O_PATH | HostFs.O_NOFOLLOW | HostFs.O_CLOEXEC, 0);
            return register(fd);
        }
    }

    void unlink(long parent, byte[] name, boolean directory) {
        requireWritable();
        checkName(name);
        try (var dir = inodes.acquire(parent)) {
            HostFs.unlinkat(dir.fd(), name, directory ? HostFs.AT_REMOVEDIR : 0);
        }
    }

    void rename(long oldParent, byte[] oldName, long newParent, byte[] newName, int flags) {
        requireWritable();
        checkName(oldName);
        checkName(newName);
        try (var from = inodes.acquire(oldParent); var to = inodes.acquire(newParent)) {
            HostFs.renameat2(from.fd(), oldName, to.fd(), newName, flags);
        }
    }

    // ---- files

    private static boolean writes(int flags) {
        int acc = flags & HostFs.O_ACCMODE;
        return acc == HostFs.O_WRONLY || acc == HostFs.O_RDWR || (flags & HostFs.O_TRUNC) != 0;
    }

    /** Flags the host may see: the access mode and what changes I/O, never O_CREAT/O_NOCTTY/O_NOFOLLOW games. */
    private static int hostOpenFlags(int flags) {
        int keep = HostFs.O_ACCMODE | HostFs.O_APPEND | HostFs.O_TRUNC | HostFs.O_NONBLOCK | 0x101000 /* O_SYNC */
                | 010000 /* O_DSYNC */ | 040000 /* O_DIRECT */ | 01000000 /* O_NOATIME */ | 0100000 /* O_LARGEFILE */;
        return (flags & keep) | HostFs.O_CLOEXEC;
    }

    /** An opened file: its handle, and whether the guest may keep the pages it cached of it (FOPEN_KEEP_CACHE). */
    record OpenFile(long fh, boolean keepCache) {
    }

    /**
     * Opens a regular file. The guest may keep its cached pages when the file's {@link ContentStamp} is
     * settled and the same as at the guest's previous open of it; otherwise its kernel drops them and reads
     * the file afresh (close-to-open consistency, which is what the guest gets either way).
     */
    OpenFile openFile(long nodeid, int flags) {
        if (writes(flags)) {
            requireWritable();
        }
        try (var ino = inodes.acquire(nodeid)) {
            if (ino.value().type() != HostFs.S_IFREG) {
                // Only regular files are opened on the host: special files are the guest's own business.
                throw new FsException(ino.value().type() == HostFs.S_IFDIR ? Errno.EISDIR : Errno.EACCES);
            }
            handles.requireRoom();
            int fd = HostFs.reopen(ino.fd(), hostOpenFlags(flags) & ~01000000 /* no O_NOATIME games */);
            boolean keep;
            try {
                ContentStamp now = ContentStamp.of(HostFs.stat(fd, new byte[0]), clock.getAsLong());
                keep = now.keeps(ino.value().opened().getAndSet(now)) && (flags & HostFs.O_TRUNC) == 0;
            } catch (RuntimeException e) {
                HostFs.close(fd);
                throw e;
            }
            return new OpenFile(handles.add(fd, new Handle(nodeid, false, new Object(), flags & HostFs.O_ACCMODE)).id,
                    keep);
        }
    }

    /** The host's real-time clock, which file timestamps come from. */
    private static long realTimeNanos() {
        java.time.Instant t = java.time.Instant.now();
        return t.getEpochSecond() * 1_000_000_000L + t.getNano();
    }

    Opened create(long parent, byte[] name, int flags, int mode, Caller caller) {
        requireWritable();
        checkName(name);
        inodes.requireRoom();
        handles.requireRoom();
        try (var dir = inodes.acquire(parent)) {
            int fd = HostFs.openat(dir.fd(), name, hostOpenFlags(flags) | HostFs.O_CREAT | HostFs.O_NOFOLLOW
                    | (flags & HostFs.O_EXCL), mode & 07777);
            Entry entry;
            try {
                entry = created(dir.fd(), name, caller, null);
            } catch (FsException e) {
                HostFs.close(fd);
                throw e;
            }
            long fh = handles.add(fd, new Handle(entry.nodeid(), false, new Object(), flags & HostFs.O_ACCMODE)).id;
            return new Opened(fh, entry);
        }
    }

    /**
     * A host descriptor of node {@code nodeid}'s file for a DAX mapping (FUSE_SETUPMAPPING names the node,
     * not an open handle): regular files only, opened read-only or, for a writable mapping of a writable
     * share, read-write. The caller closes it once mapped.
     */
    int openForMapping(long nodeid, boolean writable) {
        if (writable) {
            requireWritable();
        }
        try (var ino = inodes.acquire(nodeid)) {
            if (ino.value().type() != HostFs.S_IFREG) {
                throw new FsException(Errno.EINVAL); // no mapping of directories, devices, FIFOs, symlinks
            }
            return HostFs.reopen(ino.fd(), writable ? HostFs.O_RDWR : HostFs.O_RDONLY);
        }
    }

    /** Reads into the guest buffers {@code dst}; returns bytes read. */
    long read(long fh, long offset, List<MemorySegment> dst) {
        try (var h = handles.acquire(fh)) {
            long total = 0;
            long off = offset;
            for (MemorySegment seg : dst) {
                long done = 0;
                while (done < seg.byteSize()) {
                    long n = HostFs.pread(h.fd(), seg.asSlice(done), off);
                    if (n == 0) {
                        return total + done;
                    }
                    done += n;
                    off += n;
                }
                total += done;
            }
            return total;
        }
    }

    long write(long fh, long offset, List<MemorySegment> src) {
        requireWritable();
        try (var h = handles.acquire(fh)) {
            long total = 0;
            long off = offset;
            for (MemorySegment seg : src) {
                long done = 0;
                while (done < seg.byteSize()) {
                    long n = HostFs.pwrite(h.fd(), seg.asSlice(done), off);
                    done += n;
                    off += n;
                }
                total += done;
            }
            return total;
        }
    }

    void release(long fh) {
        locks.releaseHandle(fh);
        handles.drop(fh, Long.MAX_VALUE);
    }

    void flush(long fh) {
        try (var h = handles.acquire(fh)) {
            // Nothing is buffered here; the handle must just exist.
            h.fd();
        }
    }

    void fsync(long fh, boolean dataOnly) {
        try (var h = handles.acquire(fh)) {
            HostFs.fsync(h.fd(), dataOnly);
        }
    }

    void fallocate(long fh, int mode, long offset, long length) {
        requireWritable();
        try (var h = handles.acquire(fh)) {
            HostFs.fallocate(h.fd(), mode, offset, length);
        }
    }

    long lseek(long fh, long offset, int whence) {
        try (var h = handles.acquire(fh)) {
            return HostFs.lseek(h.fd(), offset, whence);
        }
    }

    long copyFileRange(long fhIn, long offIn, long fhOut, long offOut, long len) {
        requireWritable();
        try (var in = handles.acquire(fhIn); var out = handles.acquire(fhOut)) {
            return HostFs.copyFileRange(in.fd(), offIn, out.fd(), offOut, len);
        }
    }

    // ---- directories

    long opendir(long nodeid) {
        try (var ino = inodes.acquire(nodeid)) {
            if (ino.value().type() != HostFs.S_IFDIR) {
                throw new FsException(Errno.ENOTDIR);
            }
            handles.requireRoom();
            int fd = HostFs.reopen(ino.fd(), HostFs.O_RDONLY | HostFs.O_DIRECTORY);
            return handles.add(fd, new Handle(nodeid, true, new Object(), HostFs.O_RDONLY)).id;
        }
    }

    /** One directory entry as getdents64 gave it. */
    record DirEntry(long ino, long off, int type, byte[] name) {
    }

    /** Receives directory entries; returns false when the reply is full (the entry was not taken). */
    interface DirSink {
        boolean accept(DirEntry e);
    }

    /**
     * Lists the directory from cookie {@code offset} (0 for the start; otherwise a d_off this method
     * returned), stopping when {@code sink} is full. Cookies are the host filesystem's own, so they stay
     * valid across calls and seeks.
     */
    void readdir(long fh, long offset, DirSink sink) {
        try (var h = handles.acquire(fh); Arena a = Arena.ofConfined()) {
            if (!h.value().directory()) {
                throw new FsException(Errno.ENOTDIR);
            }
            synchronized (h.value().lock()) {
                HostFs.lseek(h.fd(), offset, 0 /* SEEK_SET */);
                MemorySegment buf = a.allocate(32 * 1024, 8);
                while (true) {
                    long n = HostFs.getdents(h.fd(), buf);
                    if (n == 0) {
                        return;
                    }
                    long at = 0;
                    while (at < n) {
                        long ino = buf.get(JAVA_LONG, at);
                        long off = buf.get(JAVA_LONG, at + 8);
                        int reclen = buf.get(JAVA_SHORT, at + 16) & 0xffff;
                        int type = buf.get(JAVA_BYTE, at + 18) & 0xff;
                        int nameLen = 0;
                        while (at + 19 + nameLen < at + reclen && buf.get(JAVA_BYTE, at + 19 + nameLen) != 0) {
                            nameLen++;
                        }
                        byte[] name = buf.asSlice(at + 19, nameLen).toArray(JAVA_BYTE);
                        if (!sink.accept(new DirEntry(ino, off, type, name))) {
                            return;
                        }
                        at += reclen;
                    }
                }
            }
        }
    }

    /**
     * For READDIRPLUS: looks an entry up (one more lookup count), or returns null when the guest already
     * knows so many inodes that the lookup is better left to an explicit LOOKUP ({@link FsLimits#readdirplusLookups()}).
     */
    Entry lookupForReaddir(long dirNodeid, byte[] name) {
        if (inodes.size() >= limits.readdirplusLookups()) {
            return null;
        }
        return lookup(dirNodeid, name);
    }

    void releasedir(long fh) {
        handles.drop(fh, Long.MAX_VALUE);
    }

    void fsyncdir(long fh, boolean dataOnly) {
        fsync(fh, dataOnly);
    }

    // ---- filesystem

    /** What statfs(2) says of the share's filesystem. */
    record StatFs(long bsize, long blocks, long bfree, long bavail, long files, long ffree, long namelen, long frsize) {
    }

    StatFs statfs() {
        try (var ino = inodes.acquire(InodeTable.ROOT_ID); Arena a = Arena.ofConfined()) {
            int fd = HostFs.reopen(ino.fd(), HostFs.O_RDONLY | HostFs.O_DIRECTORY);
            try {
                // struct statfs (x86_64): f_type, f_bsize, f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_fsid,
                // f_namelen, f_frsize: eight bytes each.
                MemorySegment s = HostFs.fstatfs(a, fd);
                return new StatFs(s.get(JAVA_LONG, 8), s.get(JAVA_LONG, 16), s.get(JAVA_LONG, 24), s.get(JAVA_LONG, 32),
                        s.get(JAVA_LONG, 40), s.get(JAVA_LONG, 48), s.get(JAVA_LONG, 64), s.get(JAVA_LONG, 72));
            } finally {
                HostFs.close(fd);
            }
        }
    }

    void syncfs() {
        try (var ino = inodes.acquire(InodeTable.ROOT_ID)) {
            int fd = HostFs.reopen(ino.fd(), HostFs.O_RDONLY | HostFs.O_DIRECTORY);
            try {
                HostFs.syncfs(fd);
            } finally {
                HostFs.close(fd);
            }
        }
    }

    void access(long nodeid, int mask) {
        try (var ino = inodes.acquire(nodeid)) {
            if ((mask & 2) != 0 && readOnly) {
                throw new FsException(Errno.EROFS);
            }
            // The guest kernel checks permissions itself (virtio-fs mounts with default_permissions);
            // existence is what is left to confirm.
            HostFs.stat(ino.fd(), new byte[0]);
        }
    }

    // ---- extended attributes

    /** The host name of guest xattr {@code name} (see {@link #XATTR_PREFIX}). */
    static byte[] hostXattrName(byte[] name) {
        String n = new String(name, StandardCharsets.UTF_8);
        if (n.isEmpty() || name.length > 255) {
            throw new FsException(n.isEmpty() ? Errno.EINVAL : Errno.ERANGE);
        }
        if (n.startsWith("user.") && !n.startsWith(XATTR_PREFIX)) {
            return name;
        }
        return (XATTR_PREFIX + n).getBytes(StandardCharsets.UTF_8);
    }

    private FdTable<InodeTable.Info>.Ref xattrInode(long nodeid) {
        var ino = inodes.acquire(nodeid);
        int type = ino.value().type();
        if (type != HostFs.S_IFREG && type != HostFs.S_IFDIR) {
            ino.close();
            throw new FsException(Errno.EOPNOTSUPP); // Linux allows user.* xattrs only on files and directories
        }
        return ino;
    }

    /** The value, read into a buffer of {@code size} bytes (1 to 64 KiB): ERANGE when it is larger. */
    byte[] getxattr(long nodeid, byte[] name, int size) {
        try (var ino = xattrInode(nodeid)) {
            return HostFs.getxattr(ino.fd(), hostXattrName(name), size);
        }
    }

    int getxattrSize(long nodeid, byte[] name) {
        try (var ino = xattrInode(nodeid)) {
            return HostFs.getxattrSize(ino.fd(), hostXattrName(name));
        }
    }

    void setxattr(long nodeid, byte[] name, byte[] value, int flags) {
        requireWritable();
        try (var ino = xattrInode(nodeid)) {
            HostFs.setxattr(ino.fd(), hostXattrName(name), value, flags);
        }
    }

    void removexattr(long nodeid, byte[] name) {
        requireWritable();
        try (var ino = xattrInode(nodeid)) {
            HostFs.removexattr(ino.fd(), hostXattrName(name));
        }
    }

    /** The guest's view of the names: host "user.krun.X" is X, other "user." names as they are, the rest hidden. */
    byte[] listxattr(long nodeid) {
        try (var ino = inodes.acquire(nodeid)) {
            int type = ino.value().type();
            if (type != HostFs.S_IFREG && type != HostFs.S_IFDIR) {
                return new byte[0];
            }
            byte[] raw = new byte[0];
            for (int attempt = 0; attempt < 4; attempt++) {
                int size = HostFs.listxattrSize(ino.fd());
                if (size == 0) {
                    return new byte[0];
                }
                try {
                    raw = HostFs.listxattr(ino.fd(), size);
                    break;
                } catch (FsException e) {
                    if (e.errno != Errno.ERANGE) {
                        throw e; // ERANGE: the list grew in between; ask again
                    }
                }
            }
            java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
            int start = 0;
            for (int i = 0; i < raw.length; i++) {
                if (raw[i] != 0) {
                    continue;
                }
                String n = new String(raw, start, i - start, StandardCharsets.UTF_8);
                start = i + 1;
                String guest = n.startsWith(XATTR_PREFIX) ? n.substring(XATTR_PREFIX.length())
                        : n.startsWith("user.") ? n : null;
                if (guest != null && !guest.isEmpty()) {
                    out.writeBytes(guest.getBytes(StandardCharsets.UTF_8));
                    out.write(0);
                }
            }
            return out.toByteArray();
        }
    }

    // ---- locks (FUSE_POSIX_LOCKS with OFD locks, FUSE_FLOCK_LOCKS with flock)

    /** A byte-range lock as FUSE carries it: start, end (inclusive), type F_RDLCK/F_WRLCK/F_UNLCK, pid. */
    record Lock(long start, long end, int type, int pid) {
    }

    static final int F_RDLCK = 0;
    static final int F_WRLCK = 1;
    static final int F_UNLCK = 2;

    /** The guest's locks on files of this share. */
    FileLocks locks() {
        return locks;
    }

    @Override
    public void close() {
        locks.close();
        handles.close();
        inodes.close();
    }
}
