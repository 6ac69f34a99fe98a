package org.krun.device.rng.internal;

import java.lang.foreign.MemorySegment;
import java.util.List;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.posix.PosixException;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.InvalidChainException;
import org.krun.spi.virtio.RateLimitedLog;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-rng (virtio 1.2 §5.4): one requestq; the device fills each device-writable buffer the driver
 * makes available with random bytes from an {@link EntropySource} (the host's getrandom) and returns it
 * with the number of bytes written. No feature bits, no configuration space.
 *
 * <p>All queue work runs on the VM's event loop. One request takes at most {@link #MAX_BYTES_PER_REQUEST}:
 * §5.4.6.2 lets the device use less than the whole buffer, and the bound keeps a guest from having the
 * host spend long on one chain.
 */
final class VirtioRng implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioRng.class);

    static final int REQUESTQ = 0;
    static final int QUEUE_SIZE = 64;
    /** The most random bytes one descriptor chain receives. Linux asks for 64 bytes at a time. */
    static final int MAX_BYTES_PER_REQUEST = 64 * 1024;

    private sealed interface State permits Inactive, Active {
    }

    private record Inactive() implements State {
    }

    private record Active(DeviceContext context, GuestMemory mem, Virtqueue requestq) implements State {
    }

    private static final State INACTIVE = new Inactive();

    private final EntropySource source;
    private final RateLimitedLog guestErrors = new RateLimitedLog(LOG::warn, java.time.Duration.ofSeconds(10));
    private volatile State state = INACTIVE;
    /** Written on the event loop only; volatile for readers elsewhere (tests, close). */
    private volatile long bytesServed;
    private volatile long requestsServed;

    VirtioRng(EntropySource source) {
        this.source = source;
    }

    @Override
    public int deviceType() {
        return VirtioIds.ENTROPY;
    }

    @Override
    public long deviceFeatures() {
        return 0; // §5.4.3: none
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
        return 0; // §5.4.4: none
    }

    @Override
    public void readConfig(int offset, byte[] data) {
        // no configuration space: the transport never calls this with configSize() 0
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // no configuration space
    }

    @Override
    public void activate(DeviceContext context) {
        state = new Active(context, context.memory(), context.queues().get(REQUESTQ));
    }

    @Override
    public void reset() {
        state = INACTIVE;
    }

    @Override
    public void queueNotify(int index) {
        if (index != REQUESTQ || !(state instanceof Active a) || !a.requestq().ready()) {
            return;
        }
        boolean used = false;
        DescriptorChain chain;
        while ((chain = pop(a)) != null) {
            int written = fill(a, chain);
            a.requestq().addUsed(a.mem(), chain.head(), written);
            used = true;
            if (!(state instanceof Active)) {
                break; // a host failure asked for a reset
            }
        }
        if (used && a.requestq().needsInterrupt(a.mem())) {
            a.context().interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    /** Fills the chain's device-writable buffers (up to the bound); returns the bytes written. */
    private int fill(Active a, DescriptorChain chain) {
        if (chain.readableBytes() > 0) {
            // §5.4.6.1: the driver MUST NOT place driver-readable buffers into the queue. Ignore them.
            guestErrors.warn("virtio-rng: request with " + chain.readableBytes() + " driver-readable bytes; ignored");
        }
        ChainWriter w = chain.writer(a.mem());
        int length = (int) Math.min(w.remaining(), MAX_BYTES_PER_REQUEST);
        if (length == 0) {
            guestErrors.warn("virtio-rng: request without a device-writable buffer");
            return 0;
        }
        List<MemorySegment> buffers;
        try {
            // Resolves every buffer against guest RAM before anything is written.
            buffers = w.take(length);
        } catch (GuestMemoryException e) {
            guestErrors.warn("virtio-rng: request buffer outside guest RAM: " + e.getMessage());
            return 0;
        }
        try {
            for (MemorySegment b : buffers) {
                source.fill(b);
            }
        } catch (PosixException e) {
            LOG.error("virtio-rng: the host cannot provide random bytes: {}", e.getMessage());
            a.context().needsReset("host entropy source failed: " + e.getMessage());
            state = INACTIVE;
            return 0;
        }
        bytesServed += length;
        requestsServed++;
        return length;
    }

    /** Takes the next chain; a malformed one goes back unused, and a broken queue asks for a reset. */
    private DescriptorChain pop(Active a) {
        while (true) {
            try {
                return a.requestq().pop(a.mem());
            } catch (InvalidChainException e) {
                if (e.head() < 0) {
                    // virtio 1.2 §2.1.2: no more buffers consumed until the driver resets the device.
                    guestErrors.warn("virtio-rng: requestq unusable: " + e.getMessage());
                    a.context().needsReset(e.getMessage());
                    state = INACTIVE;
                    return null;
                }
                guestErrors.warn("virtio-rng: malformed descriptor chain returned unused: " + e.getMessage());
                a.requestq().addUsed(a.mem(), e.head(), 0);
            }
        }
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
    public void close() {
        LOG.debug("virtio-rng: served {} bytes in {} requests", bytesServed, requestsServed);
    }
}
