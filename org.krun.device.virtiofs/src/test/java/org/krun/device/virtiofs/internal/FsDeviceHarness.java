package org.krun.device.virtiofs.internal;

import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

import org.krun.api.FsShareSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

/**
 * A {@link VirtioFs} activated as a VM would: its hiprio and request queues laid out by driver-side mocks
 * in test guest memory, a real single-threaded event loop (notifications and completions run there, as in
 * a VM, while requests run on the device's own threads). The test thread drives the driver side through
 * {@link #onLoop}, never touching the rings concurrently with the device.
 */
final class FsDeviceHarness implements AutoCloseable {

    /** A request the driver made available, by its queue, chain head and FUSE unique. */
    record Sent(int queue, int head, long unique) {
    }

    final TestGuestMemory ram;
    /** Whether {@link #close} frees {@link #ram} (else it is the caller's, cleared here before use). */
    private final boolean ownsRam;
    /** A permit per interrupt the device raised: {@link #await} sleeps on it instead of polling blindly. */
    private final Semaphore interrupts = new Semaphore(0);
    final MockDriverQueue hiprio;
    final MockDriverQueue requests;
    volatile VirtioFs device;
    private final Path share;
    private volatile List<Virtqueue> deviceQueues;
    final List<String> resetReasons = new CopyOnWriteArrayList<>();
    private final ExecutorService loopExecutor;
    /** Whether {@link #close} ends {@link #loopExecutor} (else it is the caller's, drained here on close). */
    private final boolean ownsLoop;
    private volatile Thread loopThread;
    private final EventLoop loop;
    /** Chains returned and not yet claimed by {@link #await}, per queue and head. */
    private final Map<List<Integer>, MockDriverQueue.Used> returned = new HashMap<>();
    private long unique = 100;

    FsDeviceHarness(Path share, FsLimits limits) {
        this(share, limits, 64 << 20);
    }

    /** @param ramBytes guest RAM for the rings and every buffer the driver ever makes available (never reused) */
    FsDeviceHarness(Path share, FsLimits limits, long ramBytes) {
        this(share, limits, TestGuestMemory.create(ramBytes), true, null, null);
    }

    /** A device whose share has a DAX window, given as {@code dax} (a test's stand-in for the core's region). */
    FsDeviceHarness(Path share, FsLimits limits, org.krun.spi.virtio.SharedMemory dax) {
        this(share, limits, TestGuestMemory.create(64 << 20), true, null, dax);
    }

    /**
     * Over guest RAM the caller keeps for many harnesses, one after the other (a fuzz target's inputs): it is
     * zeroed here ({@link TestGuestMemory#clear}) and left to the caller by {@link #close}, which returns only
     * once the device has closed and let go of it.
     */
    FsDeviceHarness(Path share, FsLimits limits, TestGuestMemory sharedRam) {
        this(share, limits, sharedRam, false, null, null);
    }

    /**
     * Over guest RAM and an event loop (a single-threaded executor) the caller keeps for many harnesses, one
     * after the other: {@link #close} closes the device, then runs whatever the device left queued on the
     * loop, so nothing of this device runs there, or touches the RAM, once it returns.
     */
    FsDeviceHarness(Path share, FsLimits limits, TestGuestMemory sharedRam, ExecutorService sharedLoop) {
        this(share, limits, sharedRam, false, sharedLoop, null);
    }

    /** A single-threaded executor for {@link #FsDeviceHarness(Path, FsLimits, TestGuestMemory, ExecutorService)}. */
    static ExecutorService newLoop() {
        return Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "test-event-loop");
            t.setDaemon(true); // a device that wedges its loop must not keep the test JVM alive
            return t;
        });
    }

    private final org.krun.spi.virtio.SharedMemory dax;

    private FsDeviceHarness(Path share, FsLimits limits, TestGuestMemory ram, boolean ownsRam, ExecutorService sharedLoop,
            org.krun.spi.virtio.SharedMemory dax) {
        this.dax = dax;
        if (!ownsRam) {
            ram.clear();
        }
        this.ram = ram;
        this.ownsRam = ownsRam;
        hiprio = new MockDriverQueue(ram, 64);
        requests = new MockDriverQueue(ram, 256);
        ownsLoop = sharedLoop == null;
        loopExecutor = sharedLoop != null ? sharedLoop : Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "test-event-loop");
            t.setDaemon(true); // a device that wedges its loop must not keep the test JVM alive
            loopThread = t;
            return t;
        });
        loop = new EventLoop() {
            @Override
            public void execute(Runnable task) {
                loopExecutor.execute(task);
            }

            @Override
            public boolean inEventLoop() {
                return Thread.currentThread() == loopThread;
            }

            @Override
            public AutoCloseable register(int fd, int events, IntConsumer handler) {
                throw new UnsupportedOperationException();
            }

            @Override
            public Watch watch(int fd, int events, IntConsumer handler) {
                throw new UnsupportedOperationException();
            }
        };
        if (!ownsLoop) {
            loopThread = within(loopExecutor.submit(Thread::currentThread), Duration.ofSeconds(5), "the event loop");
        }
        this.share = share;
        device = new VirtioFs(spec(), limits);
        deviceQueues = List.of(hiprio.configuredQueue(), requests.configuredQueue());
        DeviceContext context = context(deviceQueues);
        onLoop(() -> {
            device.activate(context);
            return null;
        });
    }

    private FsShareSpec spec() {
        return new FsShareSpec("test", share, false).withDaxWindow(dax == null ? 0 : dax.size());
    }

    private DeviceContext context(List<Virtqueue> queues) {
        return new DeviceContext() {
            @Override
            public java.util.Optional<org.krun.spi.virtio.SharedMemory> sharedMemory(int id) {
                return dax != null && dax.id() == id ? java.util.Optional.of(dax) : java.util.Optional.empty();
            }

            @Override
            public GuestMemory memory() {
                return ram.memory();
            }

            @Override
            public long driverFeatures() {
                return VirtioFeatures.VERSION_1;
            }

            @Override
            public List<Virtqueue> queues() {
                return queues;
            }

            @Override
            public InterruptTrigger interrupt() {
                return reasons -> interrupts.release();
            }

            @Override
            public EventLoop eventLoop() {
                return loop;
            }

            @Override
            public void needsReset(String reason) {
                resetReasons.add(reason);
            }
        };
    }

    /** The device's snapshot state, taken on the loop, or the exception it refused with. */
    Object saveState(Duration drainTimeout) {
        return onLoop(() -> {
            try {
                return device.saveState(drainTimeout);
            } catch (IllegalStateException e) {
                return e;
            }
        });
    }

    /**
     * What a restored VM does: the old device closed, a new one over the same share activated with the
     * queues at the indices the old one left, given {@code state}, then notified as the transport does.
     */
    void restore(byte[] state, FsLimits limits) {
        List<Virtqueue.Indices> saved = onLoop(() -> List.of(deviceQueues.get(0).indices(), deviceQueues.get(1).indices()));
        closeDevice(Duration.ofSeconds(10));
        VirtioFs fresh = new VirtioFs(spec(), limits);
        List<Virtqueue> queues = List.of(new Virtqueue(hiprio.layout(), false), new Virtqueue(requests.layout(), false));
        for (int i = 0; i < 2; i++) {
            queues.get(i).restoreIndices(saved.get(i));
        }
        deviceQueues = queues;
        device = fresh;
        onLoop(() -> {
            fresh.activate(context(queues));
            fresh.restoreState(state);
            fresh.queueNotify(VirtioFs.HIPRIO_QUEUE);
            fresh.queueNotify(VirtioFs.REQUEST_QUEUE);
            return null;
        });
    }

    /** Runs {@code task} on the event loop and waits for it, at most 5 s (a wedged loop fails the test). */
    <T> T onLoop(Callable<T> task) {
        return within(loopExecutor.submit(task), Duration.ofSeconds(5), "the event loop");
    }

    static <T> T within(Future<T> f, Duration bound, String what) {
        try {
            return f.get(bound.toMillis(), TimeUnit.MILLISECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            throw new AssertionError(what + " did not finish within " + bound.toSeconds() + " s");
        } catch (Exception e) {
            throw new AssertionError(what + " failed: " + e, e);
        }
    }

    MockDriverQueue driver(int queue) {
        return queue == VirtioFs.HIPRIO_QUEUE ? hiprio : requests;
    }

    /** Makes a request available on {@code queue} with a reply buffer of {@code replyRoom} bytes and notifies. */
    Sent send(int queue, int opcode, long nodeid, byte[] args, int replyRoom) {
        return send(queue, unique++, opcode, nodeid, args, replyRoom);
    }

    Sent send(int queue, long uniqueId, int opcode, long nodeid, byte[] args, int replyRoom) {
        return sendBytes(queue, uniqueId, FuseClient.request(opcode, nodeid, uniqueId, args), replyRoom);
    }

    /** Makes {@code request} (header and arguments as they are, however wrong) available on {@code queue}. */
    Sent sendBytes(int queue, long uniqueId, byte[] request, int replyRoom) {
        int head = onLoop(() -> {
            int h = driver(queue).addChain(List.of(request), replyRoom > 0 ? List.of(replyRoom) : List.of());
            device.queueNotify(queue);
            return h;
        });
        return new Sent(queue, head, uniqueId);
    }

    /**
     * Makes each of {@code requests} (queue, unique, bytes, reply room) available and notifies its queue,
     * in order, in one turn of the event loop (one hand-over to the loop instead of one per request).
     */
    List<Sent> sendAll(List<Outgoing> requests) {
        List<Integer> heads = onLoop(() -> {
            List<Integer> hs = new java.util.ArrayList<>();
            for (Outgoing o : requests) {
                hs.add(driver(o.queue()).addChain(List.of(o.bytes()), o.replyRoom() > 0 ? List.of(o.replyRoom()) : List.of()));
                device.queueNotify(o.queue());
            }
            return hs;
        });
        List<Sent> sent = new java.util.ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            sent.add(new Sent(requests.get(i).queue(), heads.get(i), requests.get(i).unique()));
        }
        return sent;
    }

    /** A request for {@link #sendAll}. */
    record Outgoing(int queue, long unique, byte[] bytes, int replyRoom) {
    }

    /**
     * Waits until the chain of each of {@code sent} came back, at most {@code bound} in all; returns those
     * that did not, in order (what {@link #await} of each in turn against the same deadline returns, with
     * one look at the rings per wake-up instead of one per request).
     */
    List<Sent> awaitAll(List<Sent> sent, Duration bound) {
        long deadline = System.nanoTime() + bound.toNanos();
        List<Sent> missing = new java.util.ArrayList<>(sent);
        while (true) {
            List<Sent> look = missing;
            List<Sent> still = onLoop(() -> {
                for (int q = 0; q < 2; q++) {
                    for (MockDriverQueue.Used used : driver(q).usedEntries()) {
                        returned.put(List.of(q, used.id()), used);
                    }
                }
                List<Sent> left = new java.util.ArrayList<>();
                for (Sent s : look) {
                    if (returned.remove(List.of(s.queue(), s.head())) == null) {
                        left.add(s);
                    }
                }
                return left;
            });
            missing = still;
            long left = deadline - System.nanoTime();
            if (missing.isEmpty() || left < 0) {
                return missing;
            }
            try {
                if (interrupts.tryAcquire(Math.min(left, 1_000_000), TimeUnit.NANOSECONDS)) {
                    interrupts.drainPermits();
                }
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    /** A request's reply if its chain came back within {@code bound}, else null. */
    MockDriverQueue.Used await(Sent s, Duration bound) {
        long deadline = System.nanoTime() + bound.toNanos();
        List<Integer> key = List.of(s.queue(), s.head());
        while (true) {
            MockDriverQueue.Used u = onLoop(() -> {
                for (int q = 0; q < 2; q++) {
                    for (MockDriverQueue.Used used : driver(q).usedEntries()) {
                        returned.put(List.of(q, used.id()), used);
                    }
                }
                return returned.remove(key);
            });
            long left = deadline - System.nanoTime();
            if (u != null || left < 0) {
                return u;
            }
            try {
                // Until the device's next interrupt (one raised since the look above left a permit), at most
                // 1 ms: a chain returned without an interrupt is still found, as by polling.
                if (interrupts.tryAcquire(Math.min(left, 1_000_000), TimeUnit.NANOSECONDS)) {
                    interrupts.drainPermits();
                }
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
    }

    /** Sends a request on the request queue and returns its reply (at most 5 s). */
    FuseClient.Reply call(int opcode, long nodeid, byte[] args) {
        MockDriverQueue.Used u = await(send(VirtioFs.REQUEST_QUEUE, opcode, nodeid, args, 4096), Duration.ofSeconds(5));
        if (u == null) {
            throw new AssertionError("opcode " + opcode + " was not answered within 5 s");
        }
        return FuseClient.decode(u.written());
    }

    /** Closes the device (at most 10 s), then frees guest RAM; RAM a wedged device might still touch is never freed. */
    @Override
    public void close() {
        closeDevice(Duration.ofSeconds(10));
        if (ownsLoop) {
            loopExecutor.shutdownNow();
        } else {
            onLoop(() -> null); // what the device queued there before it closed has run
        }
        if (ownsRam) {
            ram.close();
        }
    }

    /** Closes the device as the VM does, from a thread of its own; fails if that takes longer than {@code bound}. */
    void closeDevice(Duration bound) {
        within(Executors.newVirtualThreadPerTaskExecutor().submit(() -> {
            device.close();
            return null;
        }), bound, "closing the device");
    }
}
