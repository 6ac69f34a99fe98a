package org.krun.spi.virtio;

import java.util.ArrayList;
import java.util.List;

import org.krun.spi.memory.GuestMemory;

/**
 * A {@link DeviceContext} for device tests: fixed memory, features and queues, an {@link InlineEventLoop},
 * and a record of every interrupt and {@link #needsReset} the device raised.
 */
public final class FakeDeviceContext implements DeviceContext {

    private final GuestMemory memory;
    private final long driverFeatures;
    private final List<Virtqueue> queues;
    private final InlineEventLoop loop = new InlineEventLoop();
    private final List<Integer> interrupts = new ArrayList<>();
    private final List<String> resetReasons = new ArrayList<>();
    private final java.util.Map<Integer, SharedMemory> sharedMemory = new java.util.HashMap<>();

    public FakeDeviceContext(GuestMemory memory, long driverFeatures, List<Virtqueue> queues) {
        this.memory = memory;
        this.driverFeatures = driverFeatures;
        this.queues = List.copyOf(queues);
    }

    @Override
    public GuestMemory memory() {
        return memory;
    }

    @Override
    public long driverFeatures() {
        return driverFeatures;
    }

    @Override
    public List<Virtqueue> queues() {
        return queues;
    }

    @Override
    public InterruptTrigger interrupt() {
        return interrupts::add;
    }

    @Override
    public InlineEventLoop eventLoop() {
        return loop;
    }

    @Override
    public void needsReset(String reason) {
        resetReasons.add(reason);
    }

    /** Offers {@code region} as the device's shared memory region of its id. */
    public FakeDeviceContext withSharedMemory(SharedMemory region) {
        sharedMemory.put(region.id(), region);
        return this;
    }

    @Override
    public java.util.Optional<SharedMemory> sharedMemory(int id) {
        return java.util.Optional.ofNullable(sharedMemory.get(id));
    }

    /** The reasons passed to each {@link InterruptTrigger#trigger} call, in order. */
    public List<Integer> interrupts() {
        return interrupts;
    }

    /** The reasons given to {@link #needsReset}, in order; empty while the device is healthy. */
    public List<String> resetReasons() {
        return resetReasons;
    }
}
