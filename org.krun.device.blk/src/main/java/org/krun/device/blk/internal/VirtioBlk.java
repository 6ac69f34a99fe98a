package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Arrays;

import org.krun.api.DiskSpec;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioIds;

/**
 * virtio-blk (virtio 1.2 §5.2): one request queue over a {@link DiskBackend}.
 *
 * <p>Threads: the VM's event loop pops chains, parses and checks them ({@link BlkRequest}), and answers at
 * once what needs no I/O (errors, GET_ID, flushes with sync=none). Everything else runs on a small pool of
 * I/O threads, several requests at a time, straight between the image and guest memory; each request
 * writes its status byte there and its chain goes back to the driver on the loop. Requests complete in
 * whatever order their I/O ends.
 *
 * <p>Reset and close wait for the I/O in flight (bounded), so no request touches guest memory after the
 * device let go of it; completions of an earlier activation are dropped.
 */
final class VirtioBlk extends AbstractVirtioDevice<VirtioBlk.Negotiated> implements SnapshottableDevice {

    static final long F_SEG_MAX = 1L << 2;
    static final long F_RO = 1L << 5;
    static final long F_BLK_SIZE = 1L << 6;
    static final long F_FLUSH = 1L << 9;
    static final long F_DISCARD = 1L << 13;
    static final long F_WRITE_ZEROES = 1L << 14;

    static final int REQUEST_QUEUE = 0;
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

    /**
     * The most requests one activation has in flight. A driver that follows the spec never has more chains
     * outstanding than the queue has descriptors; one that posts a head again while it is in flight, or moves
     * the avail index over old entries, must not make the host queue I/O without bound: past this many, the
     * device leaves chains in the ring until requests finish and the driver notifies again.
     */
    static final int MAX_IN_FLIGHT = QUEUE_SIZE;

    /** How long a snapshot waits for I/O in flight before it is refused. */
    static final Duration SNAPSHOT_DRAIN_TIMEOUT = Duration.ofSeconds(10);
    static final int STATE_VERSION = 1;
    static final int STATE_BYTES = 12;

    /** How long reset and close wait for I/O in flight. */
    static final Duration IO_DRAIN_TIMEOUT = Duration.ofSeconds(30);

    /** What one activation negotiated: the limits requests are judged by, and whether writes go through. */
    record Negotiated(BlkRequest.Limits limits, boolean writeThrough) {
    }

    private final DiskBackend disk;
    private final DiskSpec spec;
    private final IoExecutor io;
    private final byte[] deviceId;

    VirtioBlk(DiskBackend disk, DiskSpec spec, IoExecutor io) {
        super("disk " + spec.file(), VirtioIds.BLOCK, features(spec.readOnly()), 1, QUEUE_SIZE, CONFIG_SIZE);
        this.disk = disk;
        this.spec = spec;
        this.io = io;
        this.deviceId = new byte[BlkRequest.ID_BYTES];
        byte[] id = spec.id().getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(id, 0, deviceId, 0, id.length); // NUL-padded; no NUL when it is 20 bytes long
        config().putLong(CONFIG_CAPACITY, disk.capacity() / BlkRequest.SECTOR_SIZE)
                .putInt(CONFIG_SEG_MAX, SEG_MAX)
                .putInt(CONFIG_BLK_SIZE, BLK_SIZE)
                .putShort(CONFIG_NUM_QUEUES, 1);
        if (!spec.readOnly()) {
            config().putInt(CONFIG_MAX_DISCARD_SECTORS, (int) MAX_DISCARD_SECTORS)
                    .putInt(CONFIG_MAX_DISCARD_SEG, MAX_DISCARD_SEG)
                    .putInt(CONFIG_DISCARD_SECTOR_ALIGNMENT, disk.discardGranularity() / BlkRequest.SECTOR_SIZE)
                    .putInt(CONFIG_MAX_WRITE_ZEROES_SECTORS, (int) MAX_WRITE_ZEROES_SECTORS)
                    .putInt(CONFIG_MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SEG)
                    .putByte(CONFIG_WRITE_ZEROES_MAY_UNMAP, 1);
        }
        // Only writeback is writable, and only with VIRTIO_BLK_F_CONFIG_WCE, which is not offered.
    }

    private static long features(boolean readOnly) {
        long f = F_SEG_MAX | F_BLK_SIZE | F_FLUSH;
        return readOnly ? f | F_RO : f | F_DISCARD | F_WRITE_ZEROES;
    }

    DiskSpec spec() {
        return spec;
    }

    @Override
    protected Negotiated onActivate(Active<Negotiated> a) {
        BlkRequest.Limits limits = new BlkRequest.Limits(disk.capacity() / BlkRequest.SECTOR_SIZE, spec.readOnly(),
                a.hasFeature(F_DISCARD), a.hasFeature(F_WRITE_ZEROES), MAX_DISCARD_SEG,
                MAX_DISCARD_SECTORS, MAX_WRITE_ZEROES_SEG, MAX_WRITE_ZEROES_SECTORS);
        // virtio 1.2 §5.2.6.2: when VIRTIO_BLK_F_FLUSH was offered but not negotiated, a completed write is
        // stable: the device is write-through. (sync=full is write-through anyway, sync=none never syncs.)
        boolean writeThrough = spec.sync() == DiskSpec.Sync.RELAXED && !a.hasFeature(F_FLUSH);
        return new Negotiated(limits, writeThrough);
    }

    @Override
    protected void onQueueNotify(Active<Negotiated> a, int queue) {
        DescriptorChain chain;
        while (a.requestsInFlight() < MAX_IN_FLIGHT && (chain = a.pop(REQUEST_QUEUE)) != null) {
            BlkRequest request = BlkRequest.parse(chain, a.memory());
            if (request.status() == null) {
                guestError("request returned unanswered: " + ((BlkRequest.Malformed) request).reason());
                a.addUsed(REQUEST_QUEUE, chain.head(), 0);
                continue;
            }
            int status = BlkRequest.check(request, a.state().limits());
            if (status != BlkRequest.VIRTIO_BLK_S_OK) {
                if (request instanceof BlkRequest.Malformed m) {
                    guestError("malformed request: " + m.reason());
                }
                a.addUsed(REQUEST_QUEUE, chain.head(), answer(request, status));
            } else if (request instanceof BlkRequest.GetId g) {
                a.addUsed(REQUEST_QUEUE, chain.head(), answer(request, getId(g)));
            } else if (request instanceof BlkRequest.Flush && spec.sync() == DiskSpec.Sync.NONE) {
                a.addUsed(REQUEST_QUEUE, chain.head(), answer(request, BlkRequest.VIRTIO_BLK_S_OK));
            } else if (!a.submit(io::execute, REQUEST_QUEUE, chain.head(),
                    () -> answer(request, execute(a.state(), request)))) {
                // the device is closing
                a.addUsed(REQUEST_QUEUE, chain.head(), answer(request, BlkRequest.VIRTIO_BLK_S_IOERR));
            }
        }
    }

    /** Writes the status byte; returns the length to report as used. */
    private static int answer(BlkRequest request, int status) {
        BlkRequest.writeStatus(request, status);
        return request.usedLength();
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

    /** On an I/O thread: one request's I/O; the status to answer with. */
    private int execute(Negotiated n, BlkRequest request) {
        try {
            switch (request) {
                case BlkRequest.Read r -> disk.read(r.sector() * BlkRequest.SECTOR_SIZE, r.data());
                case BlkRequest.Write w -> {
                    disk.write(w.sector() * BlkRequest.SECTOR_SIZE, w.data());
                    if (n.writeThrough()) {
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
            hostError("I/O error answered to the guest: " + e);
            return BlkRequest.VIRTIO_BLK_S_IOERR;
        }
    }

    /** Requests in flight, for tests. */
    int inFlight() {
        Active<Negotiated> a = active();
        return a == null ? 0 : a.requestsInFlight();
    }

    @Override
    protected Duration drainTimeout() {
        return IO_DRAIN_TIMEOUT;
    }

    @Override
    protected void onClose() {
        if (io.shutdown(IO_DRAIN_TIMEOUT)) {
            disk.close();
        } else {
            // An I/O thread is stuck in the kernel: closing the descriptor could hand its number to another
            // file while that thread still uses it. Keep it open, and say so.
            log().log(Level.ERROR, "disk " + spec.file() + ": I/O threads did not finish within "
                    + IO_DRAIN_TIMEOUT.toSeconds() + " s; leaving the image open");
        }
    }

    // ---- snapshots

    /**
     * Without the capacity: a VM restored from a template over a disk of another size raises a configuration
     * change (see {@link #restoreState}), and krun's init waits until the guest kernel has the new capacity
     * and reads the partition table again, so disks of every size share a template.
     */
    @Override
    public byte[] templateKeyConfig() {
        byte[] space = new byte[CONFIG_SIZE];
        readConfig(0, space);
        Arrays.fill(space, CONFIG_CAPACITY, CONFIG_CAPACITY + Long.BYTES, (byte) 0);
        return space;
    }

    /**
     * Snapshots: the requests running on the I/O threads finish first (bounded by
     * {@link #SNAPSHOT_DRAIN_TIMEOUT}; a snapshot is refused past it) and their chains go back to the
     * driver, so the transport's queue indices are the whole queue state. The device's own: the capacity
     * in sectors the guest was shown. The image's contents are not in the snapshot: the restoring
     * configuration names the image, and what the guest cached of it must still be true there.
     */
    @Override
    public byte[] saveState() {
        return saveState(SNAPSHOT_DRAIN_TIMEOUT);
    }

    byte[] saveState(Duration drainTimeout) {
        Active<Negotiated> a = active();
        if (a != null && !a.awaitIdle(drainTimeout)) {
            throw new IllegalStateException(name() + ": " + a.requestsInFlight() + " requests still running after "
                    + drainTimeout.toMillis() + " ms");
        }
        return ByteBuffer.allocate(STATE_BYTES).putInt(STATE_VERSION).putLong(config().getLong(CONFIG_CAPACITY)).array();
    }

    /**
     * Restores on a device over the image the restoring configuration names. If its capacity differs from
     * the saved one, an active device tells the driver with a configuration change (virtio 1.2 §5.2.2: Linux
     * then reads the capacity again), as a resized disk would.
     */
    @Override
    public void restoreState(byte[] state) {
        ByteBuffer b = SnapshottableDevice.openState(name(), state, STATE_BYTES, STATE_VERSION);
        long savedCapacity = b.getLong();
        Active<Negotiated> a = active();
        if (savedCapacity != config().getLong(CONFIG_CAPACITY) && a != null) {
            a.configChanged();
        }
    }
}
