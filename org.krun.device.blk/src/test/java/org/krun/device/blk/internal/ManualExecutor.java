package org.krun.device.blk.internal;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.RejectedExecutionException;

/**
 * An {@link IoExecutor} for tests that holds each task until the test runs it, in whatever order the test
 * chooses, on the test's own thread; or runs every task at once when {@code direct}.
 */
final class ManualExecutor implements IoExecutor {
    private final List<Runnable> tasks = new ArrayList<>();
    private final boolean direct;
    private boolean shutdown;

    private ManualExecutor(boolean direct) {
        this.direct = direct;
    }

    /** Holds tasks until {@link #run(int)} or {@link #runAll()}. */
    static ManualExecutor held() {
        return new ManualExecutor(false);
    }

    /** Runs each task at once, inside {@code execute}. */
    static ManualExecutor direct() {
        return new ManualExecutor(true);
    }

    @Override
    public void execute(Runnable task) {
        if (shutdown) {
            throw new RejectedExecutionException("shut down");
        }
        if (direct) {
            task.run();
        } else {
            tasks.add(task);
        }
    }

    /** Tasks waiting. */
    int pending() {
        return tasks.size();
    }

    /** Runs the waiting task at {@code index} (in submission order among those still waiting). */
    void run(int index) {
        tasks.remove(index).run();
    }

    void runAll() {
        while (!tasks.isEmpty()) {
            run(0);
        }
    }

    boolean isShutdown() {
        return shutdown;
    }

    @Override
    public boolean shutdown(Duration timeout) {
        shutdown = true;
        runAll(); // as a real pool would: queued tasks still run (and find the device gone)
        return true;
    }
}
