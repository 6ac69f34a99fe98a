package org.krun.device.snd.internal;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/** A {@link PcmClock} for tests: time moves only by {@link #advance}, which runs the tasks that came due, in time order. */
final class ManualClock implements PcmClock {

    private record Task(long at, long seq, Runnable run, boolean[] cancelled) {
    }

    private final List<Task> tasks = new ArrayList<>();
    private long now = 1_000_000_000L;
    private long seq;
    boolean closed;

    @Override
    public long nanoTime() {
        return now;
    }

    @Override
    public Runnable schedule(long atNanos, Runnable task) {
        if (closed) {
            throw new java.util.concurrent.RejectedExecutionException("closed");
        }
        boolean[] cancelled = {false};
        tasks.add(new Task(atNanos, seq++, task, cancelled));
        return () -> cancelled[0] = true;
    }

    /** Moves time forward by {@code nanos}, running every task due by then at its own time. */
    void advance(long nanos) {
        long until = now + nanos;
        while (true) {
            Task next = tasks.stream().filter(t -> t.at() <= until)
                    .min(Comparator.comparingLong(Task::at).thenComparingLong(Task::seq)).orElse(null);
            if (next == null) {
                break;
            }
            tasks.remove(next);
            now = Math.max(now, next.at());
            if (!next.cancelled()[0]) {
                next.run().run();
            }
        }
        now = until;
    }

    void advanceMillis(long ms) {
        advance(ms * 1_000_000L);
    }

    /** Timers scheduled and neither run nor cancelled. */
    long pending() {
        return tasks.stream().filter(t -> !t.cancelled()[0]).count();
    }

    @Override
    public void close() {
        closed = true;
        tasks.clear();
    }
}
