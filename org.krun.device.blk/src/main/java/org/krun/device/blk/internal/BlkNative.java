package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;
import java.util.List;

/**
 * The C library calls the block device needs beyond {@link org.krun.spi.posix.Posix}: vectored positional
 * I/O straight into guest memory, {@code fdatasync}, {@code fallocate}, {@code ftruncate}, {@code flock} and {@code lseek}.
 * Like {@code Posix}, each call returns its result or {@code -errno}, with errno captured per call into
 * memory of the calling thread (the device's I/O threads run concurrently).
 */
final class BlkNative {

    static final int O_DSYNC = 0x1000;
    static final int O_DIRECT = 0x4000;

    static final int FALLOC_FL_KEEP_SIZE = 0x01;
    static final int FALLOC_FL_PUNCH_HOLE = 0x02;
    static final int FALLOC_FL_ZERO_RANGE = 0x10;

    static final int LOCK_SH = 1;
    static final int LOCK_EX = 2;
    static final int LOCK_NB = 4;

    static final int SEEK_END = 2;

    /** IOV_MAX on Linux: the most buffers one preadv/pwritev takes. */
    static final int IOV_MAX = 1024;

    /** struct iovec (sys/uio.h): void *iov_base; size_t iov_len. */
    static final StructLayout IOVEC = MemoryLayout.structLayout(ADDRESS.withName("iov_base"),
            JAVA_LONG.withName("iov_len"));

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE = Linker.Option.captureCallState("errno");

    /** Per-thread scratch: errno capture and an iovec array of {@link #IOV_MAX} entries. */
    private static final ThreadLocal<Scratch> SCRATCH = ThreadLocal.withInitial(Scratch::new);

    private static final MethodHandle PREADV = link("preadv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle PWRITEV = link("pwritev",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT, JAVA_LONG));
    private static final MethodHandle FDATASYNC = link("fdatasync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle FALLOCATE = link("fallocate",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG));
    private static final MethodHandle FLOCK = link("flock", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle FTRUNCATE = link("ftruncate", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle LSEEK = link("lseek", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, JAVA_LONG, JAVA_INT));

    private BlkNative() {
    }

    private static final class Scratch {
        final MemorySegment errno;
        final MemorySegment iov;

        Scratch() {
            Arena arena = Arena.ofAuto();
            errno = arena.allocate(CAPTURE_LAYOUT);
            iov = arena.allocate(IOVEC.byteSize() * IOV_MAX, 8);
        }
    }

    private static MethodHandle link(String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow(name), fd, CAPTURE);
    }

    private static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
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

    /**
     * Fills the calling thread's iovec array from {@code buffers[from, from + count)} (count at most
     * {@link #IOV_MAX}) and returns it.
     */
    private static MemorySegment iovecs(Scratch s, List<MemorySegment> buffers, int from, int count) {
        long size = IOVEC.byteSize();
        for (int i = 0; i < count; i++) {
            MemorySegment b = buffers.get(from + i);
            s.iov.set(ADDRESS, i * size, b);
            s.iov.set(JAVA_LONG, i * size + 8, b.byteSize());
        }
        return s.iov;
    }

    /** preadv(2) of {@code buffers[from, from + count)} at {@code offset}; bytes read or -errno. */
    static long preadv(int fd, List<MemorySegment> buffers, int from, int count, long offset) {
        Scratch s = SCRATCH.get();
        try {
            long r = (long) PREADV.invokeExact(s.errno, fd, iovecs(s, buffers, from, count), count, offset);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** pwritev(2) of {@code buffers[from, from + count)} at {@code offset}; bytes written or -errno. */
    static long pwritev(int fd, List<MemorySegment> buffers, int from, int count, long offset) {
        Scratch s = SCRATCH.get();
        try {
            long r = (long) PWRITEV.invokeExact(s.errno, fd, iovecs(s, buffers, from, count), count, offset);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int fdatasync(int fd) {
        Scratch s = SCRATCH.get();
        try {
            int r = (int) FDATASYNC.invokeExact(s.errno, fd);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int fallocate(int fd, int mode, long offset, long length) {
        Scratch s = SCRATCH.get();
        try {
            int r = (int) FALLOCATE.invokeExact(s.errno, fd, mode, offset, length);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int flock(int fd, int operation) {
        Scratch s = SCRATCH.get();
        try {
            int r = (int) FLOCK.invokeExact(s.errno, fd, operation);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static int ftruncate(int fd, long length) {
        Scratch s = SCRATCH.get();
        try {
            int r = (int) FTRUNCATE.invokeExact(s.errno, fd, length);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** lseek(2); the new offset or -errno. */
    static long lseek(int fd, long offset, int whence) {
        Scratch s = SCRATCH.get();
        try {
            long r = (long) LSEEK.invokeExact(s.errno, fd, offset, whence);
            return r < 0 ? -errno(s.errno) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
