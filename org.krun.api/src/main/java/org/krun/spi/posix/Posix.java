package org.krun.spi.posix;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.VarHandle;

/**
 * The C library calls krun needs, linked once. Each call that can fail returns its result, or
 * {@code -errno} on failure (the kernel's convention); {@link #check(String, long)} turns a negative
 * result into a {@link PosixException}. errno is captured into per-thread memory, so concurrent
 * callers (vCPU threads) never share it.
 */
public final class Posix {

    public static final int O_RDONLY = 0;
    public static final int O_WRONLY = 1;
    public static final int O_RDWR = 2;
    public static final int O_NONBLOCK = 0x800;
    public static final int O_CLOEXEC = 0x80000;

    public static final int PROT_NONE = 0;
    public static final int PROT_READ = 1;
    public static final int PROT_WRITE = 2;
    public static final int MAP_SHARED = 0x01;
    public static final int MAP_PRIVATE = 0x02;
    public static final int MAP_ANONYMOUS = 0x20;
    public static final int MAP_NORESERVE = 0x4000;
    public static final int MADV_DONTNEED = 4;
    public static final int MADV_DONTFORK = 10;

    public static final int EFD_CLOEXEC = 0x80000;
    public static final int EFD_NONBLOCK = 0x800;

    public static final int EPOLL_CLOEXEC = 0x80000;
    public static final int EPOLL_CTL_ADD = 1;
    public static final int EPOLL_CTL_DEL = 2;
    public static final int EPOLL_CTL_MOD = 3;
    public static final int EPOLLIN = 0x001;
    public static final int EPOLLOUT = 0x004;
    public static final int EPOLLERR = 0x008;
    public static final int EPOLLHUP = 0x010;

    public static final int SIG_BLOCK = 0;
    public static final int SIG_UNBLOCK = 1;

    /** struct epoll_event (packed on x86_64): u32 events, u64 data. */
    public static final StructLayout EPOLL_EVENT = MemoryLayout.structLayout(
            JAVA_INT.withName("events"), JAVA_LONG.withByteAlignment(4).withName("data"));

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE = Linker.Option.captureCallState("errno");

    /** Per-thread errno capture memory; freed with its thread. */
    private static final ThreadLocal<MemorySegment> ERRNO_SEGMENT =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    private static final MethodHandle CLOSE = link("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = link("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = link("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle OPEN = link("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_LONG = link("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_PTR = link("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle EVENTFD = link("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle MMAP = link("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = link("munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle MADVISE = link("madvise", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle EPOLL_CREATE1 = link("epoll_create1", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle EPOLL_CTL = link("epoll_ctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle EPOLL_WAIT = link("epoll_wait",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle GETTID = linkPlain("gettid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETPID = linkPlain("getpid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle TGKILL = link("tgkill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle SIGNAL = link("signal", FunctionDescriptor.of(ADDRESS, JAVA_INT, ADDRESS));
    private static final MethodHandle PTHREAD_SIGMASK = linkPlain("pthread_sigmask",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SIGTIMEDWAIT = link("sigtimedwait",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    private static final MethodHandle ISATTY = linkPlain("isatty", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle STRERROR = linkPlain("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private Posix() {
    }

    private static MethodHandle link(String name, FunctionDescriptor fd, Linker.Option... extra) {
        Linker.Option[] options = new Linker.Option[extra.length + 1];
        options[0] = CAPTURE;
        System.arraycopy(extra, 0, options, 1, extra.length);
        return LINKER.downcallHandle(LIBC.findOrThrow(name), fd, options);
    }

    private static MethodHandle linkPlain(String name, FunctionDescriptor fd) {
        return LINKER.downcallHandle(LIBC.findOrThrow(name), fd);
    }

    private static MemorySegment errnoSegment() {
        return ERRNO_SEGMENT.get();
    }

    private static int errno(MemorySegment capture) {
        return (int) ERRNO.get(capture, 0L);
    }

    /** Returns {@code result}, or throws a {@link PosixException} naming {@code operation} when it is negative. */
    public static long check(String operation, long result) {
        if (result < 0) {
            throw new PosixException(operation, (int) -result);
        }
        return result;
    }

    /** Same as {@link #check(String, long)} for int results. */
    public static int check(String operation, int result) {
        if (result < 0) {
            throw new PosixException(operation, -result);
        }
        return result;
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

    public static int close(int fd) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) CLOSE.invokeExact(c, fd);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long read(int fd, MemorySegment buf, long len) {
        MemorySegment c = errnoSegment();
        try {
            long r = (long) READ.invokeExact(c, fd, buf, len);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static long write(int fd, MemorySegment buf, long len) {
        MemorySegment c = errnoSegment();
        try {
            long r = (long) WRITE.invokeExact(c, fd, buf, len);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int open(String path, int flags) {
        MemorySegment c = errnoSegment();
        try (Arena a = Arena.ofConfined()) {
            int r = (int) OPEN.invokeExact(c, a.allocateFrom(path), flags, 0);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int ioctl(int fd, long request, long arg) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) IOCTL_LONG.invokeExact(c, fd, request, arg);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int ioctl(int fd, long request, MemorySegment arg) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) IOCTL_PTR.invokeExact(c, fd, request, arg);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int eventfd(int initval, int flags) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) EVENTFD.invokeExact(c, initval, flags);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Maps memory and returns it as a segment of {@code length} bytes, or throws. The caller owns the
     * mapping and must {@link #munmap(MemorySegment) unmap} it.
     */
    public static MemorySegment mmap(String operation, long length, int prot, int flags, int fd, long offset) {
        MemorySegment c = errnoSegment();
        try {
            MemorySegment r = (MemorySegment) MMAP.invokeExact(c, MemorySegment.NULL, length, prot, flags, fd, offset);
            if (r.address() == -1L) {
                throw new PosixException(operation, errno(c));
            }
            return r.reinterpret(length);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int munmap(MemorySegment mapping) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) MUNMAP.invokeExact(c, mapping, mapping.byteSize());
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int madvise(MemorySegment range, int advice) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) MADVISE.invokeExact(c, range, range.byteSize(), advice);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int epollCreate() {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) EPOLL_CREATE1.invokeExact(c, EPOLL_CLOEXEC);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int epollCtl(int epfd, int op, int fd, int events, long data) {
        MemorySegment c = errnoSegment();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ev = a.allocate(EPOLL_EVENT);
            ev.set(JAVA_INT, 0, events);
            ev.set(JAVA_LONG.withByteAlignment(4), 4, data);
            int r = (int) EPOLL_CTL.invokeExact(c, epfd, op, fd, ev);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Waits for events into {@code events} (an array of {@link #EPOLL_EVENT}). */
    public static int epollWait(int epfd, MemorySegment events, int maxEvents, int timeoutMillis) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) EPOLL_WAIT.invokeExact(c, epfd, events, maxEvents, timeoutMillis);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int gettid() {
        try {
            return (int) GETTID.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static int getpid() {
        try {
            return (int) GETPID.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Sends {@code signal} to one thread of this process. */
    public static int tgkill(int tid, int signal) {
        MemorySegment c = errnoSegment();
        try {
            int r = (int) TGKILL.invokeExact(c, getpid(), tid, signal);
            return r < 0 ? -errno(c) : r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** Sets the process-wide disposition of {@code signal} to ignore. */
    public static void ignoreSignal(int signal) {
        MemorySegment c = errnoSegment();
        try {
            MemorySegment r = (MemorySegment) SIGNAL.invokeExact(c, signal, MemorySegment.ofAddress(1L) /* SIG_IGN */);
            if (r.address() == -1L) {
                throw new PosixException("signal(" + signal + ", SIG_IGN)", errno(c));
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** A kernel sigset (64 bits) holding {@code signals}. */
    public static long sigset(int... signals) {
        long set = 0;
        for (int s : signals) {
            set |= 1L << (s - 1);
        }
        return set;
    }

    /** Blocks or unblocks signals for the calling thread ({@code how} = {@link #SIG_BLOCK} or {@link #SIG_UNBLOCK}). */
    public static void threadSignalMask(int how, long sigset) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment set = a.allocate(128); // glibc sigset_t is 128 bytes
            set.set(JAVA_LONG, 0, sigset);
            int r = (int) PTHREAD_SIGMASK.invokeExact(how, set, MemorySegment.NULL);
            if (r != 0) {
                throw new PosixException("pthread_sigmask", r);
            }
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /**
     * Takes one pending signal out of {@code sigset} for the calling thread without waiting; returns the
     * signal number, or 0 when none was pending.
     */
    public static int takePendingSignal(long sigset) {
        MemorySegment c = errnoSegment();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment set = a.allocate(128);
            set.set(JAVA_LONG, 0, sigset);
            MemorySegment timeout = a.allocate(16); // struct timespec {0, 0}
            int r = (int) SIGTIMEDWAIT.invokeExact(c, set, MemorySegment.NULL, timeout);
            if (r < 0) {
                int e = errno(c);
                if (e == Errno.EAGAIN || e == Errno.EINTR) {
                    return 0;
                }
                throw new PosixException("sigtimedwait", e);
            }
            return r;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    public static boolean isatty(int fd) {
        try {
            return (int) ISATTY.invokeExact(fd) == 1;
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) STRERROR.invokeExact(errno);
            return s.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }
}
