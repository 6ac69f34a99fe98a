package org.krun.itests.testdevice.internal;

import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.DescriptorChain;

/**
 * A trivial virtio device: one queue whose buffers it returns at once, unread and unwritten. Its device
 * id, {@value #DEVICE_ID}, is not assigned by virtio 1.2 §5, so no guest driver binds it.
 */
final class NullDevice extends AbstractVirtioDevice<Void> {
    static final int DEVICE_ID = 63;
    private static final int QUEUE_SIZE = 16;

    NullDevice() {
        super("test-null", DEVICE_ID, 0, 1, QUEUE_SIZE, 0);
    }

    @Override
    protected Void onActivate(Active<Void> a) {
        return null;
    }

    @Override
    protected void onQueueNotify(Active<Void> a, int queue) {
        DescriptorChain chain;
        // Malformed chains go back unused; a broken queue asks the driver for a reset (Active.pop).
        while ((chain = a.pop(queue)) != null) {
            a.addUsed(queue, chain.head(), 0);
        }
    }
}
