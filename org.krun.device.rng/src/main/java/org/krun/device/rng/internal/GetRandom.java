package org.krun.device.rng.internal;

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

import org.krun.spi.posix.Errno;
import org.krun.spi.posix.PosixException;

/**
 * The host's {@code getrandom(2)} through FFM: the same source as {@code /dev/urandom}, without a file
 * descriptor to own. Flags 0: it blocks only until the host kernel's random pool is first initialized,
 * which happens once, early in the host's boot; after that it never blocks. Bytes go straight into the
 * destination (guest RAM), so nothing of the guest's choosing is allocated on the host.
 */
final class GetRandom implements EntropySource {

    private static final Linker LINKER = Linker.nativeLinker();
    private static final StructLayout CAPTURE_LAYOUT = Linker.Option.captureStateLayout();
    private static final VarHandle ERRNO = CAPTURE_LAYOUT.varHandle(MemoryLayout.PathElement.groupElement("errno"));
    /** ssize_t getrandom(void *buf, size_t buflen, unsigned int flags) (sys/random.h). */
    private static final MethodHandle GETRANDOM = LINKER.downcallHandle(
            LINKER.defaultLookup().findOrThrow("getrandom"),
            FunctionDescriptor.of(JAVA_LONG, ADDRESS, JAVA_LONG, JAVA_INT),
            Linker.Option.captureCallState("errno"));
    /** Per-thread errno capture: the event loops of several VMs call this concurrently. */
    private static final ThreadLocal<MemorySegment> ERRNO_SEGMENT =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(CAPTURE_LAYOUT));

    static final GetRandom INSTANCE = new GetRandom();

    private GetRandom() {
    }

    @Override
    public void fill(MemorySegment destination) {
        MemorySegment capture = ERRNO_SEGMENT.get();
        fillFully(destination, (buffer, length) -> {
            long n = getrandom(capture, buffer, length);
            return n < 0 ? -(int) ERRNO.get(capture, 0L) : n;
        });
    }

    /** One getrandom(2) call: the number of bytes written, or -errno. */
    interface Call {
        long invoke(MemorySegment buffer, long length);
    }

    /**
     * Fills {@code destination} completely through {@code call}. getrandom(2) may return fewer bytes than
     * asked for (requests over 256 bytes, when a signal arrives) or fail with EINTR: both mean "call again
     * for the rest". Any other error is the host's failure.
     */
    static void fillFully(MemorySegment destination, Call call) {
        long size = destination.byteSize();
        long done = 0;
        while (done < size) {
            long n = call.invoke(destination.asSlice(done), size - done);
            if (n == -Errno.EINTR) {
                continue;
            }
            if (n < 0) {
                throw new PosixException("getrandom", (int) -n);
            }
            if (n == 0 || n > size - done) {
                // Neither can happen; a wrong count must not loop forever or run past the buffer.
                throw new PosixException("getrandom returned " + n + " for " + (size - done) + " bytes", Errno.EIO);
            }
            done += n;
        }
    }

    private static long getrandom(MemorySegment capture, MemorySegment buffer, long length) {
        try {
            return (long) GETRANDOM.invokeExact(capture, buffer, length, 0);
        } catch (RuntimeException | Error e) {
            throw e;
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
