package org.krun.spi.virtio;

import java.util.List;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * A virtio device's behaviour, apart from its transport. Before {@link #activate(DeviceContext)} a device
 * holds no memory, queues or interrupt; {@link #reset()} returns it there. Queue notifications and
 * activation happen on the VM's {@link EventLoop} thread; configuration space is read and written from
 * vCPU threads.
 */
@ConsumerType
public interface VirtioDevice extends AutoCloseable {

    /** The virtio device type ({@link VirtioIds}). */
    int deviceType();

    /** The device-specific features offered, and any of {@link VirtioFeatures} the device supports. */
    long deviceFeatures();

    /** Number of queues. */
    int queueCount();

    /** The largest size queue {@code index} may have (a power of 2, at most 32768). */
    int queueMaxSize(int index);

    /** Size of the configuration space in bytes. */
    int configSize();

    /** Reads configuration space at {@code offset} into {@code data} (the range lies in {@link #configSize()}). */
    void readConfig(int offset, byte[] data);

    /** Writes configuration space; devices ignore writes to read-only fields. */
    void writeConfig(int offset, byte[] data);

    /**
     * The configuration space as the key of a booted template sees it (docs/templates.md): all of it by
     * default. A device blanks the fields that a VM restored from a template takes from its own run instead
     * (the console's terminal size, which krun's init sets on the terminal after the restore), so that runs
     * differing only there share one template. Since 1.4.
     */
    default byte[] templateKeyConfig() {
        byte[] space = new byte[configSize()];
        readConfig(0, space);
        return space;
    }

    /**
     * What this device needs of the guest besides its driver (kernel arguments, files the init provides);
     * asked once, when the VM is built. {@link GuestSetup#NONE} by default.
     */
    default GuestSetup guestSetup() {
        return GuestSetup.NONE;
    }

    /**
     * The shared memory regions (virtio 1.2 §2.10) this device wants, asked once when the VM is built; the
     * transport places them in guest-physical memory and offers them to the driver, and the device maps host
     * memory into them through {@link DeviceContext#sharedMemory(int)}. None by default. Since 1.6.
     */
    default List<SharedMemoryRegion> sharedMemoryRegions() {
        return List.of();
    }

    /** The driver set DRIVER_OK: start serving the queues. */
    void activate(DeviceContext context);

    /** The driver made buffers available on queue {@code index}. */
    void queueNotify(int index);

    /** The driver reset the device: drop everything {@link #activate} gave. */
    void reset();

    /**
     * The VM is gone: release host resources, after waiting (bounded) for work that still touches guest
     * memory. Guest RAM is unmapped after every device's close returned.
     */
    @Override
    default void close() {
    }

    /**
     * After {@link #close()}: whether work of this device may still touch guest memory (a request stuck in
     * the host kernel beyond the device's bound). The core then leaves guest RAM mapped (leaked) rather
     * than unmap memory that work in progress writes to.
     */
    default boolean touchesGuestMemoryAfterClose() {
        return false;
    }
}
