package org.krun.posix;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.invoke.VarHandle;

/**
 * The one place krun links C library functions: every bundle that needs a call this package does not
 * offer links it here, so errno handling is written once.
 *
 * <p>{@link #downcall} links a function whose failure sets errno, and returns a handle that already
 * captured it: the handle takes the C arguments and returns the C result, or {@code -errno} when the
 * result was negative (the kernel's convention). errno is captured into memory of the calling thread
 * (vCPU threads, event loops and I/O workers call concurrently), never into a shared segment. Call the
 * handle with {@code invokeExact} inside {@link #call(IntCall)} or {@link #call(LongCall)}, which turn the
 * {@code Throwable} that {@code invokeExact} declares into unchecked exceptions:
 *
 * <pre>{@code
 * private static final MethodHandle FSYNC = Libc.downcall("fsync", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
 * static int fsync(int fd) { return Libc.call(() -> (int) FSYNC.invokeExact(fd)); }   // 0 or -errno
 * }</pre>
 */
public final class Libc {

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    private static final Linker.Option CAPTURE_ERRNO = Linker.Option.captureCallState("errno");

    /** Per-thread errno capture memory; freed with its thread. */
    private static final ThreadLocal<MemorySegment> CAPTURE =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    private static final MethodHandle CAPTURE_SEGMENT;
    private static final MethodHandle INT_RESULT;
    private static final MethodHandle LONG_RESULT;

    static {
        try {
            MethodHandles.Lookup l = MethodHandles.lookup();
            CAPTURE_SEGMENT = l.findStatic(Libc.class, "captureSegment", MethodType.methodType(MemorySegment.class));
            INT_RESULT = l.findStatic(Libc.class, "intResult", MethodType.methodType(int.class, int.class));
            LONG_RESULT = l.findStatic(Libc.class, "longResult", MethodType.methodType(long.class, long.class));
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private Libc() {
    }

    /** A native call made through {@code invokeExact} that returns an int. */
    @FunctionalInterface
    public interface IntCall {
        int invoke() throws Throwable;
    }

    /** A native call made through {@code invokeExact} that returns a long. */
    @FunctionalInterface
    public interface LongCall {
        long invoke() throws Throwable;
    }

    /**
     * Links {@code name}, a function that sets errno when it fails. The handle has the function's own
     * parameters; an int or long result comes back as is when it is not negative and as {@code -errno}
     * when it is. Other result types come back as the function returned them (read {@link #errno()} on
     * the same thread right after the call). {@code options} are further linker options
     * ({@link Linker.Option#firstVariadicArg(int)} for variadic functions such as ioctl).
     */
    public static MethodHandle downcall(String name, FunctionDescriptor function, Linker.Option... options) {
        Linker.Option[] all = new Linker.Option[options.length + 1];
        all[0] = CAPTURE_ERRNO;
        System.arraycopy(options, 0, all, 1, options.length);
        MethodHandle raw = LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow(name), function, all);
        MethodHandle h = MethodHandles.foldArguments(raw, CAPTURE_SEGMENT);
        Class<?> result = h.type().returnType();
        if (result == int.class) {
            h = MethodHandles.filterReturnValue(h, INT_RESULT);
        } else if (result == long.class) {
            h = MethodHandles.filterReturnValue(h, LONG_RESULT);
        }
        return h;
    }

    /** Links {@code name}, a function that never fails (getpid) or reports errors in its result (pthread_*). */
    public static MethodHandle downcallWithoutErrno(String name, FunctionDescriptor function) {
        return LINKER.downcallHandle(LINKER.defaultLookup().findOrThrow(name), function);
    }

    /** The errno of the calling thread's last call through a {@link #downcall} handle. */
    public static int errno() {
        return (int) ERRNO.get(CAPTURE.get(), 0L);
    }

    /** Runs one native call; what the handle threw, unchecked. */
    public static int call(IntCall call) {
        try {
            return call.invoke();
        } catch (Throwable t) {
            throw unchecked(t);
        }
    }

    /** Runs one native call; what the handle threw, unchecked. */
    public static long call(LongCall call) {
        try {
            return call.invoke();
        } catch (Throwable t) {
            throw unchecked(t);
        }
    }

    /** {@code t} as an unchecked exception (errors are rethrown as they are). */
    public static RuntimeException unchecked(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }

    private static MemorySegment captureSegment() {
        return CAPTURE.get();
    }

    private static int intResult(int r) {
        return r < 0 ? -errno() : r;
    }

    private static long longResult(long r) {
        return r < 0 ? -errno() : r;
    }
}
