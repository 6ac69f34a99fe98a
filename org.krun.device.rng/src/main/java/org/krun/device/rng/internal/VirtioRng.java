package org.krun.device.rng.internal;

import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.util.List;

import org.krun.posix.PosixException;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.VirtioIds;

/**
 * virtio-rng (virtio 1.2 §5.4): one requestq; the device fills each device-writable buffer the driver
 * makes available with random bytes from an {@link EntropySource} (the host's getrandom) and returns it
 * with the number of bytes written. No feature bits (§5.4.3), no configuration space (§5.4.4).
 *
 * <p>All queue work runs on the VM's event loop. One request takes at most {@link #MAX_BYTES_PER_REQUEST}:
 * §5.4.6.2 lets the device use less than the whole buffer, and the bound keeps a guest from having the
 * host spend long on one chain.
 */
final class VirtioRng extends AbstractVirtioDevice<Void> implements SnapshottableDevice {

    static final int REQUESTQ = 0;
    static final int QUEUE_SIZE = 64;
    /** The most random bytes one descriptor chain receives. Linux asks for 64 bytes at a time. */
    static final int MAX_BYTES_PER_REQUEST = 64 * 1024;

    private final EntropySource source;
    /** Written on the event loop only; volatile for readers elsewhere (tests, close). */
    private volatile long bytesServed;
    private volatile long requestsServed;

    VirtioRng(EntropySource source) {
        super("virtio-rng", VirtioIds.ENTROPY, 0, 1, QUEUE_SIZE, 0);
        this.source = source;
    }

    @Override
    protected Void onActivate(Active<Void> a) {
        return null;
    }

    @Override
    protected void onQueueNotify(Active<Void> a, int queue) {
        DescriptorChain chain;
        while (a.isCurrent() && (chain = a.pop(REQUESTQ)) != null) {
            a.addUsed(REQUESTQ, chain.head(), fill(a, chain));
        }
    }

    /** Fills the chain's device-writable buffers (up to the bound); returns the bytes written. */
    private int fill(Active<Void> a, DescriptorChain chain) {
        if (chain.readableBytes() > 0) {
            // §5.4.6.1: the driver MUST NOT place driver-readable buffers into the queue. Ignore them.
            guestError("request with " + chain.readableBytes() + " driver-readable bytes; ignored");
        }
        ChainWriter w = chain.writer(a.memory());
        int length = (int) Math.min(w.remaining(), MAX_BYTES_PER_REQUEST);
        if (length == 0) {
            guestError("request without a device-writable buffer");
            return 0;
        }
        List<MemorySegment> buffers;
        try {
            // Resolves every buffer against guest RAM before anything is written.
            buffers = w.take(length);
        } catch (GuestMemoryException e) {
            guestError("request buffer outside guest RAM: " + e.getMessage());
            return 0;
        }
        try {
            for (MemorySegment b : buffers) {
                source.fill(b);
            }
        } catch (PosixException e) {
            hostError("the host cannot provide random bytes: " + e.getMessage());
            a.fail("host entropy source failed: " + e.getMessage());
            return 0;
        }
        bytesServed += length;
        requestsServed++;
        return length;
    }

    /** Random bytes given to the guest so far. */
    long bytesServed() {
        return bytesServed;
    }

    /** Requests answered with at least one byte so far. */
    long requestsServed() {
        return requestsServed;
    }

    @Override
    protected void onClose() {
        log().log(Level.DEBUG, () -> "virtio-rng: served " + bytesServed + " bytes in " + requestsServed + " requests");
    }

    /**
     * Snapshots: nothing of its own. Every chain is answered within the notification that took it, so the
     * transport's queue indices are the whole state.
     */
    @Override
    public byte[] saveState() {
        return new byte[0];
    }

    @Override
    public void restoreState(byte[] state) {
        if (state.length != 0) {
            throw new IllegalArgumentException("virtio-rng has no state of its own; the snapshot gives it " + state.length + " bytes");
        }
    }
}
