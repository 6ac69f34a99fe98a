package org.krun.spi.virtio;

import java.util.List;
import java.util.Optional;

import org.krun.spi.memory.GuestMemory;
import org.osgi.annotation.versioning.ProviderType;

/** What a device receives when the driver sets DRIVER_OK; valid until the device is reset. */
@ProviderType
public interface DeviceContext {

    GuestMemory memory();

    /** The features the driver accepted. */
    long driverFeatures();

    default boolean hasFeature(long mask) {
        return (driverFeatures() & mask) == mask;
    }

    /** The device's queues, in index order; a queue the driver did not enable is not {@link Virtqueue#ready()}. */
    List<Virtqueue> queues();

    InterruptTrigger interrupt();

    EventLoop eventLoop();

    /**
     * The shared memory region {@code id} the device asked for ({@link VirtioDevice#sharedMemoryRegions()}),
     * as placed in guest memory; empty for an id it did not ask for, or when the hypervisor could not place
     * it. Valid until the device is reset, which removes every mapping. Since 1.6.
     */
    default Optional<SharedMemory> sharedMemory(int id) {
        return Optional.empty();
    }

    /**
     * The device hit an error it cannot recover from without a reset (virtio 1.2 §2.1.2): the transport
     * sets DEVICE_NEEDS_RESET and tells the driver.
     */
    void needsReset(String reason);
}
