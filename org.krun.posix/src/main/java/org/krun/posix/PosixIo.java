package org.krun.posix;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.util.List;

/**
 * File I/O that devices do on the host: positional and vectored reads and writes straight between a
 * file and native memory (guest RAM), syncing, space management, advisory locks, {@code openat}, and
 * {@code getrandom}. Every call returns its result or {@code -errno}; none retries by itself except where
 * noted.
 */
public final class PosixIo {

    public static final int AT_FDCWD = -100;

    public static final int O_ACCMODE = 3;
    public static final int O_CREAT = 0100;
    public static final int O_EXCL = 0200;
    public static final int O_NOCTTY = 0400;
    public static final int O_TRUNC = 01000;
    public static final int O_APPEND = 02000;
    public static final int O_DSYNC = 010000;
    public static final int O_DIRECT = 040000;
    public static final int O_DIRECTORY = 0200000;
    public static final int O_NOFOLLOW = 0400000;
    public static final int O_PATH = 010000000;

    public static final int FALLOC_FL_KEEP_SIZE = 0x01;
    public static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    public static final int FALLOC_FL_ZERO_RANGE = 0x10;

    public static final int LOCK_SH = 1;
    public static final int LOCK_EX = 2;
    public static final int LOCK_NB = 4;
    public static final int LOCK_UN = 8;

    public static final int SEEK_SET = 0;
    public static final int SEEK_CUR = 1;
    public static final int SEEK_END = 2;

    /** IOV_MAX on Linux: the most buffers one preadv/pwritev takes. */
    public static final int IOV_MAX = 1024;

    /** struct iovec (sys/uio.h): void *iov_base; size_t iov_len. */
    public static final StructLayout IOVEC = MemoryLayout.structLayout(ADDRESS.withName("iov_base"),
            JAVA_LONG.withName("iov_len"));

    /** Per-thread iovec array of {@link #IOV_MAX} entries (I/O workers run concurrently). */
    private static final ThreadLocal<MemorySegment> IOVECS =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(IOVEC.byteSize() * IOV_MAX, 8));

    private static final MethodHandle OPENAT = Libc.downcall("openat",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT), Linker.Option.firstVariadicArg(3));
    private static final MethodHandle PREAD = Libc.downcall("pread",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PWRITE = Libc.downcall("pwrite",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle PREADV = Libc.downcall("preadv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle PWRITEV = Libc.downcall("pwritev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle FSYNC = Libc.downcall("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FDATASYNC = Libc.downcall("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FALLOCATE = Libc.downcall("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle FTRUNCATE = Libc.downcall("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle LSEEK = Libc.downcall("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));
    private static final MethodHandle FLOCK = Libc.downcall("flock", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    /** ssize_t getrandom(void *buf, size_t buflen, unsigned int flags) (sys/random.h). */
    private static final MethodHandle GETRANDOM = Libc.downcall("getrandom",
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT));

    private PosixIo() {
    }

    /** openat(2) of {@code name} (raw bytes, no NUL) under {@code dirfd}; a descriptor or -errno. */
    public static int openat(int dirfd, byte[] name, int flags, int mode) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment path = cstring(a, name);
            return Libc.call(() -> (int) OPENAT.invokeExact(dirfd, path, flags, mode));
        }
    }

    /** {@code bytes} followed by a NUL, in {@code arena}. */
    public static MemorySegment cstring(Arena arena, byte[] bytes) {
        MemorySegment m = arena.allocate(bytes.length + 1L);
        MemorySegment.copy(bytes, 0, m, JAVA_BYTE, 0, bytes.length);
        return m;
    }

    /** pread(2) into all of {@code buf}, retried on EINTR; bytes read (0 at end of file) or -errno. */
    public static long pread(int fd, MemorySegment buf, long offset) {
        long r;
        do {
            r = Libc.call(() -> (long) PREAD.invokeExact(fd, buf, buf.byteSize(), offset));
        } while (r == -Errno.EINTR);
        return r;
    }

    /** pwrite(2) of all of {@code buf}, retried on EINTR; bytes written or -errno. */
    public static long pwrite(int fd, MemorySegment buf, long offset) {
        long r;
        do {
            r = Libc.call(() -> (long) PWRITE.invokeExact(fd, buf, buf.byteSize(), offset));
        } while (r == -Errno.EINTR);
        return r;
    }

    /** preadv(2) of {@code buffers[from, from + count)} (count at most {@link #IOV_MAX}); bytes read or -errno. */
    public static long preadv(int fd, List<MemorySegment> buffers, int from, int count, long offset) {
        MemorySegment iov = iovecs(buffers, from, count);
        return Libc.call(() -> (long) PREADV.invokeExact(fd, iov, count, offset));
    }

    /** pwritev(2) of {@code buffers[from, from + count)} (count at most {@link #IOV_MAX}); bytes written or -errno. */
    public static long pwritev(int fd, List<MemorySegment> buffers, int from, int count, long offset) {
        MemorySegment iov = iovecs(buffers, from, count);
        return Libc.call(() -> (long) PWRITEV.invokeExact(fd, iov, count, offset));
    }

    /** Fills the calling thread's iovec array from {@code buffers[from, from + count)}. */
    private static MemorySegment iovecs(List<MemorySegment> buffers, int from, int count) {
        if (count < 0 || count > IOV_MAX) {
            throw new IllegalArgumentException("iovec count " + count + " out of range");
        }
        MemorySegment iov = IOVECS.get();
        long size = IOVEC.byteSize();
        for (int i = 0; i < count; i++) {
            MemorySegment b = buffers.get(from + i);
            iov.set(ADDRESS, i * size, b);
            iov.set(JAVA_LONG, i * size + 8, b.byteSize());
        }
        return iov;
    }

    public static int fsync(int fd) {
        return Libc.call(() -> (int) FSYNC.invokeExact(fd));
    }

    public static int fdatasync(int fd) {
        return Libc.call(() -> (int) FDATASYNC.invokeExact(fd));
    }

    public static int fallocate(int fd, int mode, long offset, long length) {
        return Libc.call(() -> (int) FALLOCATE.invokeExact(fd, mode, offset, length));
    }

    public static int ftruncate(int fd, long length) {
        return Libc.call(() -> (int) FTRUNCATE.invokeExact(fd, length));
    }

    /** lseek(2); the new offset or -errno. */
    public static long lseek(int fd, long offset, int whence) {
        return Libc.call(() -> (long) LSEEK.invokeExact(fd, offset, whence));
    }

    public static int flock(int fd, int operation) {
        return Libc.call(() -> (int) FLOCK.invokeExact(fd, operation));
    }

    /**
     * One getrandom(2) call (flags 0: the host's urandom pool, which blocks only before the host's pool
     * was first initialized, early in its boot) into {@code buffer}; bytes written (possibly fewer than
     * asked) or -errno.
     */
    public static long getrandom(MemorySegment buffer, long length) {
        return Libc.call(() -> (long) GETRANDOM.invokeExact(buffer, length, 0));
    }
}
