package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;

import org.krun.api.DiskSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-blk (virtio 1.2 §5.2): one request queue over a {@link DiskBackend}.
 *
 * <p>Threads: the VM's event loop pops chains, parses and checks them ({@link BlkRequest}), and answers at
 * once what needs no I/O (errors, GET_ID, flushes with sync=none). Everything else runs on a small pool of
 * I/O threads, several requests at a time, straight between the image and guest memory; each finished
 * request is posted back to the loop, which alone touches the {@link Virtqueue}: it writes the status
 * byte, returns the chain and raises the interrupt. Requests complete in whatever order their I/O ends.
 *
 * <p>Reset and close wait for the I/O in flight (bounded), so no request touches guest memory after the
 * device let go of it; completions of an earlier activation are dropped.
 */
final class VirtioBlk implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBlk.class);

    static final long F_SEG_MAX = 1L << 2;
    static final long F_RO = 1L << 5;
    static final long F_BLK_SIZE = 1L << 6;
    static final long F_FLUSH = 1L << 9;
    static final long F_DISCARD = 1L << 13;
    static final long F_WRITE_ZEROES = 1L << 14;

    static final int QUEUE_SIZE = 256;
    /** Data buffers per request: a full ring less the header and status descriptors (as QEMU offers). */
    static final int SEG_MAX = QUEUE_SIZE - 2;
    static final int BLK_SIZE = 512;
    static final int MAX_DISCARD_SEG = 32;
    /** 1 GiB per discard or write-zeroes range. */
    static final long MAX_DISCARD_SECTORS = 1L << 21;
    static final int MAX_WRITE_ZEROES_SEG = 32;
    static final long MAX_WRITE_ZEROES_SECTORS = 1L << 21;

    // struct virtio_blk_config (virtio 1.2 §5.2.4), up to write_zeroes_may_unmap and its padding
    static final int CONFIG_CAPACITY = 0;
    static final int CONFIG_SIZE_MAX = 8;
    static final int CONFIG_SEG_MAX = 12;
    static final int CONFIG_GEOMETRY = 16;
    static final int CONFIG_BLK_SIZE = 20;
    static final int CONFIG_TOPOLOGY = 24;
    static final int CONFIG_WRITEBACK = 32;
    static final int CONFIG_NUM_QUEUES = 34;
    static final int CONFIG_MAX_DISCARD_SECTORS = 36;
    static final int CONFIG_MAX_DISCARD_SEG = 40;
    static final int CONFIG_DISCARD_SECTOR_ALIGNMENT = 44;
    static final int CONFIG_MAX_WRITE_ZEROES_SECTORS = 48;
    static final int CONFIG_MAX_WRITE_ZEROES_SEG = 52;
    static final int CONFIG_WRITE_ZEROES_MAY_UNMAP = 56;
    static final int CONFIG_SIZE = 60;

    /** How long reset and close wait for I/O in flight. */
    static final Duration IO_DRAIN_TIMEOUT = Duration.ofSeconds(30);

    private sealed interface State permits Inactive, Active {
    }

    private record Inactive() implements State {
    }

    /** One activation: what the transport gave, the limits negotiated, and the requests in flight. */
    private record Active(GuestMemory mem, Virtqueue queue, InterruptTrigger interrupt, EventLoop loop,
            DeviceContext context, BlkRequest.Limits limits, boolean writeThrough, InFlight inFlight,
            Queue<Completion> completed, AtomicBoolean drainPosted) implements State {
    }

    /** A request whose I/O finished, waiting for the loop to return it. */
    private record Completion(int head, BlkRequest request, int status) {
    }

    private static final State INACTIVE = new Inactive();

    private final DiskBackend disk;
    private final DiskSpec spec;
    private final IoExecutor io;
    private final byte[] config;
    private final byte[] deviceId;
    private final AtomicLong guestErrors = new AtomicLong();
    private final AtomicLong hostErrors = new AtomicLong();
    private volatile State state = INACTIVE;
    private boolean closed;

    VirtioBlk(DiskBackend disk, DiskSpec spec, IoExecutor io) {
        this.disk = disk;
        this.spec = spec;
        this.io = io;
        this.config = config(disk, spec.readOnly());
        this.deviceId = new byte[BlkRequest.ID_BYTES];
        byte[] id = spec.id().getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(id, 0, deviceId, 0, id.length); // NUL-padded; no NUL when it is 20 bytes long
    }

    private static byte[] config(DiskBackend disk, boolean readOnly) {
        ByteBuffer b = ByteBuffer.allocate(CONFIG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(CONFIG_CAPACITY, disk.capacity() / BlkRequest.SECTOR_SIZE);
        b.putInt(CONFIG_SEG_MAX, SEG_MAX);
        b.putInt(CONFIG_BLK_SIZE, BLK_SIZE);
        b.putShort(CONFIG_NUM_QUEUES, (short) 1);
        if (!readOnly) {
            b.putInt(CONFIG_MAX_DISCARD_SECTORS, (int) MAX_DISCARD_SECTORS);
            b.putInt(CONFIG_MAX_DISCARD_SEG, MAX_DISCARD_SEG);
            b.putInt(CONFIG_DISCARD_SECTOR_ALIGNMENT, disk.discardGranularity() / BlkRequest.SECTOR_SIZE);
            b.putInt(CONFIG_MAX_WRITE_ZEROES_SECTORS, (int) MAX_WRITE_ZEROES_SECTORS);
            b.putInt(CONFIG_MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SEG);
            b.put(CONFIG_WRITE_ZEROES_MAY_UNMAP, (byte) 1);
        }
        return b.array();
    }

    DiskSpec spec() {
        return spec;
    }

    @Override
    public int deviceType() {
        return VirtioIds.BLOCK;
    }

    @Override
    public long deviceFeatures() {
        long f = F_SEG_MAX | F_BLK_SIZE | F_FLUSH;
        return spec.readOnly() ? f | F_RO : f | F_DISCARD | F_WRITE_ZEROES;
    }

    @Override
    public int queueCount() {
        return 1;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public void readConfig(int offset, byte[] data) {
        System.arraycopy(config, offset, data, 0, data.length);
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // Only writeback is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    }

    @Override
    public void activate(DeviceContext context) {
        BlkRequest.Limits limits = new BlkRequest.Limits(disk.capacity() / BlkRequest.SECTOR_SIZE, spec.readOnly(),
                context.hasFeature(F_DISCARD), context.hasFeature(F_WRITE_ZEROES), MAX_DISCARD_SEG,
                MAX_DISCARD_SECTORS, MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SECTORS);
        // virtio 1.2 §5.2.6.2: when VIRTIO_BLK_F_FLUSH was offered but not negotiated, a completed write is
        // stable: the device is write-through. (sync=full is write-through anyway, sync=none never syncs.)
        boolean writeThrough = spec.sync() == DiskSpec.Sync.RELAXED && !context.hasFeature(F_FLUSH);
        state = new Active(context.memory(), context.queues().get(0), context.interrupt(), context.eventLoop(),
                context, limits, writeThrough, new InFlight(), new ConcurrentLinkedQueue<>(), new AtomicBoolean());
    }

    @Override
    public void queueNotify(int index) {
        if (index != 0 || !(state instanceof Active a) || !a.queue().ready()) {
            return;
        }
        boolean answered = false;
        DescriptorChain chain;
        while ((chain = pop(a)) != null) {
            BlkRequest request = BlkRequest.parse(chain, a.mem());
            if (request.status() == null) {
                guestError("request returned unanswered: {}", ((BlkRequest.Malformed) request).reason());
                a.queue().addUsed(a.mem(), chain.head(), 0);
                answered = true;
                continue;
            }
            int status = BlkRequest.check(request, a.limits());
            if (status != BlkRequest.VIRTIO_BLK_S_OK) {
                if (request instanceof BlkRequest.Malformed m) {
                    guestError("malformed request: {}", m.reason());
                }
                answer(a, chain.head(), request, status);
                answered = true;
            } else if (request instanceof BlkRequest.GetId g) {
                answer(a, chain.head(), request, getId(g));
                answered = true;
            } else if (request instanceof BlkRequest.Flush && spec.sync() == DiskSpec.Sync.NONE) {
                answer(a, chain.head(), request, BlkRequest.VIRTIO_BLK_S_OK);
                answered = true;
            } else {
                submit(a, chain.head(), request);
            }
        }
        if (answered && a.queue().needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    /** Takes the next chain; a malformed one is returned unused, and a broken queue asks for a reset. */
    private DescriptorChain pop(Active a) {
        return a.queue().popValid(a.mem(), a.context(), m -> guestError("malformed descriptor chain returned unused: {}", m));
    }

    private static void answer(Active a, int head, BlkRequest request, int status) {
        BlkRequest.writeStatus(request, status);
        a.queue().addUsed(a.mem(), head, request.usedLength());
    }

    private int getId(BlkRequest.GetId g) {
        long left = BlkRequest.ID_BYTES;
        int at = 0;
        for (MemorySegment s : g.data()) {
            int n = (int) Math.min(left, s.byteSize());
            MemorySegment.copy(deviceId, at, s, JAVA_BYTE, 0, n);
            at += n;
            left -= n;
        }
        return BlkRequest.VIRTIO_BLK_S_OK;
    }

    // ---- I/O off the loop

    private void submit(Active a, int head, BlkRequest request) {
        a.inFlight().submitted();
        try {
            io.execute(() -> runIo(a, head, request));
        } catch (RejectedExecutionException e) {
            a.inFlight().rejected();
            answer(a, head, request, BlkRequest.VIRTIO_BLK_S_IOERR); // the device is closing
        }
    }

    /** On an I/O thread: one request's I/O, then its completion goes back to the loop. */
    private void runIo(Active a, int head, BlkRequest request) {
        if (!a.inFlight().start()) {
            return; // reset or closed while queued: the chain belongs to nobody now
        }
        try {
            int status = execute(a, request);
            a.completed().add(new Completion(head, request, status));
            if (a.drainPosted().compareAndSet(false, true)) {
                a.loop().execute(() -> drainCompletions(a));
            }
        } finally {
            a.inFlight().finish();
        }
    }

    private int execute(Active a, BlkRequest request) {
        try {
            switch (request) {
                case BlkRequest.Read r -> disk.read(r.sector() * BlkRequest.SECTOR_SIZE, r.data());
                case BlkRequest.Write w -> {
                    disk.write(w.sector() * BlkRequest.SECTOR_SIZE, w.data());
                    if (a.writeThrough()) {
                        disk.flush();
                    }
                }
                case BlkRequest.Flush f -> {
                    if (spec.sync() != DiskSpec.Sync.NONE) {
                        disk.flush();
                    }
                }
                case BlkRequest.Discard d -> {
                    for (BlkRequest.Range r : d.ranges()) {
                        disk.discard(r.sector() * BlkRequest.SECTOR_SIZE, r.numSectors() * BlkRequest.SECTOR_SIZE);
                    }
                }
                case BlkRequest.WriteZeroes z -> {
                    for (BlkRequest.Range r : z.ranges()) {
                        disk.writeZeroes(r.sector() * BlkRequest.SECTOR_SIZE, r.numSectors() * BlkRequest.SECTOR_SIZE,
                                (r.flags() & BlkRequest.FLAG_UNMAP) != 0);
                    }
                }
                default -> throw new IllegalStateException("not an I/O request: " + request);
            }
            return BlkRequest.VIRTIO_BLK_S_OK;
        } catch (IOException | RuntimeException e) {
            long n = hostErrors.incrementAndGet();
            if (n <= 10 || n % 1000 == 0) {
                LOG.warn("disk {}: I/O error answered to the guest ({} so far): {}", spec.file(), n, e.toString());
            }
            return BlkRequest.VIRTIO_BLK_S_IOERR;
        }
    }

    /** On the loop: returns every finished request to the driver and interrupts once. */
    private void drainCompletions(Active a) {
        a.drainPosted().set(false);
        if (state != a) {
            a.completed().clear();
            return;
        }
        boolean any = false;
        Completion c;
        while ((c = a.completed().poll()) != null) {
            answer(a, c.head(), c.request(), c.status());
            any = true;
        }
        if (any && a.queue().needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    private void guestError(String format, String detail) {
        long n = guestErrors.incrementAndGet();
        if (n <= 10 || n % 1000 == 0) {
            LOG.warn("disk {}: " + format + " ({} guest errors so far)", spec.file(), detail, n);
        } else {
            LOG.debug("disk {}: " + format, spec.file(), detail);
        }
    }

    // ---- lifecycle

    @Override
    public void reset() {
        State s = state;
        state = INACTIVE;
        if (s instanceof Active a) {
            if (!a.inFlight().closeAndAwait(IO_DRAIN_TIMEOUT)) {
                LOG.error("disk {}: I/O still running {} after reset", spec.file(), IO_DRAIN_TIMEOUT);
            }
            a.completed().clear();
        }
    }

    /** Requests in flight, for tests. */
    int inFlight() {
        return state instanceof Active a ? a.inFlight().count() : 0;
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        State s = state;
        state = INACTIVE;
        if (s instanceof Active a) {
            a.inFlight().close();
        }
        if (io.shutdown(IO_DRAIN_TIMEOUT)) {
            disk.close();
        } else {
            // An I/O thread is stuck in the kernel: closing the descriptor could hand its number to another
            // file while that thread still uses it. Keep it open, and say so.
            LOG.error("disk {}: I/O threads did not finish within {}; leaving the image open", spec.file(),
                    IO_DRAIN_TIMEOUT);
        }
    }

    /**
     * The requests of one activation between submission and completion. Reset closes it: requests not yet
     * started then never start, and reset waits only for the ones running.
     */
    static final class InFlight {
        private int queued;
        private int running;
        private boolean closed;

        synchronized void submitted() {
            queued++;
        }

        synchronized void rejected() {
            queued--;
        }

        /** An I/O thread picks a request up; false when the activation has ended (skip it). */
        synchronized boolean start() {
            queued--;
            if (closed) {
                return false;
            }
            running++;
            return true;
        }

        synchronized void finish() {
            if (--running == 0) {
                notifyAll();
            }
        }

        synchronized int count() {
            return queued + running;
        }

        synchronized void close() {
            closed = true;
        }

        /** Closes, then waits up to {@code timeout} for the running requests; whether they all finished. */
        synchronized boolean closeAndAwait(Duration timeout) {
            closed = true;
            long deadline = System.nanoTime() + timeout.toNanos();
            boolean interrupted = false;
            try {
                while (running > 0) {
                    long left = deadline - System.nanoTime();
                    if (left <= 0) {
                        return false;
                    }
                    try {
                        wait(Math.max(1, left / 1_000_000));
                    } catch (InterruptedException e) {
                        interrupted = true;
                    }
                }
                return true;
            } finally {
                if (interrupted) {
                    Thread.currentThread().interrupt();
                }
            }
        }
    }
}
