package org.krun.itests.testdevice.internal;

import java.util.Map;
import java.util.Optional;

import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * A device type the core has never heard of, offered to every VM by default and also available on
 * request as {@code new GenericDeviceSpec("test-null", Map.of())}.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + NullDeviceFactory.TYPE)
public final class NullDeviceFactory extends AbstractDeviceFactory<GenericDeviceSpec> {
    /** The device type name, as VMs ask for it. */
    public static final String TYPE = "test-null";

    public NullDeviceFactory() {
        super(TYPE, GenericDeviceSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(GenericDeviceSpec spec) {
        if (!spec.options().isEmpty()) {
            throw new VmConfigException("the test-null device takes no options");
        }
        return new NullDevice();
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(new GenericDeviceSpec(TYPE, Map.of()));
    }
}
