package org.krun.spi.virtio;

import org.osgi.annotation.versioning.ProviderType;

/** How an active device interrupts the driver; the transport behind it stays unknown to the device. */
@ProviderType
public interface InterruptTrigger {

    /** Used buffers were added to a queue. */
    int QUEUE = 1;
    /** The device configuration changed. */
    int CONFIG = 2;

    /** Raises the interrupt with the given reasons ({@link #QUEUE}, {@link #CONFIG}, or both). */
    void trigger(int reasons);
}
