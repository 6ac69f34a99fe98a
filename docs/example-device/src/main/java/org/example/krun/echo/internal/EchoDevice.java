package org.example.krun.echo.internal;

import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.DescriptorChain;

/**
 * One queue: each chain the driver makes available is returned with its driver-readable bytes copied into
 * its device-writable buffers, as many as fit. The device id, {@value #DEVICE_ID}, is not assigned by
 * virtio 1.2 §5, so no guest driver binds it unless you write one.
 */
final class EchoDevice extends AbstractVirtioDevice<Void> {
    static final int DEVICE_ID = 63;
    static final int QUEUE_SIZE = 64;
    static final int QUEUE = 0;
    /** At most this many bytes are echoed per chain: the guest chooses sizes, the host caps them. */
    static final int MAX_ECHO = 64 * 1024;

    EchoDevice() {
        // name for logs, device id, device-specific features, queues, queue size, configuration space bytes
        super("echo", DEVICE_ID, 0, 1, QUEUE_SIZE, 0);
    }

    @Override
    protected Void onActivate(Active<Void> a) {
        return null; // no per-activation state
    }

    @Override
    protected void onQueueNotify(Active<Void> a, int queue) {
        DescriptorChain chain;
        // pop returns well-formed chains only: malformed ones go back to the driver unused.
        while (a.isCurrent() && (chain = a.pop(queue)) != null) {
            a.addUsed(queue, chain.head(), echo(a, chain));
        }
    }

    /** Copies the chain's readable bytes into its writable buffers; returns how many were written. */
    private int echo(Active<Void> a, DescriptorChain chain) {
        int length = (int) Math.min(MAX_ECHO, Math.min(chain.readableBytes(), chain.writableBytes()));
        try {
            byte[] data = chain.reader(a.memory()).readBytes(length);
            chain.writer(a.memory()).write(data);
            return length;
        } catch (GuestMemoryException e) {
            guestError("buffer outside guest RAM: " + e.getMessage()); // logged at most once per interval
            return 0;
        }
    }
}
