package org.krun.vmm.testing;

import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;

import org.krun.api.DeviceSpec;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;

/**
 * A device factory that hands every request to a real one and keeps the devices it created, so a guest
 * test can read their counters after the VM has stopped.
 *
 * @param <D> the device class the real factory creates
 */
public final class RecordingFactory<D extends VirtioDevice> implements VirtioDeviceFactory {
    private final VirtioDeviceFactory delegate;
    private final Class<D> deviceClass;
    private final List<D> created = new CopyOnWriteArrayList<>();

    public RecordingFactory(VirtioDeviceFactory delegate, Class<D> deviceClass) {
        this.delegate = delegate;
        this.deviceClass = deviceClass;
    }

    /** The devices created so far, in order. */
    public List<D> created() {
        return List.copyOf(created);
    }

    @Override
    public String type() {
        return delegate.type();
    }

    @Override
    public VirtioDevice create(DeviceSpec spec) {
        D device = deviceClass.cast(delegate.create(spec));
        created.add(device);
        return device;
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return delegate.defaultSpec();
    }

    @Override
    public Optional<DeviceSpec> defaultSpec(org.krun.api.VmConfig config) {
        return delegate.defaultSpec(config);
    }

    @Override
    public Optional<RootFilesystem> rootFilesystem(java.nio.file.Path directory, boolean readOnly) {
        return delegate.rootFilesystem(directory, readOnly);
    }
}
