package org.krun.spi.virtio;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.IntConsumer;

/**
 * An {@link EventLoop} for device tests that runs every task at once on the calling thread, one task at a
 * time (as the real loop's single thread does: completions of requests served off the loop arrive from
 * several worker threads at once, and the used ring they write is not meant for concurrent writers), and
 * lets the test fire file-descriptor readiness by hand with {@link #fire(int, int)}.
 */
public final class InlineEventLoop implements EventLoop {

    private final Map<Integer, IntConsumer> handlers = new LinkedHashMap<>();
    private final Map<Integer, Integer> watched = new LinkedHashMap<>();
    private int executed;

    @Override
    public synchronized void execute(Runnable task) {
        executed++;
        task.run();
    }

    @Override
    public boolean inEventLoop() {
        return true;
    }

    @Override
    public AutoCloseable register(int fd, int events, IntConsumer handler) {
        handlers.put(fd, handler);
        return () -> handlers.remove(fd, handler);
    }

    @Override
    public Watch watch(int fd, int events, IntConsumer handler) {
        handlers.put(fd, handler);
        watched.put(fd, events);
        return new Watch() {
            @Override
            public void events(int next) {
                watched.put(fd, next);
            }

            @Override
            public int events() {
                return watched.getOrDefault(fd, 0);
            }

            @Override
            public void close() {
                handlers.remove(fd, handler);
                watched.remove(fd);
            }
        };
    }

    /** The descriptors watched now, in the order their watches began. */
    public java.util.List<Integer> watchedFds() {
        return java.util.List.copyOf(watched.keySet());
    }

    /** The events {@code fd} is watched for now (0 when it is not). */
    public int watchedEvents(int fd) {
        return watched.getOrDefault(fd, 0);
    }

    /** Calls the handler registered for {@code fd}, as if it became ready for {@code events}. */
    public void fire(int fd, int events) {
        IntConsumer h = handlers.get(fd);
        if (h == null) {
            throw new IllegalStateException("nothing registered for fd " + fd);
        }
        h.accept(events);
    }

    /** Number of tasks run through {@link #execute}. */
    public synchronized int executedTasks() {
        return executed;
    }
}
