package org.krun.spi.virtio;

import java.util.function.IntConsumer;

import org.osgi.annotation.versioning.ProviderType;

/**
 * The VM's device thread. Queue notifications, host file-descriptor readiness and submitted tasks all
 * run on it, one at a time, so device code needs no locking against itself.
 */
@ProviderType
public interface EventLoop {

    /** Runs {@code task} on the loop thread soon. Safe from any thread. */
    void execute(Runnable task);

    /** Whether the caller is the loop thread. */
    boolean inEventLoop();

    /**
     * Calls {@code handler} with the ready epoll events whenever {@code fd} is ready for {@code events}
     * ({@code EPOLLIN}, {@code EPOLLOUT}). The registration ends with the returned handle or the VM.
     */
    AutoCloseable register(int fd, int events, IntConsumer handler);

    /**
     * As {@link #register}, with the events watched changeable while it lasts: a device that relays a host
     * socket watches for input only while it has room for it, so a full guest never makes the loop spin.
     */
    Watch watch(int fd, int events, IntConsumer handler);

    /** A descriptor the loop watches. Use it on the loop thread; close ends the watch (idempotent). */
    @ProviderType
    interface Watch extends AutoCloseable {

        /** Watches for {@code events} from now on (0: none, but the registration stays). */
        void events(int events);

        /** The events watched now. */
        int events();

        @Override
        void close();
    }
}
