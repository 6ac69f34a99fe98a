package org.krun.device.blk.internal;

import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.IntConsumer;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.Virtqueue;

/**
 * A real single-threaded event loop for device tests whose I/O runs on real threads: completions then
 * arrive from other threads, as in a VM. Also a {@link DeviceContext} on it, counting interrupts.
 */
final class LoopThread implements EventLoop, AutoCloseable {
    private volatile Thread thread;
    private final ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
        Thread t = new Thread(r, "test-event-loop");
        thread = t;
        return t;
    });
    final AtomicInteger interrupts = new AtomicInteger();

    @Override
    public void execute(Runnable task) {
        executor.execute(task);
    }

    @Override
    public boolean inEventLoop() {
        return Thread.currentThread() == thread;
    }

    @Override
    public AutoCloseable register(int fd, int events, IntConsumer handler) {
        throw new UnsupportedOperationException();
    }

    @Override
    public Watch watch(int fd, int events, IntConsumer handler) {
        throw new UnsupportedOperationException();
    }

    /** Runs {@code task} on the loop and waits for it. */
    <T> T call(Callable<T> task) throws Exception {
        return executor.submit(task).get(60, TimeUnit.SECONDS);
    }

    DeviceContext context(GuestMemory mem, long features, Virtqueue queue) {
        return new DeviceContext() {
            @Override
            public GuestMemory memory() {
                return mem;
            }

            @Override
            public long driverFeatures() {
                return features;
            }

            @Override
            public List<Virtqueue> queues() {
                return List.of(queue);
            }

            @Override
            public InterruptTrigger interrupt() {
                return reasons -> interrupts.incrementAndGet();
            }

            @Override
            public EventLoop eventLoop() {
                return LoopThread.this;
            }

            @Override
            public void needsReset(String reason) {
                throw new AssertionError("device asked for a reset: " + reason);
            }
        };
    }

    @Override
    public void close() throws InterruptedException {
        executor.shutdown();
        executor.awaitTermination(60, TimeUnit.SECONDS);
    }
}
