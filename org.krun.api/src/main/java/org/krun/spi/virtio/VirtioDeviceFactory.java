package org.krun.spi.virtio;

import java.util.Optional;

import org.krun.api.DeviceSpec;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * Registered by a device bundle: creates a fresh device for each VM that asks for {@link #type()}.
 * Service property {@value #TYPE_PROPERTY} carries the type.
 */
@ConsumerType
public interface VirtioDeviceFactory {

    String TYPE_PROPERTY = "krun.device.type";

    /** The {@link DeviceSpec#type()} this factory serves ({@code console}, {@code blk}, ...). */
    String type();

    /**
     * Creates a device for one VM. Validates {@code spec} and throws
     * {@link org.krun.api.VmConfigException} with a one-line message if it cannot work.
     */
    VirtioDevice create(DeviceSpec spec);

    /**
     * The device every VM gets while this factory is present, unless the VM asks for this type itself or
     * turns default devices off ({@link org.krun.api.VmConfig#defaultDevices()}): an entropy source or a
     * balloon, as libkrun gives every VM. Empty (the default) for devices that must be asked for.
     */
    default Optional<DeviceSpec> defaultSpec() {
        return Optional.empty();
    }

    /**
     * {@code spec} as the record a factory takes, or a {@link org.krun.api.VmConfigException} naming what
     * came instead: the first line of most {@link #create} methods.
     */
    static <T extends DeviceSpec> T expect(DeviceSpec spec, Class<T> type) {
        if (!type.isInstance(spec)) {
            throw new org.krun.api.VmConfigException("a '" + spec.type() + "' device takes a " + type.getSimpleName()
                    + ", not " + spec.getClass().getSimpleName());
        }
        return type.cast(spec);
    }
}
