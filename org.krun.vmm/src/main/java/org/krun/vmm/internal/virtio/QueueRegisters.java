package org.krun.vmm.internal.virtio;

import org.krun.spi.virtio.QueueLayout;

/**
 * One queue's registers as the driver writes them before DRIVER_OK (virtio 1.2 §4.2.2: QueueNum,
 * QueueReady, QueueDesc, QueueDriver, QueueDevice). The transport turns them into the device's
 * {@link org.krun.spi.virtio.Virtqueue} at activation; the device never sees them.
 */
final class QueueRegisters {
    final int maxSize;
    int size;
    boolean ready;
    long descTable;
    long availRing;
    long usedRing;

    QueueRegisters(int maxSize) {
        this.maxSize = maxSize;
        reset();
    }

    /** Back to the state after device reset (virtio 1.2 §4.2.2.1: QueueNum holds the maximum). */
    void reset() {
        size = maxSize;
        ready = false;
        descTable = 0;
        availRing = 0;
        usedRing = 0;
    }

    QueueLayout layout() {
        return new QueueLayout(size, descTable, availRing, usedRing);
    }
}
