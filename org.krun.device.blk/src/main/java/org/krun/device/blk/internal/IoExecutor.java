package org.krun.device.blk.internal;

import java.time.Duration;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadFactory;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/** Where a disk's blocking I/O runs, off the VM's event loop. */
interface IoExecutor {

    /**
     * Runs {@code task} soon, possibly at the same time as others.
     *
     * @throws java.util.concurrent.RejectedExecutionException after {@link #shutdown}
     */
    void execute(Runnable task);

    /**
     * Takes no more tasks and waits up to {@code timeout} for the ones running or queued to finish; returns
     * whether they all did.
     */
    boolean shutdown(Duration timeout);

    /**
     * A bounded pool of {@code threads} daemon threads named {@code name-io-N}; idle threads end after a
     * few seconds, so an idle disk holds none.
     */
    static IoExecutor threads(String name, int threads) {
        AtomicInteger n = new AtomicInteger();
        ThreadFactory factory = r -> Thread.ofPlatform().daemon(true).name(name + "-io-" + n.incrementAndGet()).unstarted(r);
        ThreadPoolExecutor pool = new ThreadPoolExecutor(threads, threads, 5, TimeUnit.SECONDS,
                new LinkedBlockingQueue<>(), factory);
        pool.allowCoreThreadTimeOut(true);
        return new IoExecutor() {
            @Override
            public void execute(Runnable task) {
                pool.execute(task);
            }

            @Override
            public boolean shutdown(Duration timeout) {
                pool.shutdown();
                boolean interrupted = false;
                long deadline = System.nanoTime() + timeout.toNanos();
                try {
                    while (true) {
                        try {
                            return pool.awaitTermination(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                        } catch (InterruptedException e) {
                            interrupted = true;
                        }
                    }
                } finally {
                    if (interrupted) {
                        Thread.currentThread().interrupt();
                    }
                }
            }
        };
    }
}
