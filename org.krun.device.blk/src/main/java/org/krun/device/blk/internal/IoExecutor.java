package org.krun.device.blk.internal;

import java.time.Duration;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
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
     * Takes no more tasks and waits up to {@code timeout} for the ones running or queued to finish and for
     * the threads that ran them to end; returns whether they all did.
     */
    boolean shutdown(Duration timeout);

    /**
     * A bounded pool of {@code threads} daemon threads named {@code name-io-N}; idle threads end after a
     * few seconds, so an idle disk holds none.
     */
    static IoExecutor threads(String name, int threads) {
        AtomicInteger n = new AtomicInteger();
        // The pool's threads, so shutdown can wait until they have ended: the pool counts as terminated
        // while its last thread is still on its way out. Ended threads are dropped when a new one starts.
        Set<Thread> started = ConcurrentHashMap.newKeySet();
        ThreadFactory factory = r -> {
            started.removeIf(t -> !t.isAlive());
            Thread thread = Thread.ofPlatform().daemon(true).name(name + "-io-" + n.incrementAndGet()).unstarted(r);
            started.add(thread);
            return thread;
        };
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
                            if (!pool.awaitTermination(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS)) {
                                return false;
                            }
                            for (Thread thread : started) {
                                // Terminated: each thread is past its last task and only has to return.
                                thread.join(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())));
                            }
                            started.removeIf(t -> !t.isAlive());
                            return started.isEmpty();
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
