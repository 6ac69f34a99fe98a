package org.krun.device.virtiofs.internal;

import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.krun.api.FsShareSpec;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.WorkerPool;

/**
 * virtio-fs (virtio 1.2 §5.11): a hiprio queue and one request queue, served by a {@link FuseServer} over a
 * {@link PassthroughFs} of the share, one per activation.
 *
 * <p>Threads: the hiprio queue (FORGET, BATCH_FORGET, INTERRUPT: quick, never waiting) is served on the
 * VM's event loop, so an INTERRUPT is never stuck behind the requests it interrupts (§5.11.6.2: the device
 * must not pause the hiprio queue for activity on a request queue); other opcodes there are refused. Requests
 * run on a small pool of workers (a {@link WorkerPool}: threads only while there are requests), several in
 * flight at once, except those that may wait for a lock
 * (SETLKW), which get a virtual thread each, so waiting locks never starve the pool. Completions go back to
 * the event loop, the only thread that touches the queues.
 *
 * <p>Bounds: at most {@link #MAX_IN_FLIGHT} requests are in flight (a driver may make a head available
 * again while the device still holds it: that must not grow work without end); beyond, chains wait in the
 * ring until requests finish. Each turn of the loop takes at most {@link #BATCH} chains from a queue, then
 * yields. Host descriptors are bounded by the share's {@link FsLimits}.
 *
 * <p>Reset and close first end every lock wait ({@link FuseServer#cancelWaits}), then the base waits for
 * the requests still running, then the filesystem's descriptors are closed.
 */
final class VirtioFs extends AbstractVirtioDevice<VirtioFs.Session> implements SnapshottableDevice {

    static final int HIPRIO_QUEUE = 0;
    static final int REQUEST_QUEUE = 1;
    static final int QUEUE_SIZE = 1024;
    /** struct virtio_fs_config: char tag[36]; le32 num_request_queues. */
    static final int CONFIG_SIZE = 40;
    static final int CONFIG_NUM_REQUEST_QUEUES = 36;
    static final int MAX_WORKERS = 16;
    /** How long an idle worker waits for a request before it ends: an idle share holds no thread. */
    static final Duration WORKER_KEEP_ALIVE = Duration.ofSeconds(5);
    static final int MAX_IN_FLIGHT = QUEUE_SIZE;
    static final int BATCH = 256;
    /** How long a snapshot waits for requests running on the workers before it is refused. */
    static final Duration SNAPSHOT_DRAIN_TIMEOUT = Duration.ofSeconds(5);
    static final int STATE_VERSION = 1;
    static final int STATE_BYTES = 4;
    /** The DAX window's shared memory region (virtio 1.2 §5.11.5: VIRTIO_FS_SHMCAP_ID_CACHE). */
    static final int SHM_CACHE = 0;

    /** One activation: the server, and the requests it has in flight. */
    static final class Session {
        final FuseServer server;
        final AtomicInteger inFlight = new AtomicInteger();
        /** Set when serving stopped at {@link #MAX_IN_FLIGHT}: the next request to finish resumes it. */
        final AtomicBoolean stalled = new AtomicBoolean();

        Session(FuseServer server) {
            this.server = server;
        }
    }

    private final FsShareSpec spec;
    private final FsLimits limits;
    private final WorkerPool workers;
    private final ExecutorService lockWaiters;

    VirtioFs(FsShareSpec spec) {
        this(spec, FsLimits.forThisProcess());
    }

    VirtioFs(FsShareSpec spec, FsLimits limits) {
        super("virtio-fs " + spec.tag(), VirtioIds.FS, 0, 2, QUEUE_SIZE, CONFIG_SIZE);
        this.spec = spec;
        this.limits = limits;
        // read-only (virtio 1.2 §5.11.4)
        config().putBytes(0, spec.tag().getBytes(StandardCharsets.UTF_8)).putInt(CONFIG_NUM_REQUEST_QUEUES, 1);
        String name = "krun-fs-" + spec.tag().replace('/', '_');
        this.workers = new WorkerPool(name, MAX_WORKERS, WORKER_KEEP_ALIVE);
        this.lockWaiters = Executors.newThreadPerTaskExecutor(Thread.ofVirtual().name(name + "-lock-", 1).factory());
    }

    /** With a DAX window: shared memory region {@value #SHM_CACHE} of the share's window size. */
    @Override
    public List<SharedMemoryRegion> sharedMemoryRegions() {
        return spec.daxWindowBytes() == 0 ? List.of() : List.of(new SharedMemoryRegion(SHM_CACHE, spec.daxWindowBytes()));
    }

    @Override
    protected Session onActivate(Active<Session> a) {
        PassthroughFs fs = new PassthroughFs(spec.directory(), spec.readOnly(), limits);
        // The window holds one piece per 2 MiB (what the guest's kernel maps); a guest mapping smaller pieces gets fewer.
        DaxWindow dax = spec.daxWindowBytes() == 0 ? null : a.context().sharedMemory(SHM_CACHE)
                .map(shm -> new DaxWindow(shm, (int) (shm.size() / FsShareSpec.DAX_GRANULE))).orElse(null);
        return new Session(new FuseServer(fs, dax, this::guestError, this::hostError));
    }

    @Override
    protected void onDeactivate(Active<Session> a) {
        a.state().server.cancelWaits();
    }

    @Override
    protected void onReset(Active<Session> a) {
        DaxWindow dax = a.state().server.dax();
        if (dax != null) {
            dax.close();
        }
        a.state().server.fs().close();
    }

    @Override
    protected void onQueueNotify(Active<Session> a, int queue) {
        if (queue == HIPRIO_QUEUE) {
            serveHiprio(a);
        } else if (queue == REQUEST_QUEUE) {
            serveRequests(a);
        }
    }

    /** FORGET, BATCH_FORGET and INTERRUPT, on the loop in order; none replies, none waits. */
    private void serveHiprio(Active<Session> a) {
        for (int i = 0; i < BATCH; i++) {
            DescriptorChain chain = a.pop(HIPRIO_QUEUE);
            if (chain == null) {
                return;
            }
            int len = 0;
            try {
                len = a.state().server.handleHighPriority(chain.reader(a.memory()), chain.writer(a.memory()));
            } catch (Throwable t) {
                hostError("hiprio request failed: " + t); // answered all the same
            }
            a.addUsed(HIPRIO_QUEUE, chain.head(), len);
        }
        onLoop(a, this::serveHiprio); // more may be waiting: after what else the loop has to do
    }

    private void serveRequests(Active<Session> a) {
        Session s = a.state();
        for (int i = 0; i < BATCH; i++) {
            if (s.inFlight.get() >= MAX_IN_FLIGHT) {
                s.stalled.set(true);
                if (s.inFlight.get() >= MAX_IN_FLIGHT || !s.stalled.compareAndSet(true, false)) {
                    return; // the next request to finish resumes
                }
            }
            DescriptorChain chain = a.pop(REQUEST_QUEUE);
            if (chain == null) {
                return;
            }
            boolean mayWait;
            try {
                mayWait = FuseServer.mayWait(chain.reader(a.memory()));
            } catch (RuntimeException e) {
                mayWait = false; // the worker answers what it can of it
            }
            s.inFlight.incrementAndGet();
            if (!a.submit(mayWait ? lockWaiters : workers, REQUEST_QUEUE, chain.head(), () -> serve(a, chain))) {
                s.inFlight.decrementAndGet();
                a.addUsed(REQUEST_QUEUE, chain.head(), 0); // the device is closing
            }
        }
        onLoop(a, this::serveRequests);
    }

    /** On a worker: one request; then, if serving had stopped at the in-flight bound, resume it on the loop. */
    private int serve(Active<Session> a, DescriptorChain chain) {
        Session s = a.state();
        try {
            return s.server.handle(chain.reader(a.memory()), chain.writer(a.memory()));
        } finally {
            s.inFlight.decrementAndGet();
            if (s.stalled.compareAndSet(true, false)) {
                onLoop(a, this::serveRequests);
            }
        }
    }

    /** This activation's session, or null while inactive (for tests). */
    Session session() {
        Active<Session> a = active();
        return a == null ? null : a.state();
    }

    /** Requests submitted and not yet finished in this activation (for tests). */
    int requestsInFlight() {
        Active<Session> a = active();
        return a == null ? 0 : a.requestsInFlight();
    }

    @Override
    protected void onClose() {
        workers.shutdownNow();
        lockWaiters.shutdownNow();
        try {
            if (!workers.awaitTermination(Duration.ofSeconds(5)) || !lockWaiters.awaitTermination(5, TimeUnit.SECONDS)) {
                log().log(Level.WARNING, "virtio-fs workers for " + spec.tag() + " did not stop");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    // ---- snapshots

    /**
     * Snapshots: only of a session in which the guest holds nothing on the host. A FUSE session's node ids
     * and file handles stand for host descriptors (O_PATH inodes, open files, OFD locks), which cannot go
     * into a snapshot, so a snapshot is refused, with one line, once the guest knows any inode besides the
     * root (node id 1, which a restored device gives to the share's directory again), has a file or directory
     * open, holds or waits for a lock, or has a request that does not finish within
     * {@link #SNAPSHOT_DRAIN_TIMEOUT}. Before the guest's FUSE_INIT, or after it with only the root known,
     * nothing is lost: the session's negotiated options live in the guest, this server keeps none, and a
     * restored device (a new server over the directory the restoring configuration names) answers the
     * guest's next request, or a new FUSE_INIT, as the old one would have.
     */
    @Override
    public byte[] saveState() {
        return saveState(SNAPSHOT_DRAIN_TIMEOUT);
    }

    byte[] saveState(Duration drainTimeout) {
        Active<Session> a = active();
        if (a != null) {
            FuseServer server = a.state().server;
            int waiting = server.waits().waiting();
            if (waiting > 0) {
                throw new IllegalStateException(name() + ": the guest waits for " + waiting
                        + " file locks; a FUSE session's host state cannot go into a snapshot");
            }
            if (!a.awaitIdle(drainTimeout)) {
                throw new IllegalStateException(name() + ": " + a.requestsInFlight() + " requests still running after "
                        + drainTimeout.toMillis() + " ms");
            }
            DaxWindow dax = server.dax();
            if (dax != null && dax.mappings() > 0) {
                throw new IllegalStateException(name() + ": the guest has " + dax.mappings()
                        + " files mapped in its DAX window (host file mappings cannot go into a snapshot)");
            }
            PassthroughFs fs = server.fs();
            int inodes = fs.inodeCount() - 1;
            int handles = fs.handleCount();
            int lockOwners = fs.lockOwnerCount();
            if (inodes > 0 || handles > 0 || lockOwners > 0) {
                throw new IllegalStateException(name() + ": the guest holds " + inodes + " inodes, " + handles
                        + " open files and " + lockOwners + " lock owners (host descriptors cannot go into a snapshot)");
            }
        }
        return ByteBuffer.allocate(STATE_BYTES).putInt(STATE_VERSION).array();
    }

    @Override
    public void restoreState(byte[] state) {
        SnapshottableDevice.openState(name(), state, STATE_BYTES, STATE_VERSION);
    }
}
