package org.krun.device.virtiofs.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;

/**
 * The host system calls the passthrough filesystem makes, through FFM. Every call returns its result or
 * throws {@link FsException} with the errno, which becomes the FUSE reply's error. errno is captured into
 * per-thread memory (requests run on several worker threads at once).
 *
 * <p>Paths given here are single names relative to a directory fd (or "" with AT_EMPTY_PATH), never
 * multi-component host paths: that is what keeps the guest inside its share.
 */
final class HostFs {
    static final int AT_FDCWD = -100;
    static final int AT_SYMLINK_NOFOLLOW = 0x100;
    static final int AT_REMOVEDIR = 0x200;
    static final int AT_SYMLINK_FOLLOW = 0x400;
    static final int AT_EMPTY_PATH = 0x1000;

    static final int O_RDONLY = 0;
    static final int O_WRONLY = 1;
    static final int O_RDWR = 2;
    static final int O_ACCMODE = 3;
    static final int O_CREAT = 0100;
    static final int O_EXCL = 0200;
    static final int O_NOCTTY = 0400;
    static final int O_TRUNC = 01000;
    static final int O_APPEND = 02000;
    static final int O_NONBLOCK = 04000;
    static final int O_DIRECTORY = 0200000;
    static final int O_NOFOLLOW = 0400000;
    static final int O_CLOEXEC = 02000000;
    static final int O_PATH = 010000000;

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

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    private static final MethodHandle OPENAT = link("openat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), 3);
    private static final MethodHandle STATX = link("statx",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS), -1);
    private static final MethodHandle MKDIRAT = link("mkdirat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), -1);
    private static final MethodHandle MKNODAT = link("mknodat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG), -1);
    private static final MethodHandle SYMLINKAT = link("symlinkat", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS), -1);
    private static final MethodHandle READLINKAT = link("readlinkat",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG), -1);
    private static final MethodHandle UNLINKAT = link("unlinkat", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT), -1);
    private static final MethodHandle RENAMEAT2 = link("renameat2",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), -1);
    private static final MethodHandle LINKAT = link("linkat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT), -1);
    private static final MethodHandle FCHOWNAT = link("fchownat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle CHMOD = link("chmod", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT), -1);
    private static final MethodHandle UTIMENSAT = link("utimensat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT), -1);
    private static final MethodHandle FTRUNCATE = link("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG), -1);
    private static final MethodHandle TRUNCATE = link("truncate", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG), -1);
    private static final MethodHandle PREAD = link("pread", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), -1);
    private static final MethodHandle PWRITE = link("pwrite",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG), -1);
    private static final MethodHandle FSYNC = link("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle FDATASYNC = link("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle SYNCFS = link("syncfs", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle FALLOCATE = link("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), -1);
    private static final MethodHandle LSEEK = link("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT), -1);
    private static final MethodHandle COPY_FILE_RANGE = link("copy_file_range",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT), -1);
    private static final MethodHandle GETDENTS64 = link("getdents64",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG), -1);
    private static final MethodHandle FSTATFS = link("fstatfs", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS), -1);
    private static final MethodHandle GETXATTR = link("getxattr",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG), -1);
    private static final MethodHandle SETXATTR = link("setxattr",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT), -1);
    private static final MethodHandle LISTXATTR = link("listxattr",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, ADDRESS, JAVA_LONG), -1);
    private static final MethodHandle REMOVEXATTR = link("removexattr", FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS), -1);
    private static final MethodHandle FCNTL_PTR = link("fcntl", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS), 2);
    private static final MethodHandle FLOCK_CALL = link("flock", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT), -1);
    private static final MethodHandle GETEUID = LINKER.downcallHandle(LIBC.findOrThrow("geteuid"), FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle CLOSE = link("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT), -1);

    private HostFs() {
    }

    private static MethodHandle link(String name, FunctionDescriptor fd, int firstVariadic) {
        Linker.Option capture = Linker.Option.captureCallState("errno");
        return firstVariadic < 0
                ? LINKER.downcallHandle(LIBC.findOrThrow(name), fd, capture)
                : LINKER.downcallHandle(LIBC.findOrThrow(name), fd, capture, Linker.Option.firstVariadicArg(firstVariadic));
    }

    private static MemorySegment capture() {
        return CAPTURE.get();
    }

    private static FsException fail(MemorySegment capture) {
        return new FsException((int) ERRNO.get(capture, 0L));
    }

    private static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    static MemorySegment cstring(Arena a, String s) {
        return a.allocateFrom(s, StandardCharsets.UTF_8);
    }

    static MemorySegment cstring(Arena a, byte[] s) {
        MemorySegment m = a.allocate(s.length + 1L);
        MemorySegment.copy(s, 0, m, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, s.length);
        return m;
    }

    static int openat(int dirfd, byte[] name, int flags, int mode) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            int r = (int) OPENAT.invokeExact(c, dirfd, cstring(a, name), flags, mode);
            if (r < 0) {
                throw fail(c);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
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
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(STATX_SIZE, 8);
            int flags = AT_SYMLINK_NOFOLLOW | (name.length == 0 ? AT_EMPTY_PATH : 0);
            int r = (int) STATX.invokeExact(c, fd, cstring(a, name), flags, STATX_BASIC_STATS, buf);
            if (r < 0) {
                throw fail(c);
            }
            return Stat.of(buf);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void mkdirat(int dirfd, byte[] name, int mode) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) MKDIRAT.invokeExact(c, dirfd, cstring(a, name), mode) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void mknodat(int dirfd, byte[] name, int mode, long dev) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) MKNODAT.invokeExact(c, dirfd, cstring(a, name), mode, dev) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void symlinkat(byte[] target, int dirfd, byte[] name) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) SYMLINKAT.invokeExact(c, cstring(a, target), dirfd, cstring(a, name)) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The target of the symlink an O_PATH fd refers to. */
    static byte[] readlink(int fd) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocate(4096);
            long n = (long) READLINKAT.invokeExact(c, fd, cstring(a, new byte[0]), buf, 4096L);
            if (n < 0) {
                throw fail(c);
            }
            return buf.asSlice(0, n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void unlinkat(int dirfd, byte[] name, int flags) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) UNLINKAT.invokeExact(c, dirfd, cstring(a, name), flags) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void renameat2(int olddir, byte[] oldname, int newdir, byte[] newname, int flags) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) RENAMEAT2.invokeExact(c, olddir, cstring(a, oldname), newdir, cstring(a, newname), flags) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A new name for the inode an O_PATH fd refers to (through /proc/self/fd, followed). */
    static void link(int fd, int newdir, byte[] newname) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            int r = (int) LINKAT.invokeExact(c, AT_FDCWD, cstring(a, procPath(fd)), newdir, cstring(a, newname),
                    AT_SYMLINK_FOLLOW);
            if (r < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void chown(int fd, int uid, int gid) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            int r = (int) FCHOWNAT.invokeExact(c, fd, cstring(a, new byte[0]), uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
            if (r < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** chmod of the inode an O_PATH fd refers to (not for symlinks, whose mode Linux ignores). */
    static void chmod(int fd, int mode) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) CHMOD.invokeExact(c, cstring(a, procPath(fd)), mode) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** UTIME_NOW and UTIME_OMIT as utimensat(2) knows them. */
    static final long UTIME_NOW = (1L << 30) - 1;
    static final long UTIME_OMIT = (1L << 30) - 2;

    /** Sets times of the inode behind an O_PATH fd (through /proc/self/fd, followed). */
    static void utimens(int fd, long atimeSec, long atimeNsec, long mtimeSec, long mtimeNsec) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ts = a.allocate(32, 8);
            ts.set(JAVA_LONG, 0, atimeSec);
            ts.set(JAVA_LONG, 8, atimeNsec);
            ts.set(JAVA_LONG, 16, mtimeSec);
            ts.set(JAVA_LONG, 24, mtimeNsec);
            if ((int) UTIMENSAT.invokeExact(c, AT_FDCWD, cstring(a, procPath(fd)), ts, 0) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void ftruncate(int fd, long size) {
        MemorySegment c = capture();
        try {
            if ((int) FTRUNCATE.invokeExact(c, fd, size) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void truncate(int pathFd, long size) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) TRUNCATE.invokeExact(c, cstring(a, procPath(pathFd)), size) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pread into {@code buf}; returns bytes read (0 at end of file). */
    static long pread(int fd, MemorySegment buf, long offset) {
        MemorySegment c = capture();
        try {
            long r;
            do {
                r = (long) PREAD.invokeExact(c, fd, buf, buf.byteSize(), offset);
            } while (r < 0 && (int) ERRNO.get(c, 0L) == 4 /* EINTR */);
            if (r < 0) {
                throw fail(c);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long pwrite(int fd, MemorySegment buf, long offset) {
        MemorySegment c = capture();
        try {
            long r;
            do {
                r = (long) PWRITE.invokeExact(c, fd, buf, buf.byteSize(), offset);
            } while (r < 0 && (int) ERRNO.get(c, 0L) == 4 /* EINTR */);
            if (r < 0) {
                throw fail(c);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void fsync(int fd, boolean dataOnly) {
        MemorySegment c = capture();
        try {
            int r = dataOnly ? (int) FDATASYNC.invokeExact(c, fd) : (int) FSYNC.invokeExact(c, fd);
            if (r < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void syncfs(int fd) {
        MemorySegment c = capture();
        try {
            if ((int) SYNCFS.invokeExact(c, fd) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void fallocate(int fd, int mode, long offset, long length) {
        MemorySegment c = capture();
        try {
            if ((int) FALLOCATE.invokeExact(c, fd, mode, offset, length) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long lseek(int fd, long offset, int whence) {
        MemorySegment c = capture();
        try {
            long r = (long) LSEEK.invokeExact(c, fd, offset, whence);
            if (r < 0) {
                throw fail(c);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static long copyFileRange(int fdIn, long offIn, int fdOut, long offOut, long len) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment in = a.allocateFrom(JAVA_LONG, offIn);
            MemorySegment out = a.allocateFrom(JAVA_LONG, offOut);
            long r = (long) COPY_FILE_RANGE.invokeExact(c, fdIn, in, fdOut, out, len, 0);
            if (r < 0) {
                throw fail(c);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** getdents64 into {@code buf}; returns bytes filled (0 at the end). */
    static long getdents(int fd, MemorySegment buf) {
        MemorySegment c = capture();
        try {
            long r = (long) GETDENTS64.invokeExact(c, fd, buf, buf.byteSize());
            if (r < 0) {
                throw fail(c);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** struct statfs (x86_64) into a 120-byte buffer. */
    static MemorySegment fstatfs(Arena a, int fd) {
        MemorySegment c = capture();
        try {
            MemorySegment buf = a.allocate(120, 8);
            if ((int) FSTATFS.invokeExact(c, fd, buf) < 0) {
                throw fail(c);
            }
            return buf;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** getxattr on the inode behind an O_PATH fd; {@code size} 0 asks for the value's size only. */
    static byte[] getxattr(int fd, byte[] name, int size) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = size == 0 ? MemorySegment.NULL : a.allocate(size);
            long r = (long) GETXATTR.invokeExact(c, cstring(a, procPath(fd)), cstring(a, name), buf, (long) size);
            if (r < 0) {
                throw fail(c);
            }
            return size == 0 ? new byte[(int) r] : buf.asSlice(0, r).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void setxattr(int fd, byte[] name, byte[] value, int flags) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(Math.max(1, value.length));
            MemorySegment.copy(value, 0, v, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, value.length);
            int r = (int) SETXATTR.invokeExact(c, cstring(a, procPath(fd)), cstring(a, name), v, (long) value.length, flags);
            if (r < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The NUL-separated names list; {@code size} 0 asks for its size only. */
    static byte[] listxattr(int fd, int size) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = size == 0 ? MemorySegment.NULL : a.allocate(size);
            long r = (long) LISTXATTR.invokeExact(c, cstring(a, procPath(fd)), buf, (long) size);
            if (r < 0) {
                throw fail(c);
            }
            return size == 0 ? new byte[(int) r] : buf.asSlice(0, r).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void removexattr(int fd, byte[] name) {
        MemorySegment c = capture();
        try (Arena a = Arena.ofConfined()) {
            if ((int) REMOVEXATTR.invokeExact(c, cstring(a, procPath(fd)), cstring(a, name)) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** fcntl with a struct flock (the OFD lock commands). */
    static void fcntlLock(int fd, int cmd, MemorySegment flock) {
        MemorySegment c = capture();
        try {
            int r;
            do {
                r = (int) FCNTL_PTR.invokeExact(c, fd, cmd, flock);
            } while (r < 0 && cmd == F_OFD_SETLKW && (int) ERRNO.get(c, 0L) == 4 /* EINTR */ && !Thread.interrupted());
            if (r < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void flock(int fd, int op) {
        MemorySegment c = capture();
        try {
            if ((int) FLOCK_CALL.invokeExact(c, fd, op) < 0) {
                throw fail(c);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int geteuid() {
        try {
            return (int) GETEUID.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static void close(int fd) {
        MemorySegment c = capture();
        try {
            // On Linux the fd is gone even when close reports an error (EINTR, EIO): nothing to retry.
            int r = (int) CLOSE.invokeExact(c, fd);
            assert r == 0 || r == -1;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
