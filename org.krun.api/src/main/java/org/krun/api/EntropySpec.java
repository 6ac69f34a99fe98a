package org.krun.api;

/**
 * A virtio entropy device (virtio-rng, virtio 1.2 §5.4): the guest's {@code /dev/hwrng}, fed from the
 * host's {@code getrandom(2)}, which also seeds the guest kernel's random number generator early in boot.
 *
 * <p>Every VM gets one by default while bundle {@code org.krun.device.rng} is active (see
 * {@link VmConfig#defaultDevices()}); add this spec to a configuration that turns default devices off to
 * keep the entropy device anyway.
 */
public record EntropySpec() implements DeviceSpec {

    /** The device type of the entropy device. */
    public static final String TYPE = "rng";

    @Override
    public String type() {
        return TYPE;
    }
}
