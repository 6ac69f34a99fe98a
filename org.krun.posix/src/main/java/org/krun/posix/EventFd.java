package org.krun.posix;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A non-blocking eventfd (a kernel counter that can be waited on): the doorbell between threads, and
 * between KVM and the VMM (ioeventfd, irqfd). Closing it releases the descriptor once.
 */
public final class EventFd implements AutoCloseable {

    private static final ThreadLocal<MemorySegment> SCRATCH =
            ThreadLocal.withInitial(() -> Arena.ofAuto().allocate(JAVA_LONG));

    private final int fd;
    private boolean closed;

    private EventFd(int fd) {
        this.fd = fd;
    }

    public static EventFd create() {
        return new EventFd(Posix.check("eventfd", Posix.eventfd(0, Posix.EFD_NONBLOCK | Posix.EFD_CLOEXEC)));
    }

    public int fd() {
        return fd;
    }

    /**
     * Adds one to the counter, waking whoever waits on it. After {@link #close()} this does nothing: the
     * descriptor number may already belong to someone else. (Synchronized against close for that reason;
     * uncontended, it costs next to nothing.)
     */
    public synchronized void signal() {
        if (closed) {
            return;
        }
        MemorySegment one = SCRATCH.get();
        one.set(JAVA_LONG, 0, 1L);
        long r = Posix.write(fd, one, 8);
        if (r < 0 && r != -Errno.EAGAIN) {
            throw new PosixException("eventfd write", (int) -r);
        }
    }

    /** Reads and resets the counter; 0 when it was not signalled (or after close). */
    public synchronized long drain() {
        if (closed) {
            return 0;
        }
        MemorySegment value = SCRATCH.get();
        long r = Posix.read(fd, value, 8);
        if (r == -Errno.EAGAIN) {
            return 0;
        }
        Posix.check("eventfd read", r);
        return value.get(JAVA_LONG, 0);
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Posix.close(fd);
        }
    }
}
