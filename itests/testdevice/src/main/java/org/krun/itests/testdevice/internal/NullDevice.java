package org.krun.itests.testdevice.internal;

import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.Virtqueue;

/**
 * A trivial virtio device: one queue whose buffers it returns at once, unread and unwritten. Its device
 * id, {@value #DEVICE_ID}, is not assigned by virtio 1.2 §5, so no guest driver binds it.
 */
final class NullDevice implements VirtioDevice {
    static final int DEVICE_ID = 63;
    private static final int QUEUE_SIZE = 16;

    private volatile DeviceContext context;

    @Override
    public int deviceType() {
        return DEVICE_ID;
    }

    @Override
    public long deviceFeatures() {
        return 0;
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
        return 0;
    }

    @Override
    public void readConfig(int offset, byte[] data) {
        // no configuration space
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // no configuration space
    }

    @Override
    public void activate(DeviceContext context) {
        this.context = context;
    }

    @Override
    public void queueNotify(int index) {
        DeviceContext c = context;
        if (c == null || index != 0) {
            return;
        }
        Virtqueue q = c.queues().get(0);
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        DescriptorChain chain;
        // Malformed chains go back unused (popValid); a broken queue asks the driver for a reset.
        while ((chain = q.popValid(c.memory(), c, message -> { })) != null) {
            q.addUsed(c.memory(), chain.head(), 0);
            used = true;
        }
        if (used && q.needsInterrupt(c.memory())) {
            c.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    @Override
    public void reset() {
        context = null;
    }
}
