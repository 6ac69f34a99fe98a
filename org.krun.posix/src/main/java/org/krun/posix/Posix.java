package org.krun.posix;

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

/**
 * The C library calls the core, hypervisor backends and devices share (descriptors, memory mappings,
 * eventfd, epoll, ioctl, signals), linked once through {@link Libc}. Each call that can fail returns its
 * result, or {@code -errno} on failure (the kernel's convention); {@link #check(String, long)} turns a
 * negative result into a {@link PosixException}.
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

    private static final MethodHandle CLOSE = Libc.downcall("close", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle READ = Libc.downcall("read", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle WRITE = Libc.downcall("write", FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle OPEN = Libc.downcall("open", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT),
            Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_LONG = Libc.downcall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, JAVA_LONG), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle IOCTL_PTR = Libc.downcall("ioctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_LONG, ADDRESS), Linker.Option.firstVariadicArg(2));
    private static final MethodHandle EVENTFD = Libc.downcall("eventfd", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle MMAP = Libc.downcall("mmap",
            FunctionDescriptor.of(ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    private static final MethodHandle MUNMAP = Libc.downcall("munmap", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG));
    private static final MethodHandle MADVISE = Libc.downcall("madvise", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle EPOLL_CREATE1 = Libc.downcall("epoll_create1", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle EPOLL_CTL = Libc.downcall("epoll_ctl",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle EPOLL_WAIT = Libc.downcall("epoll_wait",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle GETTID = Libc.downcallWithoutErrno("gettid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle GETPID = Libc.downcallWithoutErrno("getpid", FunctionDescriptor.of(JAVA_INT));
    private static final MethodHandle TGKILL = Libc.downcall("tgkill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle SIGNAL = Libc.downcall("signal", FunctionDescriptor.of(ADDRESS, JAVA_INT, ADDRESS));
    private static final MethodHandle PTHREAD_SIGMASK = Libc.downcallWithoutErrno("pthread_sigmask",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SIGTIMEDWAIT = Libc.downcall("sigtimedwait",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
    private static final MethodHandle ISATTY = Libc.downcallWithoutErrno("isatty", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    private static final MethodHandle STRERROR = Libc.downcallWithoutErrno("strerror", FunctionDescriptor.of(ADDRESS, JAVA_INT));

    private Posix() {
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

    public static int close(int fd) {
        return Libc.call(() -> (int) CLOSE.invokeExact(fd));
    }

    public static long read(int fd, MemorySegment buf, long len) {
        return Libc.call(() -> (long) READ.invokeExact(fd, buf, len));
    }

    public static long write(int fd, MemorySegment buf, long len) {
        return Libc.call(() -> (long) WRITE.invokeExact(fd, buf, len));
    }

    public static int open(String path, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment p = a.allocateFrom(path);
            return Libc.call(() -> (int) OPEN.invokeExact(p, flags, 0));
        }
    }

    public static int ioctl(int fd, long request, long arg) {
        return Libc.call(() -> (int) IOCTL_LONG.invokeExact(fd, request, arg));
    }

    public static int ioctl(int fd, long request, MemorySegment arg) {
        return Libc.call(() -> (int) IOCTL_PTR.invokeExact(fd, request, arg));
    }

    public static int eventfd(int initval, int flags) {
        return Libc.call(() -> (int) EVENTFD.invokeExact(initval, flags));
    }

    /**
     * Maps memory and returns it as a segment of {@code length} bytes, or throws. The caller owns the
     * mapping and must {@link #munmap(MemorySegment) unmap} it.
     */
    public static MemorySegment mmap(String operation, long length, int prot, int flags, int fd, long offset) {
        try {
            MemorySegment r = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, length, prot, flags, fd, offset);
            if (r.address() == -1L) {
                throw new PosixException(operation, Libc.errno());
            }
            return r.reinterpret(length);
        } catch (Throwable t) {
            throw Libc.unchecked(t);
        }
    }

    public static int munmap(MemorySegment mapping) {
        return Libc.call(() -> (int) MUNMAP.invokeExact(mapping, mapping.byteSize()));
    }

    public static int madvise(MemorySegment range, int advice) {
        return Libc.call(() -> (int) MADVISE.invokeExact(range, range.byteSize(), advice));
    }

    public static int epollCreate() {
        return Libc.call(() -> (int) EPOLL_CREATE1.invokeExact(EPOLL_CLOEXEC));
    }

    public static int epollCtl(int epfd, int op, int fd, int events, long data) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ev = a.allocate(EPOLL_EVENT);
            ev.set(JAVA_INT, 0, events);
            ev.set(JAVA_LONG.withByteAlignment(4), 4, data);
            return Libc.call(() -> (int) EPOLL_CTL.invokeExact(epfd, op, fd, ev));
        }
    }

    /** Waits for events into {@code events} (an array of {@link #EPOLL_EVENT}). */
    public static int epollWait(int epfd, MemorySegment events, int maxEvents, int timeoutMillis) {
        return Libc.call(() -> (int) EPOLL_WAIT.invokeExact(epfd, events, maxEvents, timeoutMillis));
    }

    public static int gettid() {
        return Libc.call(() -> (int) GETTID.invokeExact());
    }

    public static int getpid() {
        return Libc.call(() -> (int) GETPID.invokeExact());
    }

    /** Sends {@code signal} to one thread of this process. */
    public static int tgkill(int tid, int signal) {
        int pid = getpid();
        return Libc.call(() -> (int) TGKILL.invokeExact(pid, tid, signal));
    }

    /** Sets the process-wide disposition of {@code signal} to ignore. */
    public static void ignoreSignal(int signal) {
        try {
            MemorySegment r = (MemorySegment) SIGNAL.invokeExact(signal, MemorySegment.ofAddress(1L) /* SIG_IGN */);
            if (r.address() == -1L) {
                throw new PosixException("signal(" + signal + ", SIG_IGN)", Libc.errno());
            }
        } catch (Throwable t) {
            throw Libc.unchecked(t);
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
            int r = Libc.call(() -> (int) PTHREAD_SIGMASK.invokeExact(how, set, MemorySegment.NULL));
            if (r != 0) {
                throw new PosixException("pthread_sigmask", r);
            }
        }
    }

    /**
     * Takes one pending signal out of {@code sigset} for the calling thread without waiting; returns the
     * signal number, or 0 when none was pending.
     */
    public static int takePendingSignal(long sigset) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment set = a.allocate(128);
            set.set(JAVA_LONG, 0, sigset);
            MemorySegment timeout = a.allocate(16); // struct timespec {0, 0}
            int r = Libc.call(() -> (int) SIGTIMEDWAIT.invokeExact(set, MemorySegment.NULL, timeout));
            if (r == -Errno.EAGAIN || r == -Errno.EINTR) {
                return 0;
            }
            return check("sigtimedwait", r);
        }
    }

    public static boolean isatty(int fd) {
        return Libc.call(() -> (int) ISATTY.invokeExact(fd)) == 1;
    }

    static String strerror(int errno) {
        try {
            MemorySegment s = (MemorySegment) STRERROR.invokeExact(errno);
            return s.reinterpret(256).getString(0);
        } catch (Throwable t) {
            throw Libc.unchecked(t);
        }
    }
}
