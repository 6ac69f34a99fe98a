package org.krun.spi.virtio;

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
}
