package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class WorkerPoolTest {
    /** Bounds every wait of these tests (they poll for a state; no duration is asserted). */
    private static final long WAIT_NANOS = TimeUnit.SECONDS.toNanos(30);
    private static final Duration LONG_KEEP_ALIVE = Duration.ofMinutes(5);

    private WorkerPool pool;

    @AfterEach
    void shutDown() throws InterruptedException {
        if (pool != null) {
            pool.shutdownNow();
            assertTrue(pool.awaitTermination(Duration.ofSeconds(30)), "workers ended");
        }
    }

    private static void await(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT_NANOS;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("not within 30 s: " + what);
            }
            Thread.sleep(1);
        }
    }

    @Test
    void startsNoThreadBeforeTheFirstTask() {
        pool = new WorkerPool("krun-test-pool", 4, LONG_KEEP_ALIVE);
        assertEquals(0, pool.threads());
    }

    @Test
    void requestsOneAfterAnotherReuseOneThread() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 16, LONG_KEEP_ALIVE);
        Set<String> ranOn = ConcurrentHashMap.newKeySet();
        for (int i = 0; i < 40; i++) {
            CountDownLatch done = new CountDownLatch(1);
            pool.execute(() -> {
                ranOn.add(Thread.currentThread().getName());
                done.countDown();
            });
            assertTrue(done.await(30, TimeUnit.SECONDS));
            await("the worker is idle again", () -> pool.idleThreads() == 1);
        }
        assertEquals(Set.of("krun-test-pool-1"), ranOn);
        assertEquals(1, pool.threads());
    }

    @Test
    void aBurstGrowsToTheBoundAndTheRestWaitInLine() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 3, LONG_KEEP_ALIVE);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger running = new AtomicInteger();
        AtomicInteger finished = new AtomicInteger();
        for (int i = 0; i < 10; i++) {
            pool.execute(() -> {
                running.incrementAndGet();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
                running.decrementAndGet();
                finished.incrementAndGet();
            });
        }
        await("three tasks running", () -> running.get() == 3);
        assertEquals(3, pool.threads());
        release.countDown();
        await("all ten finished", () -> finished.get() == 10);
        assertEquals(3, pool.threads());
    }

    @Test
    void aTrickleKeepsTheMostRecentlyIdleWorkerAndTheOthersEnd() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 4, Duration.ofMillis(200));
        CountDownLatch release = new CountDownLatch(1);
        for (int i = 0; i < 4; i++) {
            pool.execute(() -> {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
        }
        await("four workers", () -> pool.threads() == 4);
        release.countDown();
        await("all four idle", () -> pool.idleThreads() == 4);
        // One request at a time, each after the last worker went idle again: the same worker takes them all
        // while the other three wait out their keep-alive and end.
        Set<String> ranOn = ConcurrentHashMap.newKeySet();
        while (pool.threads() > 1 || ranOn.isEmpty()) {
            CountDownLatch done = new CountDownLatch(1);
            pool.execute(() -> {
                ranOn.add(Thread.currentThread().getName());
                done.countDown();
            });
            assertTrue(done.await(30, TimeUnit.SECONDS));
            await("every worker is idle again", () -> pool.idleThreads() == pool.threads());
        }
        assertEquals(1, ranOn.size(), "requests ran on " + ranOn);
        assertEquals(1, pool.threads());
    }

    @Test
    void idleWorkersEndAfterTheKeepAlive() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 4, Duration.ofMillis(50));
        CountDownLatch done = new CountDownLatch(2);
        pool.execute(done::countDown);
        pool.execute(done::countDown);
        assertTrue(done.await(30, TimeUnit.SECONDS));
        await("no thread left", () -> pool.threads() == 0);
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (t.getName().startsWith("krun-test-pool-")) {
                t.join(Duration.ofSeconds(30)); // past its last task, it only has to return
                assertTrue(!t.isAlive(), t.getName() + " ended");
            }
        }
        // It starts threads again for new work.
        CountDownLatch again = new CountDownLatch(1);
        pool.execute(again::countDown);
        assertTrue(again.await(30, TimeUnit.SECONDS));
    }

    @Test
    void aTaskThatComesWhileTheLastWorkerEndsStillRuns() throws InterruptedException {
        // The keep-alive runs out about when the next task comes: that task must never wait for a worker on
        // its way out (it would wait until some later task started a thread).
        pool = new WorkerPool("krun-test-pool", 1, Duration.ofNanos(200_000));
        for (int i = 0; i < 2000; i++) {
            CountDownLatch done = new CountDownLatch(1);
            pool.execute(done::countDown);
            assertTrue(done.await(30, TimeUnit.SECONDS), "task " + i + " ran");
            if (i % 2 == 0) {
                Thread.sleep(0, 150_000 + (i % 7) * 20_000);
            }
        }
    }

    @Test
    void shutdownRunsWhatItTookThenTheThreadsEnd() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 1, LONG_KEEP_ALIVE);
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger ran = new AtomicInteger();
        pool.execute(() -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            ran.incrementAndGet();
        });
        pool.execute(ran::incrementAndGet); // waits in line
        pool.shutdown();
        assertThrows(RejectedExecutionException.class, () -> pool.execute(ran::incrementAndGet));
        release.countDown();
        assertTrue(pool.awaitTermination(Duration.ofSeconds(30)));
        assertEquals(2, ran.get());
        assertEquals(0, pool.threads());
    }

    @Test
    void shutdownNowDropsWaitingTasksAndInterruptsRunningOnes() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 1, LONG_KEEP_ALIVE);
        CountDownLatch started = new CountDownLatch(1);
        AtomicInteger interrupted = new AtomicInteger();
        pool.execute(() -> {
            started.countDown();
            try {
                new CountDownLatch(1).await();
            } catch (InterruptedException e) {
                interrupted.incrementAndGet();
            }
        });
        Runnable waiting = () -> {
        };
        pool.execute(waiting);
        assertTrue(started.await(30, TimeUnit.SECONDS));
        assertEquals(List.of(waiting), pool.shutdownNow());
        assertTrue(pool.awaitTermination(Duration.ofSeconds(30)));
        assertEquals(1, interrupted.get());
    }

    @Test
    void aFailingTaskDoesNotCostTheWorker() throws InterruptedException {
        pool = new WorkerPool("krun-test-pool", 1, LONG_KEEP_ALIVE);
        Set<String> ranOn = ConcurrentHashMap.newKeySet();
        CountDownLatch done = new CountDownLatch(1);
        Thread.UncaughtExceptionHandler quiet = (t, e) -> {
        };
        pool.execute(() -> {
            Thread.currentThread().setUncaughtExceptionHandler(quiet);
            ranOn.add(Thread.currentThread().getName());
            throw new IllegalStateException("a task's bug");
        });
        pool.execute(() -> {
            ranOn.add(Thread.currentThread().getName());
            done.countDown();
        });
        assertTrue(done.await(30, TimeUnit.SECONDS));
        assertEquals(Set.of("krun-test-pool-1"), ranOn);
    }

    @Test
    void refusesNoThreadsAndNoKeepAlive() {
        assertThrows(IllegalArgumentException.class, () -> new WorkerPool("p", 0, LONG_KEEP_ALIVE));
        assertThrows(IllegalArgumentException.class, () -> new WorkerPool("p", 1, Duration.ZERO));
    }
}
