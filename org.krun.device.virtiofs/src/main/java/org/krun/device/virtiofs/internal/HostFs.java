package org.krun.device.virtiofs.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.nio.charset.StandardCharsets;

import org.krun.posix.Errno;
import org.krun.posix.Libc;
import org.krun.posix.Posix;
import org.krun.posix.PosixIo;

/**
 * The host system calls the passthrough filesystem makes: the file I/O it shares with other devices comes
 * from {@link PosixIo}, the filesystem calls only it needs are linked here through {@link Libc}. Every
 * call returns its result or throws {@link FsException} with the errno, which becomes the FUSE reply's
 * error.
 *
 * <p>Paths given here are single names relative to a directory fd (or "" with AT_EMPTY_PATH), never
 * multi-component host paths: that is what keeps the guest inside its share.
 */
final class HostFs {
    static final int AT_FDCWD = PosixIo.AT_FDCWD;
    static final int AT_SYMLINK_NOFOLLOW = 0x100;
    static final int AT_REMOVEDIR = 0x200;
    static final int AT_SYMLINK_FOLLOW = 0x400;
    static final int AT_EMPTY_PATH = 0x1000;

    static final int O_RDONLY = Posix.O_RDONLY;
    static final int O_WRONLY = Posix.O_WRONLY;
    static final int O_RDWR = Posix.O_RDWR;
    static final int O_ACCMODE = PosixIo.O_ACCMODE;
    static final int O_CREAT = PosixIo.O_CREAT;
    static final int O_EXCL = PosixIo.O_EXCL;
    static final int O_NOCTTY = PosixIo.O_NOCTTY;
    static final int O_TRUNC = PosixIo.O_TRUNC;
    static final int O_APPEND = PosixIo.O_APPEND;
    static final int O_NONBLOCK = Posix.O_NONBLOCK;
    static final int O_DIRECTORY = PosixIo.O_DIRECTORY;
    static final int O_NOFOLLOW = PosixIo.O_NOFOLLOW;
    static final int O_CLOEXEC = Posix.O_CLOEXEC;
    static final int O_PATH = PosixIo.O_PATH;

    static final int S_IFMT = 0170000;
    static final int S_IFDIR = 0040000;
    static final int S_IFREG = 0100000;
    static final int S_IFLNK = 0120000;

    static final int STATX_BASIC_STATS = 0x7ff;
    static final int F_OFD_GETLK = 36;
    static final int F_OFD_SETLK = 37;
    static final int F_OFD_SETLKW = 38;

    /** struct statx (linux/stat.h): the fields the passthrough reads, at their offsets. */
    static final long STATX_SIZE = 256;

    /** struct flock (x86_64): short type, short whence, off_t start, off_t len, pid_t pid. */
    static final StructLayout FLOCK = MemoryLayout.structLayout(
            JAVA_SHORT.withName("l_type"), JAVA_SHORT.withName("l_whence"),
            MemoryLayout.paddingLayout(4), JAVA_LONG.withName("l_start"), JAVA_LONG.withName("l_len"),
            JAVA_INT.withName("l_pid"), MemoryLayout.paddingLayout(4));

    private static final MethodHandle STATX = Libc.downcall("statx",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle MKDIRAT = Libc.downcall("mkdirat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle MKNODAT = Libc.downcall("mknodat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle SYMLINKAT = Libc.downcall("symlinkat", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
    private static final MethodHandle READLINKAT = Libc.downcall("readlinkat",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG));
    private static final MethodHandle UNLINKAT = Libc.downcall("unlinkat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RENAMEAT2 = Libc.downcall("renameat2",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LINKAT = Libc.downcall("linkat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle FCHOWNAT = Libc.downcall("fchownat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle CHMOD = Libc.downcall("chmod", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle UTIMENSAT = Libc.downcall("utimensat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle TRUNCATE = Libc.downcall("truncate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle SYNCFS = Libc.downcall("syncfs", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle COPY_FILE_RANGE = Libc.downcall("copy_file_range",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle GETDENTS64 = Libc.downcall("getdents64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle FSTATFS = Libc.downcall("fstatfs", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle GETXATTR = Libc.downcall("getxattr",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG));
    private static final MethodHandle SETXATTR = Libc.downcall("setxattr",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle LISTXATTR = Libc.downcall("listxattr",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG));
    private static final MethodHandle REMOVEXATTR = Libc.downcall("removexattr", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle FCNTL_PTR = Libc.downcall("fcntl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle MMAP = Libc.downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle GETEUID = Libc.downcallWithoutErrno("geteuid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETRLIMIT = Libc.downcall("getrlimit", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    /** sys/resource.h */
    static final int RLIMIT_NOFILE = 7;

    private static final byte[] EMPTY = new byte[0];

    private HostFs() {
    }

    /** {@code result}, or the FsException its negative value names. */
    private static long check(long result) {
        if (result < 0) {
            throw new FsException((int) -result);
        }
        return result;
    }

    private static int check(int result) {
        if (result < 0) {
            throw new FsException(-result);
        }
        return result;
    }

    static MemorySegment cstring(Arena a, String s) {
        return a.allocateFrom(s, StandardCharsets.UTF_8);
    }

    static MemorySegment cstring(Arena a, byte[] s) {
        return PosixIo.cstring(a, s);
    }

    static int openat(int dirfd, byte[] name, int flags, int mode) {
        return check(PosixIo.openat(dirfd, name, flags, mode));
    }

    /** Re-opens the file an O_PATH fd refers to, with real access flags (through /proc/self/fd). */
    static int reopen(int pathFd, int flags) {
        return openat(AT_FDCWD, procPath(pathFd), flags | O_CLOEXEC, 0);
    }

    static byte[] procPath(int fd) {
        return ("/proc/self/fd/" + fd).getBytes(StandardCharsets.US_ASCII);
    }

    /** statx of the fd itself (AT_EMPTY_PATH), or of {@code name} under it, never following a symlink. */
    static Stat stat(int fd, byte[] name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(STATX_SIZE, 8);
            MemorySegment path = cstring(a, name);
            int flags = AT_SYMLINK_NOFOLLOW | (name.length == 0 ? AT_EMPTY_PATH : 0);
            check(Libc.call(() -> (int) STATX.invokeExact(fd, path, flags, STATX_BASIC_STATS, buf)));
            return Stat.of(buf);
        }
    }

    static void mkdirat(int dirfd, byte[] name, int mode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, name);
            check(Libc.call(() -> (int) MKDIRAT.invokeExact(dirfd, path, mode)));
        }
    }

    static void mknodat(int dirfd, byte[] name, int mode, long dev) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, name);
            check(Libc.call(() -> (int) MKNODAT.invokeExact(dirfd, path, mode, dev)));
        }
    }

    static void symlinkat(byte[] target, int dirfd, byte[] name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = cstring(a, target);
            MemorySegment path = cstring(a, name);
            check(Libc.call(() -> (int) SYMLINKAT.invokeExact(t, dirfd, path)));
        }
    }

    /** The target of the symlink an O_PATH fd refers to. */
    static byte[] readlink(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(4096);
            MemorySegment path = cstring(a, EMPTY);
            long n = check(Libc.call(() -> (long) READLINKAT.invokeExact(fd, path, buf, 4096L)));
            return buf.asSlice(0, n).toArray(JAVA_BYTE);
        }
    }

    static void unlinkat(int dirfd, byte[] name, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, name);
            check(Libc.call(() -> (int) UNLINKAT.invokeExact(dirfd, path, flags)));
        }
    }

    static void renameat2(int olddir, byte[] oldname, int newdir, byte[] newname, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment from = cstring(a, oldname);
            MemorySegment to = cstring(a, newname);
            check(Libc.call(() -> (int) RENAMEAT2.invokeExact(olddir, from, newdir, to, flags)));
        }
    }

    /** A new name for the inode an O_PATH fd refers to (through /proc/self/fd, followed). */
    static void link(int fd, int newdir, byte[] newname) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment from = cstring(a, procPath(fd));
            MemorySegment to = cstring(a, newname);
            check(Libc.call(() -> (int) LINKAT.invokeExact(AT_FDCWD, from, newdir, to, AT_SYMLINK_FOLLOW)));
        }
    }

    static void chown(int fd, int uid, int gid) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, EMPTY);
            check(Libc.call(() -> (int) FCHOWNAT.invokeExact(fd, path, uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)));
        }
    }

    /** chmod of the inode an O_PATH fd refers to (not for symlinks, whose mode Linux ignores). */
    static void chmod(int fd, int mode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, procPath(fd));
            check(Libc.call(() -> (int) CHMOD.invokeExact(path, mode)));
        }
    }

    /** UTIME_NOW and UTIME_OMIT as utimensat(2) knows them. */
    static final long UTIME_NOW = (1L << 30) - 1;
    static final long UTIME_OMIT = (1L << 30) - 2;

    /** Sets times of the inode behind an O_PATH fd (through /proc/self/fd, followed). */
    static void utimens(int fd, long atimeSec, long atimeNsec, long mtimeSec, long mtimeNsec) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ts = a.allocate(32, 8);
            ts.set(JAVA_LONG, 0, atimeSec);
            ts.set(JAVA_LONG, 8, atimeNsec);
            ts.set(JAVA_LONG, 16, mtimeSec);
            ts.set(JAVA_LONG, 24, mtimeNsec);
            MemorySegment path = cstring(a, procPath(fd));
            check(Libc.call(() -> (int) UTIMENSAT.invokeExact(AT_FDCWD, path, ts, 0)));
        }
    }

    static void ftruncate(int fd, long size) {
        check(PosixIo.ftruncate(fd, size));
    }

    static void truncate(int pathFd, long size) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, procPath(pathFd));
            check(Libc.call(() -> (int) TRUNCATE.invokeExact(path, size)));
        }
    }

    /** pread into {@code buf}; returns bytes read (0 at end of file). */
    static long pread(int fd, MemorySegment buf, long offset) {
        return check(PosixIo.pread(fd, buf, offset));
    }

    static long pwrite(int fd, MemorySegment buf, long offset) {
        return check(PosixIo.pwrite(fd, buf, offset));
    }

    static void fsync(int fd, boolean dataOnly) {
        check(dataOnly ? PosixIo.fdatasync(fd) : PosixIo.fsync(fd));
    }

    static void syncfs(int fd) {
        check(Libc.call(() -> (int) SYNCFS.invokeExact(fd)));
    }

    static void fallocate(int fd, int mode, long offset, long length) {
        check(PosixIo.fallocate(fd, mode, offset, length));
    }

    static long lseek(int fd, long offset, int whence) {
        return check(PosixIo.lseek(fd, offset, whence));
    }

    static long copyFileRange(int fdIn, long offIn, int fdOut, long offOut, long len) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment in = a.allocateFrom(JAVA_LONG, offIn);
            MemorySegment out = a.allocateFrom(JAVA_LONG, offOut);
            return check(Libc.call(() -> (long) COPY_FILE_RANGE.invokeExact(fdIn, in, fdOut, out, len, 0)));
        }
    }

    static final int MAP_FIXED = 0x10;

    /**
     * mmap(2) at exactly {@code at} (MAP_FIXED): replaces whatever the process had mapped in that range, in one
     * step, so the range is never a hole another mapping of this process could take.
     */
    static void mmapFixed(MemorySegment at, int prot, int flags, int fd, long offset) {
        MemorySegment r;
        try {
            r = (MemorySegment) MMAP.invokeExact(at, at.byteSize(), prot, flags | MAP_FIXED, fd, offset);
        } catch (Throwable t) {
            throw Libc.unchecked(t);
        }
        if (r.address() != at.address()) {
            int errno = Libc.errno();
            throw new FsException(errno > 0 ? errno : Errno.EIO);
        }
    }

    /** getdents64 into {@code buf}; returns bytes filled (0 at the end). */
    static long getdents(int fd, MemorySegment buf) {
        return check(Libc.call(() -> (long) GETDENTS64.invokeExact(fd, buf, buf.byteSize())));
    }

    /** struct statfs (x86_64) into a 120-byte buffer. */
    static MemorySegment fstatfs(Arena a, int fd) {
        MemorySegment buf = a.allocate(120, 8);
        check(Libc.call(() -> (int) FSTATFS.invokeExact(fd, buf)));
        return buf;
    }

    /** getxattr on the inode behind an O_PATH fd, into a buffer of {@code size} bytes (at least 1). */
    static byte[] getxattr(int fd, byte[] name, int size) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(size);
            MemorySegment path = cstring(a, procPath(fd));
            MemorySegment n = cstring(a, name);
            long r = check(Libc.call(() -> (long) GETXATTR.invokeExact(path, n, buf, (long) size)));
            return buf.asSlice(0, r).toArray(JAVA_BYTE);
        }
    }

    /** The size of an xattr's value (getxattr with size 0), allocating nothing of that size. */
    static int getxattrSize(int fd, byte[] name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, procPath(fd));
            MemorySegment n = cstring(a, name);
            return (int) check(Libc.call(() -> (long) GETXATTR.invokeExact(path, n, MemorySegment.NULL, 0L)));
        }
    }

    static void setxattr(int fd, byte[] name, byte[] value, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(Math.max(1, value.length));
            MemorySegment.copy(value, 0, v, JAVA_BYTE, 0, value.length);
            MemorySegment path = cstring(a, procPath(fd));
            MemorySegment n = cstring(a, name);
            check(Libc.call(() -> (int) SETXATTR.invokeExact(path, n, v, (long) value.length, flags)));
        }
    }

    /** The NUL-separated names list, into a buffer of {@code size} bytes (at least 1). */
    static byte[] listxattr(int fd, int size) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(size);
            MemorySegment path = cstring(a, procPath(fd));
            long r = check(Libc.call(() -> (long) LISTXATTR.invokeExact(path, buf, (long) size)));
            return buf.asSlice(0, r).toArray(JAVA_BYTE);
        }
    }

    /** The size of the names list (listxattr with size 0). */
    static int listxattrSize(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, procPath(fd));
            return (int) check(Libc.call(() -> (long) LISTXATTR.invokeExact(path, MemorySegment.NULL, 0L)));
        }
    }

    static void removexattr(int fd, byte[] name) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, procPath(fd));
            MemorySegment n = cstring(a, name);
            check(Libc.call(() -> (int) REMOVEXATTR.invokeExact(path, n)));
        }
    }

    /** fcntl with a struct flock (the OFD lock commands); a SETLKW interrupted by a signal is retried. */
    static void fcntlLock(int fd, int cmd, MemorySegment flock) {
        int r;
        do {
            r = Libc.call(() -> (int) FCNTL_PTR.invokeExact(fd, cmd, flock));
        } while (r == -Errno.EINTR && cmd == F_OFD_SETLKW && !Thread.interrupted());
        check(r);
    }

    static void flock(int fd, int op) {
        check(PosixIo.flock(fd, op));
    }

    /** This process's soft limit on open descriptors (RLIMIT_NOFILE); RLIM_INFINITY as Long.MAX_VALUE. */
    static long openFileLimit() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment rlim = a.allocate(16, 8); // struct rlimit: rlim_cur, rlim_max
            check(Libc.call(() -> (int) GETRLIMIT.invokeExact(RLIMIT_NOFILE, rlim)));
            long cur = rlim.get(JAVA_LONG, 0);
            return cur < 0 ? Long.MAX_VALUE : cur;
        }
    }

    static int geteuid() {
        return Libc.call(() -> (int) GETEUID.invokeExact());
    }

    static void close(int fd) {
        // On Linux the fd is gone even when close reports an error (EINTR, EIO): nothing to retry.
        Posix.close(fd);
    }
}
