package org.krun.vmm.internal.virtio;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.spi.virtio.SnapshottableDevice;

/**
 * A device with fixed features, queue sizes and configuration space that records what the transport
 * does to it, in order, as "activate", "notify N" and "reset". Its saved state is {@link #state}; the
 * states it is given back are kept in {@link #restoredStates} (not among the calls).
 */
final class FakeVirtioDevice implements SnapshottableDevice {
    static final int TYPE = 4;
    /** Device-specific bits in both feature words; the transport adds its own. */
    static final long FEATURES = 1L | 1L << 5 | 1L << 40;

    private final int[] queueMaxSizes;
    private final byte[] config = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, (byte) 0x88};

    final BlockingQueue<String> calls = new LinkedBlockingQueue<>();
    final BlockingQueue<DeviceContext> activations = new LinkedBlockingQueue<>();
    final List<String> configWrites = new ArrayList<>();
    /** Whether {@link #activate} was called on the event loop thread, for each activation. */
    final List<Boolean> activatedOnLoop = new ArrayList<>();
    volatile RuntimeException activationFailure;
    volatile byte[] state = new byte[0];
    final BlockingQueue<byte[]> restoredStates = new LinkedBlockingQueue<>();
    /** Whether {@link #restoreState} was called on the event loop thread, for each call. */
    final List<Boolean> restoredOnLoop = new ArrayList<>();
    volatile RuntimeException restoreFailure;
    private volatile DeviceContext context;
    /** The shared memory regions the device asks for. */
    volatile List<SharedMemoryRegion> sharedMemoryRegions = List.of();

    @Override
    public List<SharedMemoryRegion> sharedMemoryRegions() {
        return sharedMemoryRegions;
    }

    FakeVirtioDevice(int... queueMaxSizes) {
        this.queueMaxSizes = queueMaxSizes;
    }

    /** The context of the next activation, waiting (with a bound) for the loop to run it. */
    DeviceContext awaitActivation() throws InterruptedException {
        DeviceContext c = activations.poll(10, TimeUnit.SECONDS);
        if (c == null) {
            throw new AssertionError("device was not activated");
        }
        return c;
    }

    /** The next recorded call, waiting (with a bound) for the loop to make it. */
    String awaitCall() throws InterruptedException {
        String c = calls.poll(10, TimeUnit.SECONDS);
        if (c == null) {
            throw new AssertionError("no device call arrived");
        }
        return c;
    }

    @Override
    public int deviceType() {
        return TYPE;
    }

    @Override
    public long deviceFeatures() {
        return FEATURES;
    }

    @Override
    public int queueCount() {
        return queueMaxSizes.length;
    }

    @Override
    public int queueMaxSize(int index) {
        return queueMaxSizes[index];
    }

    @Override
    public int configSize() {
        return config.length;
    }

    @Override
    public synchronized void readConfig(int offset, byte[] data) {
        System.arraycopy(config, offset, data, 0, data.length);
    }

    @Override
    public synchronized void writeConfig(int offset, byte[] data) {
        StringBuilder sb = new StringBuilder().append(offset).append(':');
        for (byte b : data) {
            sb.append(String.format("%02x", b));
        }
        configWrites.add(sb.toString());
        System.arraycopy(data, 0, config, offset, data.length);
    }

    @Override
    public void activate(DeviceContext context) {
        synchronized (this) {
            activatedOnLoop.add(context.eventLoop().inEventLoop());
        }
        calls.add("activate");
        RuntimeException failure = activationFailure;
        if (failure != null) {
            throw failure;
        }
        this.context = context;
        activations.add(context);
    }

    @Override
    public byte[] saveState() {
        return state.clone();
    }

    @Override
    public void restoreState(byte[] saved) {
        DeviceContext c = context;
        synchronized (this) {
            restoredOnLoop.add(c == null || c.eventLoop().inEventLoop());
        }
        RuntimeException failure = restoreFailure;
        if (failure != null) {
            throw failure;
        }
        restoredStates.add(saved.clone());
    }

    @Override
    public void queueNotify(int index) {
        calls.add("notify " + index);
    }

    @Override
    public void reset() {
        context = null;
        calls.add("reset");
    }
}
