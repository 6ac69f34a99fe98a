package org.example.krun.echo.internal;

import java.util.Map;
import java.util.Optional;

import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * The service krun's core looks for: it creates one {@link EchoDevice} for each VM that asks for type
 * {@value #TYPE}, and offers one to every VM by default.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + EchoDeviceFactory.TYPE)
public final class EchoDeviceFactory implements VirtioDeviceFactory {
    /** The device type name VMs ask for: {@code new GenericDeviceSpec("echo", Map.of())}. */
    public static final String TYPE = "echo";

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public VirtioDevice create(DeviceSpec spec) {
        if (!VirtioDeviceFactory.expect(spec, GenericDeviceSpec.class).options().isEmpty()) {
            throw new VmConfigException("the echo device takes no options");
        }
        return new EchoDevice();
    }

    /** Every VM gets one unless it asks for its own or turns default devices off; drop this to be asked for only. */
    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(new GenericDeviceSpec(TYPE, Map.of()));
    }
}
