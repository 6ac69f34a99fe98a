package org.krun.vmm.internal.event;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.posix.EventFd;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;

class EpollEventLoopTest {
    private EpollEventLoop loop;
    private Thread thread;

    @BeforeEach
    void start() {
        loop = new EpollEventLoop();
        thread = Thread.ofPlatform().name("test-loop").start(loop::run);
    }

    @AfterEach
    void stop() throws InterruptedException {
        loop.stop();
        thread.join();
        loop.close();
    }

    private static <T> T await(CompletableFuture<T> f) throws Exception {
        return f.get(10, TimeUnit.SECONDS);
    }

    /** Returns once every descriptor signalled and every task queued before this call was handled. */
    private void settle() throws Exception {
        try (EventFd probe = EventFd.create()) {
            CompletableFuture<Void> done = new CompletableFuture<>();
            AutoCloseable registration = loop.register(probe.fd(), Posix.EPOLLIN, events -> {
                probe.drain();
                loop.execute(() -> done.complete(null));
            });
            probe.signal();
            await(done);
            registration.close();
        }
    }

    @Test
    void tasksRunOnTheLoopThreadInSubmissionOrder() throws Exception {
        List<Integer> order = new ArrayList<>();
        CompletableFuture<Boolean> onLoop = new CompletableFuture<>();
        for (int i = 0; i < 100; i++) {
            int n = i;
            loop.execute(() -> order.add(n));
        }
        loop.execute(() -> onLoop.complete(loop.inEventLoop() && Thread.currentThread() == thread));
        assertTrue(await(onLoop));
        assertEquals(IntStream.range(0, 100).boxed().toList(), order);
        assertFalse(loop.inEventLoop());
    }

    @Test
    void callBeforeRunRunsOnTheCallerAsTheLoopAndItsQueuedTasksRunLater() throws Exception {
        try (EpollEventLoop fresh = new EpollEventLoop()) {
            List<String> ran = new ArrayList<>();
            CompletableFuture<Boolean> later = new CompletableFuture<>();
            assertEquals("done", fresh.callBeforeRun(() -> {
                ran.add("step on loop: " + fresh.inEventLoop());
                fresh.execute(() -> later.complete(fresh.inEventLoop()));
                return "done";
            }));
            assertEquals(List.of("step on loop: true"), ran);
            assertFalse(fresh.inEventLoop(), "the caller is the loop only during the step");
            assertFalse(later.isDone(), "tasks the step queued wait for run()");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fresh.callBeforeRun(() -> {
                throw new IllegalArgumentException("refused");
            }));
            assertEquals("refused", e.getMessage());
            assertFalse(fresh.inEventLoop());
            Thread t = Thread.ofPlatform().name("test-fresh-loop").start(fresh::run);
            try {
                assertTrue(await(later));
                assertThrows(IllegalStateException.class, () -> fresh.callBeforeRun(() -> null));
            } finally {
                fresh.stop();
                t.join();
            }
        }
    }

    @Test
    void callReturnsTheResultComputedOnTheLoop() {
        assertSame(thread, loop.call(Thread::currentThread));
    }

    @Test
    void callRethrowsTheTasksRuntimeException() {
        IllegalStateException failure = new IllegalStateException("device broke");
        assertSame(failure, assertThrows(IllegalStateException.class, () -> loop.call(() -> {
            throw failure;
        })));
    }

    @Test
    void callWrapsACheckedException() {
        IOException failure = new IOException("backend");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> loop.call(() -> {
            throw failure;
        }));
        assertSame(failure, e.getCause());
    }

    @Test
    void callFromTheLoopThreadRunsInline() throws Exception {
        CompletableFuture<Integer> result = new CompletableFuture<>();
        loop.execute(() -> result.complete(loop.call(() -> 42)));
        assertEquals(42, await(result));
    }

    @Test
    void registeredHandlerRunsOnTheLoopWithTheReadyEvents() throws Exception {
        try (EventFd fd = EventFd.create()) {
            CompletableFuture<Integer> events = new CompletableFuture<>();
            CompletableFuture<Boolean> onLoop = new CompletableFuture<>();
            AutoCloseable registration = loop.register(fd.fd(), Posix.EPOLLIN, ready -> {
                fd.drain();
                onLoop.complete(loop.inEventLoop());
                events.complete(ready);
            });
            fd.signal();
            assertEquals(Posix.EPOLLIN, await(events) & Posix.EPOLLIN);
            assertTrue(await(onLoop));
            registration.close();
        }
    }

    @Test
    void handlerRunsAgainForEachNewSignal() throws Exception {
        try (EventFd fd = EventFd.create()) {
            AtomicInteger count = new AtomicInteger();
            AutoCloseable registration = loop.register(fd.fd(), Posix.EPOLLIN, ready -> {
                fd.drain();
                count.incrementAndGet();
            });
            fd.signal();
            settle();
            fd.signal();
            settle();
            assertEquals(2, count.get());
            registration.close();
        }
    }

    @Test
    void closingTheRegistrationStopsDispatch() throws Exception {
        try (EventFd fd = EventFd.create()) {
            AtomicInteger count = new AtomicInteger();
            AutoCloseable registration = loop.register(fd.fd(), Posix.EPOLLIN, ready -> count.incrementAndGet());
            registration.close();
            registration.close(); // idempotent
            fd.signal(); // stays readable: a live registration would fire on every iteration
            settle();
            assertEquals(0, count.get());
        }
    }

    @Test
    void registeringAnInvalidDescriptorFailsWithTheErrno() {
        PosixException e = assertThrows(PosixException.class, () -> loop.register(-1, Posix.EPOLLIN, ready -> {
        }));
        assertTrue(e.getMessage().contains("epoll_ctl"), e.getMessage());
    }

    @Test
    void aFailingTaskOrHandlerDoesNotStopTheLoop() throws Exception {
        try (EventFd fd = EventFd.create()) {
            AutoCloseable registration = loop.register(fd.fd(), Posix.EPOLLIN, ready -> {
                fd.drain();
                throw new IllegalStateException("handler failure (expected by the test)");
            });
            fd.signal();
            loop.execute(() -> {
                throw new IllegalStateException("task failure (expected by the test)");
            });
            CompletableFuture<String> after = new CompletableFuture<>();
            loop.execute(() -> after.complete("still running"));
            assertEquals("still running", await(after));
            assertTrue(thread.isAlive());
            registration.close();
        }
    }

    @Test
    void stopReturnsFromRunAfterTheTasksAlreadyQueued() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        AtomicInteger ran = new AtomicInteger();
        loop.execute(() -> {
            try {
                release.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        loop.execute(ran::incrementAndGet);
        loop.execute(ran::incrementAndGet);
        loop.stop();
        assertTrue(loop.isStopping());
        release.countDown();
        thread.join();
        assertEquals(2, ran.get());
    }

    @Test
    void callGivesUpOnceTheLoopHasStopped() throws InterruptedException {
        loop.stop();
        thread.join();
        AtomicInteger ran = new AtomicInteger();
        assertThrows(CancellationException.class, () -> loop.call(ran::incrementAndGet));
        assertEquals(0, ran.get());
    }

    @Test
    void deadlineRunsItsActionOnceOnTheLoop() throws Exception {
        AtomicInteger runs = new AtomicInteger();
        CompletableFuture<Boolean> onLoop = new CompletableFuture<>();
        loop.setDeadline(System.nanoTime(), () -> {
            runs.incrementAndGet();
            onLoop.complete(loop.inEventLoop());
        });
        assertTrue(await(onLoop));
        loop.execute(() -> {
        }); // another iteration past the deadline
        settle();
        assertEquals(1, runs.get());
    }

    @Test
    void deadlineInTheFutureDoesNotRunYet() throws Exception {
        AtomicInteger runs = new AtomicInteger();
        loop.setDeadline(System.nanoTime() + TimeUnit.HOURS.toNanos(1), runs::incrementAndGet);
        loop.execute(() -> {
        });
        settle();
        assertEquals(0, runs.get());
    }

    @Test
    void closeReleasesTheDescriptorsAndIsIdempotent() throws Exception {
        long before = openDescriptors();
        for (int i = 0; i < 50; i++) {
            EpollEventLoop l = new EpollEventLoop();
            l.close();
            l.close();
        }
        long after = openDescriptors();
        assertTrue(after < before + 50, "descriptors leaked: " + before + " -> " + after);
    }

    private static long openDescriptors() throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.count();
        }
    }

    @Test
    void handlerSeesAHangUpOnItsDescriptor() throws Exception {
        // A pipe whose write end is closed reports EPOLLHUP to a reader: the handler learns of it.
        Path fifo = Files.createTempDirectory("krun-loop").resolve("fifo");
        Process p = new ProcessBuilder("mkfifo", fifo.toString()).start();
        assertEquals(0, p.waitFor());
        try {
            int flags = Posix.O_NONBLOCK | Posix.O_CLOEXEC;
            int rd = Posix.check("open", Posix.open(fifo.toString(), Posix.O_RDONLY | flags));
            int wr = Posix.check("open", Posix.open(fifo.toString(), Posix.O_WRONLY | flags));
            CompletableFuture<Integer> events = new CompletableFuture<>();
            AutoCloseable registration = loop.register(rd, Posix.EPOLLIN, events::complete);
            Posix.close(wr);
            assertEquals(Posix.EPOLLHUP, await(events) & Posix.EPOLLHUP);
            registration.close();
            Posix.close(rd);
        } finally {
            Files.deleteIfExists(fifo);
            Files.deleteIfExists(fifo.getParent());
        }
    }
}
