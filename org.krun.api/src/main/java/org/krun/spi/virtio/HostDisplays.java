package org.krun.spi.virtio;

import java.util.List;

import org.krun.api.Display;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * Implemented by a device with scanouts (a GPU) so the core can offer them through
 * {@code VirtualMachine.displays()}.
 *
 * @since 1.5
 */
@ConsumerType
public interface HostDisplays {

    /** The device's scanouts in index order; the same objects for the device's whole life. */
    List<Display> displays();
}
