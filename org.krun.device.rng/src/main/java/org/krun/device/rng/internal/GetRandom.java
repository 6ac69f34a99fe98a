package org.krun.device.rng.internal;

import java.lang.foreign.MemorySegment;

import org.krun.posix.Errno;
import org.krun.posix.PosixException;
import org.krun.posix.PosixIo;

/**
 * The host's {@code getrandom(2)}: the same source as {@code /dev/urandom}, without a file descriptor to
 * own. It blocks only until the host kernel's random pool is first initialized, which happens once, early
 * in the host's boot. Bytes go straight into the destination (guest RAM), so nothing of the guest's
 * choosing is allocated on the host.
 */
final class GetRandom implements EntropySource {

    static final GetRandom INSTANCE = new GetRandom();

    private GetRandom() {
    }

    @Override
    public void fill(MemorySegment destination) {
        fillFully(destination, PosixIo::getrandom);
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
}
