package org.krun.spi.virtio;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.IntConsumer;

/**
 * An {@link EventLoop} for device tests that runs every task at once on the calling thread, and lets the
 * test fire file-descriptor readiness by hand with {@link #fire(int, int)}.
 */
public final class InlineEventLoop implements EventLoop {

    private final Map<Integer, IntConsumer> handlers = new LinkedHashMap<>();
    private int executed;

    @Override
    public void execute(Runnable task) {
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

    /** Calls the handler registered for {@code fd}, as if it became ready for {@code events}. */
    public void fire(int fd, int events) {
        IntConsumer h = handlers.get(fd);
        if (h == null) {
            throw new IllegalStateException("nothing registered for fd " + fd);
        }
        h.accept(events);
    }

    /** Number of tasks run through {@link #execute}. */
    public int executedTasks() {
        return executed;
    }
}
