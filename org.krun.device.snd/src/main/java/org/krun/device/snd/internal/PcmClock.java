package org.krun.device.snd.internal;

import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.ScheduledThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * The time that paces the streams: when a period would have been played (or recorded) at the stream's
 * rate. The tasks it runs only post work to the event loop; tests use a clock they move by hand.
 */
interface PcmClock extends AutoCloseable {

    /** Now, in nanoseconds ({@link System#nanoTime()} scale). */
    long nanoTime();

    /** Runs {@code task} at {@code atNanos} or soon after, on the clock's thread; the returned handle cancels it. */
    Runnable schedule(long atNanos, Runnable task);

    @Override
    void close();

    /** The real clock: one daemon timer thread per device, while the device lives. */
    static PcmClock system(String threadName) {
        ScheduledThreadPoolExecutor timer = new ScheduledThreadPoolExecutor(1,
                r -> Thread.ofPlatform().daemon(true).name(threadName).unstarted(r));
        timer.setRemoveOnCancelPolicy(true);
        timer.setExecuteExistingDelayedTasksAfterShutdownPolicy(false);
        return new PcmClock() {
            @Override
            public long nanoTime() {
                return System.nanoTime();
            }

            @Override
            public Runnable schedule(long atNanos, Runnable task) {
                ScheduledFuture<?> f = timer.schedule(task, Math.max(0, atNanos - System.nanoTime()), TimeUnit.NANOSECONDS);
                return () -> f.cancel(false);
            }

            @Override
            public void close() {
                timer.shutdownNow();
                try {
                    timer.awaitTermination(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
    }
}
