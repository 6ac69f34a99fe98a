package org.krun.device.blk.internal;

import java.nio.file.Path;
import java.util.List;

import org.krun.api.DiskSpec;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;

/**
 * A {@link VirtioBlk} activated against the driver-side mock queue: test guest memory, one request queue,
 * the fake device context (inline event loop) and a {@link ManualExecutor} for its I/O.
 */
final class BlkHarness implements AutoCloseable {
    final TestGuestMemory ram = TestGuestMemory.create(32 << 20);
    final MockDriverQueue driver = new MockDriverQueue(ram, VirtioBlk.QUEUE_SIZE);
    final ManualExecutor io;
    final VirtioBlk device;
    final FakeDeviceContext context;

    /** {@code features}: the driver's, or -1 for everything the device offers. */
    BlkHarness(DiskBackend disk, DiskSpec spec, ManualExecutor io, long features) {
        this.io = io;
        this.device = new VirtioBlk(disk, spec, io);
        long accepted = features == -1 ? device.deviceFeatures() | VirtioFeatures.VERSION_1 : features;
        this.context = new FakeDeviceContext(ram.memory(), accepted, List.of(driver.configuredQueue()));
        device.activate(context);
    }

    BlkHarness(DiskBackend disk, DiskSpec spec) {
        this(disk, spec, ManualExecutor.direct(), -1);
    }

    static DiskSpec spec() {
        return DiskSpec.raw(Path.of("/test/disk.img"));
    }

    /** The driver kicks the queue. */
    void kick() {
        device.queueNotify(0);
    }

    List<MockDriverQueue.Used> used() {
        return driver.usedEntries();
    }

    /** Kicks and returns the single chain that came back. */
    MockDriverQueue.Used one() {
        kick();
        List<MockDriverQueue.Used> u = used();
        if (u.size() != 1) {
            throw new AssertionError("expected one used chain, got " + u.size());
        }
        return u.get(0);
    }

    @Override
    public void close() {
        device.close();
        ram.close();
    }
}
