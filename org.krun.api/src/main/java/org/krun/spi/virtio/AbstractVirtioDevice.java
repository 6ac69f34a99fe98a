package org.krun.spi.virtio;

import java.lang.System.Logger.Level;
import java.time.Duration;
import java.util.List;
import java.util.Objects;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.Executor;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

import org.krun.spi.memory.GuestMemory;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * The base every device builds on: what the transport asks of a device before the driver comes (type,
 * features, queues, configuration space), the activation state, guest-error logging with a rate limit,
 * and tracking of requests served off the event loop, so that reset and close wait for work that still
 * touches guest memory. A device writes only its behaviour: {@link #onActivate}, {@link #onQueueNotify},
 * and where it needs them {@link #onDeactivate}, {@link #onReset} and {@link #onClose}.
 *
 * <p>States: inactive (no memory, queues or interrupt: {@link #active()} is null) and active, one
 * {@link Active} per activation, which ends with reset or close. Per-activation state of the device's own
 * ({@code S}) lives in the {@code Active}, so a reset cannot leave any of it behind.
 *
 * <p>Threads: activation, notifications, completions and reset run on the VM's event loop, one at a
 * time; configuration space is read and written from vCPU threads; requests given to
 * {@link Active#submit} run on the device's own executor.
 *
 * @param <S> the device's per-activation state ({@code Void} when it has none)
 */
@ConsumerType
public abstract class AbstractVirtioDevice<S> implements VirtioDevice {

    /** How long reset and close wait, by default, for requests still running off the loop. */
    public static final Duration DEFAULT_DRAIN_TIMEOUT = Duration.ofSeconds(30);
    private static final Duration LOG_INTERVAL = Duration.ofSeconds(10);

    private final String name;
    private final int deviceType;
    private final long deviceFeatures;
    private final int queueCount;
    private final int queueMaxSize;
    private final ConfigSpace config;
    private final System.Logger log;
    private final RateLimitedLog guestErrors;
    private final RateLimitedLog hostErrors;
    private volatile Active<S> active;
    private boolean closed;
    /** Requests of an ended activation that were still running past the drain timeout. */
    private volatile InFlight lingering;

    /**
     * @param name how logs name this device ({@code virtio-blk /srv/disk.img})
     * @param deviceType the virtio device type ({@link VirtioIds})
     * @param deviceFeatures the device-specific features offered
     * @param queueCount the number of queues
     * @param queueMaxSize the largest size of each queue (a power of 2)
     * @param configSize the size of the configuration space, filled through {@link #config()}
     */
    protected AbstractVirtioDevice(String name, int deviceType, long deviceFeatures, int queueCount, int queueMaxSize,
            int configSize) {
        this.name = Objects.requireNonNull(name, "name");
        if (queueCount < 0 || queueMaxSize <= 0 || queueMaxSize > QueueLayout.MAX_SIZE
                || Integer.bitCount(queueMaxSize) != 1) {
            throw new IllegalArgumentException("invalid queue count or size for " + name);
        }
        this.deviceType = deviceType;
        this.deviceFeatures = deviceFeatures;
        this.queueCount = queueCount;
        this.queueMaxSize = queueMaxSize;
        this.config = new ConfigSpace(configSize);
        this.log = System.getLogger(getClass().getName());
        this.guestErrors = new RateLimitedLog(m -> log.log(Level.WARNING, name + ": " + m), LOG_INTERVAL);
        this.hostErrors = new RateLimitedLog(m -> log.log(Level.ERROR, name + ": " + m), LOG_INTERVAL);
    }

    // ---- what the transport asks

    @Override
    public final int deviceType() {
        return deviceType;
    }

    @Override
    public final long deviceFeatures() {
        return deviceFeatures;
    }

    @Override
    public final int queueCount() {
        return queueCount;
    }

    @Override
    public int queueMaxSize(int index) {
        return queueMaxSize;
    }

    @Override
    public final int configSize() {
        return config.size();
    }

    @Override
    public final void readConfig(int offset, byte[] data) {
        config.read(offset, data);
    }

    @Override
    public final void writeConfig(int offset, byte[] data) {
        config.write(offset, data);
        onConfigWritten(offset, data.length);
    }

    // ---- lifecycle

    @Override
    public final void activate(DeviceContext context) {
        Active<S> a = new Active<>(this, context);
        a.state = onActivate(a);
        active = a;
    }

    @Override
    public final void queueNotify(int index) {
        Active<S> a = active;
        if (a == null || !a.current || index < 0 || index >= a.queues.size() || !a.queues.get(index).ready()) {
            return;
        }
        try {
            onQueueNotify(a, index);
        } finally {
            a.flushInterrupts();
        }
    }

    @Override
    public final void reset() {
        endActivation();
        onDeviceReset();
    }

    @Override
    public final void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
        }
        endActivation();
        onClose();
    }

    private void endActivation() {
        Active<S> a = active;
        active = null;
        if (a != null) {
            end(a);
        }
    }

    /** Ends one activation: cancel, wait for requests still running, then let the device release. */
    private void end(Active<S> a) {
        a.current = false;
        try {
            onDeactivate(a);
        } finally {
            if (!a.inFlight.closeAndAwait(drainTimeout())) {
                lingering = a.inFlight;
                log.log(Level.ERROR, name + ": " + a.inFlight.running() + " requests still running "
                        + drainTimeout().toSeconds() + " s after the device stopped");
            }
            a.completions.clear();
            onReset(a);
        }
    }

    @Override
    public boolean touchesGuestMemoryAfterClose() {
        InFlight l = lingering;
        return l != null && l.running() > 0;
    }

    // ---- what a device writes

    /**
     * The driver set DRIVER_OK (on the loop): check what was negotiated and make the per-activation state.
     * Throwing leaves the device inactive and the driver is told the device needs a reset.
     */
    protected abstract S onActivate(Active<S> a);

    /** The driver made buffers available on ready queue {@code queue} (on the loop). */
    protected abstract void onQueueNotify(Active<S> a, int queue);

    /**
     * An activation is ending (reset or close, on the loop): make work of it that may block (a lock
     * wait, a socket read) give up now. Requests still running are awaited after this returns.
     */
    protected void onDeactivate(Active<S> a) {
    }

    /** An activation has ended and no request of it runs any more: release what it held. */
    protected void onReset(Active<S> a) {
    }

    /**
     * The driver reset the device, whether it was active or not (after {@link #onReset}): return what
     * the driver may change outside an activation, such as writable configuration fields, to its initial
     * state (virtio 1.2 §2.4).
     */
    protected void onDeviceReset() {
    }

    /** The VM is gone (after the last activation ended): release what the device holds for its life. */
    protected void onClose() {
    }

    /** The driver wrote {@code length} bytes of configuration space at {@code offset} (on a vCPU thread). */
    protected void onConfigWritten(int offset, int length) {
    }

    /** How long reset and close wait for requests still running; {@link #DEFAULT_DRAIN_TIMEOUT}. */
    protected Duration drainTimeout() {
        return DEFAULT_DRAIN_TIMEOUT;
    }

    // ---- for devices

    /** How logs name this device. */
    public final String name() {
        return name;
    }

    /** The configuration space the driver reads; the device fills and updates it. */
    protected final ConfigSpace config() {
        return config;
    }

    /** The current activation, or null while inactive. */
    protected final Active<S> active() {
        return active;
    }

    /** This device's logger. */
    protected final System.Logger log() {
        return log;
    }

    /** A mistake of the guest's, logged at most once per interval (the rest are counted). */
    protected final void guestError(String message) {
        guestErrors.warn(message);
    }

    /** A host failure while serving the guest, logged at most once per interval. */
    protected final void hostError(String message) {
        hostErrors.warn(message);
    }

    /**
     * Runs {@code task} on {@code a}'s event loop, if {@code a} is still the current activation by then,
     * and raises the interrupts it earned. For work that starts off the loop (host input arriving, a
     * resize). Safe from any thread.
     */
    protected final void onLoop(Active<S> a, Consumer<Active<S>> task) {
        a.loop().execute(() -> {
            if (a.current) {
                try {
                    task.accept(a);
                } finally {
                    a.flushInterrupts();
                }
            }
        });
    }

    /** A request served off the loop: returns the length written into the chain, as {@link Virtqueue#addUsed} takes it. */
    @FunctionalInterface
    public interface Request {
        int run() throws Exception;
    }

    /**
     * One activation of a device: what the transport gave (memory, queues, interrupt, loop), the device's
     * own state for it, and the requests it has running off the loop.
     */
    public static final class Active<S> {
        private final AbstractVirtioDevice<S> device;
        private final DeviceContext context;
        private final GuestMemory memory;
        private final List<Virtqueue> queues;
        private final InFlight inFlight = new InFlight();
        private final Queue<Completion> completions = new ConcurrentLinkedQueue<>();
        private final AtomicBoolean drainPosted = new AtomicBoolean();
        /** Queues with used buffers added since the last interrupt check (loop only). */
        private final boolean[] used;
        private volatile boolean current = true;
        private S state;

        private record Completion(int queue, int head, int length) {
        }

        private Active(AbstractVirtioDevice<S> device, DeviceContext context) {
            this.device = device;
            this.context = context;
            this.memory = context.memory();
            this.queues = List.copyOf(context.queues());
            this.used = new boolean[queues.size()];
        }

        public DeviceContext context() {
            return context;
        }

        public GuestMemory memory() {
            return memory;
        }

        public Virtqueue queue(int index) {
            return queues.get(index);
        }

        public EventLoop loop() {
            return context.eventLoop();
        }

        public boolean hasFeature(long mask) {
            return context.hasFeature(mask);
        }

        /** The device's own state for this activation, as {@link AbstractVirtioDevice#onActivate} made it. */
        public S state() {
            return state;
        }

        /** Whether this is still the device's activation (no reset or close since). */
        public boolean isCurrent() {
            return current;
        }

        /**
         * The next well-formed chain of {@code queue}, or null (on the loop): malformed chains go back to
         * the driver unused and are logged as guest errors; a queue the driver broke (its avail ring, a
         * head out of range) {@link #fail fails} the activation.
         */
        public DescriptorChain pop(int queue) {
            Virtqueue q = queues.get(queue);
            while (current) {
                try {
                    return q.pop(memory);
                } catch (InvalidChainException e) {
                    if (e.head() < 0) {
                        device.guestError("queue " + queue + " unusable: " + e.getMessage());
                        fail(e.getMessage());
                        return null;
                    }
                    device.guestError("queue " + queue + ": malformed descriptor chain returned unused: " + e.getMessage());
                    addUsed(queue, e.head(), 0);
                }
            }
            return null;
        }

        /** Returns chain {@code head} of {@code queue} with {@code length} bytes written (on the loop). */
        public void addUsed(int queue, int head, int length) {
            queues.get(queue).addUsed(memory, head, length);
            used[queue] = true;
        }

        /** Interrupts the driver once for the queues whose used buffers it wants to hear of (on the loop). */
        public void flushInterrupts() {
            boolean any = false;
            for (int i = 0; i < used.length; i++) {
                if (used[i]) {
                    used[i] = false;
                    any |= queues.get(i).needsInterrupt(memory);
                }
            }
            if (any && current) {
                context.interrupt().trigger(InterruptTrigger.QUEUE);
            }
        }

        /** The configuration space changed: tell the driver. */
        public void configChanged() {
            context.interrupt().trigger(InterruptTrigger.CONFIG);
        }

        /**
         * The device cannot go on without a reset (virtio 1.2 §2.1.2): the driver is told, and this
         * activation serves nothing more (it is no longer {@link #isCurrent()}); the driver's reset then
         * ends it as usual. Safe from any thread.
         */
        public void fail(String reason) {
            current = false;
            context.needsReset(reason);
        }

        /**
         * Serves chain {@code head} of {@code queue} on {@code executor}, off the loop: the chain is
         * returned with the length {@code request} gives, or with 0 if it fails (the failure is logged), on
         * the loop and only if this activation is still current then. Reset and close wait for it.
         *
         * @return false when the executor refused the work (it is shutting down); the caller answers the chain
         */
        public boolean submit(Executor executor, int queue, int head, Request request) {
            inFlight.submitted();
            try {
                executor.execute(() -> run(queue, head, request));
                return true;
            } catch (RejectedExecutionException e) {
                inFlight.rejected();
                return false;
            }
        }

        private void run(int queue, int head, Request request) {
            if (!inFlight.start()) {
                return; // the activation ended while this waited: the chain belongs to nobody now
            }
            try {
                int length = 0;
                try {
                    length = request.run();
                } catch (Throwable t) {
                    // Whatever failed (an OutOfMemoryError included), the driver gets its chain back.
                    device.hostError("queue " + queue + ": request failed: " + t);
                }
                complete(queue, head, length);
            } finally {
                inFlight.finish();
            }
        }

        /**
         * Returns chain {@code head} of {@code queue} from any thread: completions are batched and handed
         * back on the loop, with one interrupt per batch; dropped if the activation ended.
         */
        public void complete(int queue, int head, int length) {
            completions.add(new Completion(queue, head, length));
            if (drainPosted.compareAndSet(false, true)) {
                loop().execute(this::drainCompletions);
            }
        }

        private void drainCompletions() {
            drainPosted.set(false);
            if (!current) {
                completions.clear();
                return;
            }
            Completion c;
            while ((c = completions.poll()) != null) {
                addUsed(c.queue(), c.head(), c.length());
            }
            flushInterrupts();
        }

        /**
         * For a snapshot ({@link SnapshottableDevice#saveState()}, on the loop while the vCPUs are paused):
         * waits up to {@code timeout} for every request {@link #submit submitted} off the loop to finish,
         * then returns their chains to the driver at once, so the queues' indices that the transport saves
         * next account for them. Whether nothing is in flight any more; when false, the device must refuse
         * the snapshot (a chain still running would be lost in the restored VM).
         *
         * @since 1.2
         */
        public boolean awaitIdle(Duration timeout) {
            boolean idle = inFlight.awaitIdle(timeout);
            if (current) {
                Completion c;
                while ((c = completions.poll()) != null) {
                    addUsed(c.queue(), c.head(), c.length());
                }
                flushInterrupts();
            }
            return idle;
        }

        /** Requests submitted and not yet finished, for tests and statistics. */
        public int requestsInFlight() {
            return inFlight.count();
        }
    }
}
