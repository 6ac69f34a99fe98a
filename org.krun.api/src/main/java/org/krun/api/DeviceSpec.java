package org.krun.api;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * One device a VM asks for. The core hands it to the device factory whose type matches
 * {@link #type()}; a type with no active factory makes {@link Krun#create(VmConfig)} fail with a
 * message naming the bundle to install.
 */
@ConsumerType
public interface DeviceSpec {

    /** The device type, as device factories register it (for example {@code console}). */
    String type();
}
