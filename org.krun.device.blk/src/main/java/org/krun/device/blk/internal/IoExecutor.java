package org.krun.device.blk.internal;

import java.time.Duration;

import org.krun.spi.virtio.WorkerPool;

/** Where a disk's blocking I/O runs, off the VM's event loop. */
interface IoExecutor {

    /** How long an idle I/O thread waits for a request before it ends. */
    Duration KEEP_ALIVE = Duration.ofSeconds(5);

    /**
     * Runs {@code task} soon, possibly at the same time as others.
     *
     * @throws java.util.concurrent.RejectedExecutionException after {@link #shutdown}
     */
    void execute(Runnable task);

    /**
     * Takes no more tasks and waits up to {@code timeout} for the ones running or queued to finish and for
     * the threads that ran them to end; returns whether they all did.
     */
    boolean shutdown(Duration timeout);

    /**
     * A bounded pool of {@code threads} daemon threads named {@code name-io-N} (a {@link WorkerPool}): a
     * thread starts only when no idle one can take the request, and idle threads end after a few seconds, so
     * an idle disk holds none.
     */
    static IoExecutor threads(String name, int threads) {
        WorkerPool pool = new WorkerPool(name + "-io", threads, KEEP_ALIVE);
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
                            return pool.awaitTermination(Duration.ofNanos(Math.max(0, deadline - System.nanoTime())));
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
