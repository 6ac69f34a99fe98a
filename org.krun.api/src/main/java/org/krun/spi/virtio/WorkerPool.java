package org.krun.spi.virtio;

import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.ReentrantLock;

/**
 * A device's worker threads, which exist only while it has work: at most {@code maxThreads} daemon threads
 * named {@code name-N}, none until the first task. A task goes to an idle worker if there is one, else to
 * a new thread while there are fewer than {@code maxThreads}, else it waits in line. Idle workers are
 * handed tasks most-recently-idle first, so a trickle of requests keeps one thread busy and lets the
 * others end after {@code keepAlive} without work: a device that had a burst of requests holds no more
 * threads than its work needs once the burst is over, and an idle device holds none. The bound stays per
 * device, so a guest that floods its device never takes another VM's threads.
 *
 * <p>Unlike {@link java.util.concurrent.ThreadPoolExecutor} with {@code allowCoreThreadTimeOut}, which starts
 * a new thread for every task until it has its core size, even while other workers are idle, and then
 * hands tasks to its idle workers in turn (so requests a few a second keep them all alive). Thread-safe.
 */
public final class WorkerPool implements Executor {
    private final String name;
    private final int maxThreads;
    private final long keepAliveNanos;
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition threadEnded = lock.newCondition();
    /** Tasks no worker was free for, in order. */
    private final ArrayDeque<Runnable> waiting = new ArrayDeque<>();
    /** Idle workers, the most recently idle first. */
    private final ArrayDeque<Worker> idle = new ArrayDeque<>();
    /** Every thread started and not yet seen dead, so that termination can wait until they have ended. */
    private final Set<Thread> threads = new HashSet<>();
    private int live;
    private int started;
    private boolean shutdown;

    /**
     * @param name the threads' name prefix ({@code krun-fs-share} gives {@code krun-fs-share-1}, ...)
     * @param maxThreads the most threads at once (at least 1)
     * @param keepAlive how long a worker waits for a task before it ends (positive)
     */
    public WorkerPool(String name, int maxThreads, Duration keepAlive) {
        this.name = Objects.requireNonNull(name, "name");
        if (maxThreads < 1 || keepAlive.isNegative() || keepAlive.isZero()) {
            throw new IllegalArgumentException("a worker pool needs at least one thread and a positive keep-alive");
        }
        this.maxThreads = maxThreads;
        this.keepAliveNanos = keepAlive.toNanos();
    }

    /**
     * Runs {@code task} on a worker, soon.
     *
     * @throws RejectedExecutionException after {@link #shutdown} or {@link #shutdownNow}, or when no thread
     *         could be started and none is running
     */
    @Override
    public void execute(Runnable task) {
        Objects.requireNonNull(task, "task");
        lock.lock();
        try {
            if (shutdown) {
                throw new RejectedExecutionException(name + ": the pool is shut down");
            }
            Worker w = idle.pollFirst();
            if (w != null) {
                w.next = task;
                w.wake.signal();
                return;
            }
            if (live < maxThreads) {
                threads.removeIf(t -> !t.isAlive());
                Thread t = Thread.ofPlatform().daemon(true).name(name + "-" + ++started).unstarted(new Worker(task));
                try {
                    t.start();
                } catch (OutOfMemoryError e) { // no more native threads: run it on a worker there is, if any
                    if (live == 0) {
                        throw new RejectedExecutionException(name + ": no thread could be started", e);
                    }
                    waiting.addLast(task);
                    return;
                }
                threads.add(t);
                live++;
                return;
            }
            waiting.addLast(task);
        } finally {
            lock.unlock();
        }
    }

    /** Threads running now (busy or idle). */
    public int threads() {
        lock.lock();
        try {
            return live;
        } finally {
            lock.unlock();
        }
    }

    /** Threads waiting for a task now. */
    public int idleThreads() {
        lock.lock();
        try {
            return idle.size();
        } finally {
            lock.unlock();
        }
    }

    /** Takes no more tasks; those already taken still run, then the workers end. */
    public void shutdown() {
        lock.lock();
        try {
            shutdown = true;
            idle.forEach(w -> w.wake.signal());
        } finally {
            lock.unlock();
        }
    }

    /**
     * Takes no more tasks, drops those that wait for a worker (returned) and interrupts the running ones.
     */
    public List<Runnable> shutdownNow() {
        lock.lock();
        try {
            shutdown = true;
            List<Runnable> dropped = new ArrayList<>(waiting);
            waiting.clear();
            idle.forEach(w -> w.wake.signal());
            threads.forEach(Thread::interrupt);
            return dropped;
        } finally {
            lock.unlock();
        }
    }

    /**
     * After a shutdown, waits up to {@code timeout} until every worker thread has ended (returned from its
     * last task and exited); returns whether they all did.
     */
    public boolean awaitTermination(Duration timeout) throws InterruptedException {
        long deadline = System.nanoTime() + timeout.toNanos();
        List<Thread> all;
        lock.lock();
        try {
            if (!shutdown) {
                throw new IllegalStateException(name + ": awaitTermination before shutdown");
            }
            while (live > 0) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                threadEnded.awaitNanos(left);
            }
            all = new ArrayList<>(threads);
        } finally {
            lock.unlock();
        }
        for (Thread t : all) {
            // Each is past its last task and only has to return.
            if (!t.join(Duration.ofNanos(Math.max(1, deadline - System.nanoTime())))) {
                return false;
            }
        }
        lock.lock();
        try {
            threads.removeAll(all);
        } finally {
            lock.unlock();
        }
        return true;
    }

    private final class Worker implements Runnable {
        final Condition wake = lock.newCondition();
        /** The task handed to this worker while it was idle (guarded by the lock). */
        Runnable next;
        private final Runnable first;

        Worker(Runnable first) {
            this.first = first;
        }

        @Override
        public void run() {
            Runnable task = first;
            boolean counted = true;
            try {
                while (task != null) {
                    try {
                        task.run();
                    } catch (Throwable t) {
                        Thread self = Thread.currentThread();
                        self.getUncaughtExceptionHandler().uncaughtException(self, t);
                    }
                    task = next();
                }
                counted = false; // next() has counted this worker out
            } finally {
                if (counted) {
                    lock.lock();
                    try {
                        ended();
                    } finally {
                        lock.unlock();
                    }
                }
            }
        }

        /** Counts this worker out (holding the lock). */
        private void ended() {
            live--;
            idle.remove(this);
            threadEnded.signalAll();
        }

        /**
         * The next task: one waiting in line, or one handed over within the keep-alive; null to end, in which
         * case this worker is counted out in the same step, so that a task that comes meanwhile starts a
         * thread instead of waiting for this one.
         */
        private Runnable next() {
            lock.lock();
            try {
                Thread.interrupted(); // an interrupt meant for the task just run
                Runnable task = waiting.pollFirst();
                if (task == null && !shutdown) {
                    idle.addFirst(this);
                    long left = keepAliveNanos;
                    while (next == null && !shutdown && left > 0) {
                        try {
                            left = wake.awaitNanos(left);
                        } catch (InterruptedException e) {
                            // shutdownNow: the loop sees the flag
                        }
                    }
                    idle.remove(this);
                    task = next;
                    next = null;
                }
                if (task == null) {
                    ended();
                }
                return task;
            } finally {
                lock.unlock();
            }
        }
    }

    @Override
    public String toString() {
        return name + " (" + threads() + " of at most " + maxThreads + " threads)";
    }
}
