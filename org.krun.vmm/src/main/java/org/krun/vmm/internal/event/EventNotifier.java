package org.krun.vmm.internal.event;

import org.krun.posix.EventFd;
import org.krun.spi.hypervisor.Notifier;

/** A {@link Notifier} on a Linux eventfd: what the core hands the hypervisor and waits on in its loop. */
public final class EventNotifier implements Notifier, AutoCloseable {
    private final EventFd eventFd;
    private final Handle handle;

    public EventNotifier() {
        this.eventFd = EventFd.create();
        this.handle = new Handle(Handle.EVENTFD, eventFd.fd());
    }

    @Override
    public void signal() {
        eventFd.signal();
    }

    /** Reads and resets the counter; 0 when it was not signalled. */
    public long drain() {
        return eventFd.drain();
    }

    public int fd() {
        return eventFd.fd();
    }

    @Override
    public Handle handle() {
        return handle;
    }

    @Override
    public void close() {
        eventFd.close();
    }
}
