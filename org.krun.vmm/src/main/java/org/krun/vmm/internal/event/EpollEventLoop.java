package org.krun.vmm.internal.event;

import java.lang.System.Logger.Level;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.Map;
import java.util.Queue;
import java.util.concurrent.Callable;
import java.util.concurrent.CancellationException;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.FutureTask;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.IntConsumer;

import org.krun.posix.Errno;
import org.krun.posix.EventFd;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.RateLimitedLog;

/**
 * One VM's device thread: an epoll loop over registered file descriptors (queue ioeventfds, host I/O)
 * plus a task queue woken by an eventfd. {@link #run()} is the thread's body; it returns after
 * {@link #stop()}; {@link #close()} then releases the epoll and wake descriptors.
 */
public final class EpollEventLoop implements EventLoop, AutoCloseable {
    private static final System.Logger LOG = System.getLogger(EpollEventLoop.class.getName());
    private static final long WAKE_ID = 0;
    private static final int MAX_EVENTS = 64;
    private static final long EVENT_SIZE = Posix.EPOLL_EVENT.byteSize();

    /**
     * Device failures on this loop: a guest may provoke the same one on every kick, so one line per interval,
     * with the count of the ones held back. Errors are not caught here: they end the loop, and with it the
     * VM, with a reason.
     */
    private final RateLimitedLog failures = new RateLimitedLog(m -> LOG.log(Level.ERROR, m), Duration.ofSeconds(10));
    private final int epfd;
    private final EventFd wake;
    private final Queue<Runnable> tasks = new ConcurrentLinkedQueue<>();
    private final Map<Long, IntConsumer> handlers = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(1);
    private volatile Thread thread;
    private volatile boolean stopping;
    private volatile long deadlineNanos = Long.MAX_VALUE;
    private volatile Runnable onDeadline;
    private boolean closed;
    /** Set once {@link #run()} starts, under this object's lock: {@link #callBeforeRun} is for before. */
    private boolean ran;

    public EpollEventLoop() {
        this.epfd = Posix.check("epoll_create1", Posix.epollCreate());
        EventFd w = null;
        try {
            w = EventFd.create();
            Posix.check("epoll_ctl", Posix.epollCtl(epfd, Posix.EPOLL_CTL_ADD, w.fd(), Posix.EPOLLIN, WAKE_ID));
        } catch (RuntimeException e) {
            if (w != null) {
                w.close();
            }
            Posix.close(epfd);
            throw e;
        }
        this.wake = w;
    }

    /** Runs {@code action} on the loop once, at {@code deadlineNanos} ({@link System#nanoTime()} based). */
    public void setDeadline(long deadlineNanos, Runnable action) {
        this.onDeadline = action;
        this.deadlineNanos = deadlineNanos;
        wake.signal();
    }

    /** The loop's body; returns once {@link #stop()} was called and the remaining tasks ran. */
    public void run() {
        synchronized (this) {
            if (thread != null) {
                throw new IllegalStateException("the event loop is already running on " + thread.getName());
            }
            ran = true;
            thread = Thread.currentThread();
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment events = arena.allocate(EVENT_SIZE * MAX_EVENTS, 8);
            while (!stopping) {
                int timeout = timeoutMillis();
                int n = Posix.epollWait(epfd, events, MAX_EVENTS, timeout);
                if (n == -Errno.EINTR) {
                    continue;
                }
                Posix.check("epoll_wait", n);
                for (int i = 0; i < n; i++) {
                    int ready = events.get(JAVA_INT, i * EVENT_SIZE);
                    long id = events.get(JAVA_LONG.withByteAlignment(4), i * EVENT_SIZE + 4);
                    if (id == WAKE_ID) {
                        wake.drain();
                        continue;
                    }
                    IntConsumer h = handlers.get(id);
                    if (h != null) {
                        dispatch(h, ready);
                    }
                }
                runTasks();
                checkDeadline();
            }
            runTasks();
        } finally {
            thread = null;
        }
    }

    private int timeoutMillis() {
        long d = deadlineNanos;
        if (d == Long.MAX_VALUE) {
            return -1;
        }
        long left = d - System.nanoTime();
        return left <= 0 ? 0 : (int) Math.min(Integer.MAX_VALUE, TimeUnit.NANOSECONDS.toMillis(left) + 1);
    }

    private void checkDeadline() {
        if (deadlineNanos != Long.MAX_VALUE && System.nanoTime() - deadlineNanos >= 0) {
            deadlineNanos = Long.MAX_VALUE;
            Runnable r = onDeadline;
            if (r != null) {
                r.run();
            }
        }
    }

    private void dispatch(IntConsumer handler, int events) {
        try {
            handler.accept(events);
        } catch (RuntimeException e) {
            failures.warn("device event handler failed: " + e);
        }
    }

    private void runTasks() {
        Runnable t;
        while ((t = tasks.poll()) != null) {
            try {
                t.run();
            } catch (RuntimeException e) {
                failures.warn("device task failed: " + e);
            }
        }
    }

    @Override
    public void execute(Runnable task) {
        tasks.add(task);
        wake.signal();
    }

    /**
     * Runs {@code task} on the loop and waits for its result. Gives up with {@link CancellationException}
     * if the loop stops first, so a vCPU waiting here never blocks teardown.
     */
    public <T> T call(Callable<T> task) {
        if (inEventLoop()) {
            try {
                return task.call();
            } catch (RuntimeException e) {
                throw e;
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        }
        FutureTask<T> f = new FutureTask<>(task);
        execute(f);
        while (true) {
            try {
                return f.get(50, TimeUnit.MILLISECONDS);
            } catch (TimeoutException e) {
                if (stopping) {
                    f.cancel(false);
                    throw new CancellationException("VM is stopping");
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new CancellationException("interrupted");
            } catch (ExecutionException e) {
                if (e.getCause() instanceof RuntimeException r) {
                    throw r;
                }
                throw new IllegalStateException(e.getCause());
            }
        }
    }

    /**
     * Runs {@code task} as the loop before {@link #run()} has started: on the calling thread, which is the
     * loop's meanwhile ({@link #inEventLoop()} holds), and returns its result or throws what it threw. For
     * steps that must finish, or fail, before anything else runs (a restored VM's devices take their saved
     * state): no loop thread exists yet, so a failure leaves none to stop. The thread that later runs the
     * loop sees what the task did ({@link Thread#start()} orders it); tasks it queued run then.
     *
     * @throws IllegalStateException when the loop has already run
     */
    public <T> T callBeforeRun(Callable<T> task) {
        synchronized (this) {
            if (ran || closed) {
                throw new IllegalStateException("the event loop has already run");
            }
            thread = Thread.currentThread();
        }
        try {
            return task.call();
        } catch (RuntimeException e) {
            throw e;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        } finally {
            thread = null;
        }
    }

    @Override
    public boolean inEventLoop() {
        return Thread.currentThread() == thread;
    }

    public boolean isStopping() {
        return stopping;
    }

    @Override
    public AutoCloseable register(int fd, int events, IntConsumer handler) {
        long id = nextId.getAndIncrement();
        handlers.put(id, handler);
        int r = Posix.epollCtl(epfd, Posix.EPOLL_CTL_ADD, fd, events, id);
        if (r < 0) {
            handlers.remove(id);
            throw new PosixException("epoll_ctl ADD", -r);
        }
        return () -> {
            if (handlers.remove(id) != null) {
                Posix.epollCtl(epfd, Posix.EPOLL_CTL_DEL, fd, 0, 0);
            }
        };
    }

    @Override
    public Watch watch(int fd, int events, IntConsumer handler) {
        long id = nextId.getAndIncrement();
        handlers.put(id, handler);
        int r = Posix.epollCtl(epfd, Posix.EPOLL_CTL_ADD, fd, events, id);
        if (r < 0) {
            handlers.remove(id);
            throw new PosixException("epoll_ctl ADD", -r);
        }
        return new Watch() {
            private int current = events;
            private boolean closed;

            @Override
            public void events(int next) {
                if (closed || next == current) {
                    return;
                }
                Posix.check("epoll_ctl MOD", Posix.epollCtl(epfd, Posix.EPOLL_CTL_MOD, fd, next, id));
                current = next;
            }

            @Override
            public int events() {
                return current;
            }

            @Override
            public void close() {
                if (!closed) {
                    closed = true;
                    if (handlers.remove(id) != null) {
                        Posix.epollCtl(epfd, Posix.EPOLL_CTL_DEL, fd, 0, 0);
                    }
                }
            }
        };
    }

    /** Makes {@link #run()} return after the tasks already queued. Safe from any thread. */
    public void stop() {
        stopping = true;
        wake.signal();
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            handlers.clear();
            wake.close();
            Posix.close(epfd);
        }
    }
}
