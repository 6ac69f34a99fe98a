package org.krun.api;

/**
 * A virtio memory balloon (virtio 1.2 §5.5). With {@code freePageReporting} the guest kernel reports the
 * memory it has freed (VIRTIO_BALLOON_F_PAGE_REPORTING), and the host releases it, so a VM's resident
 * memory shrinks back after the guest stops using memory instead of staying at its high-water mark. Pages
 * the guest gives to the balloon (inflation) are released the same way.
 *
 * <p>Every VM gets one, with free page reporting, by default while bundle {@code org.krun.device.balloon}
 * is active (see {@link VmConfig#defaultDevices()}), as libkrun gives every VM one.
 *
 * <p>The guest kernel decides what to report: Linux reports free blocks of its page-reporting order (the
 * page-block size, 2 or 4 MiB depending on its configuration) about two seconds after they become free,
 * and only while the guest has plenty of memory free.
 *
 * @param freePageReporting whether to offer free page reporting
 */
public record BalloonSpec(boolean freePageReporting) implements DeviceSpec {

    /** The device type of the balloon. */
    public static final String TYPE = "balloon";

    /** A balloon with free page reporting: what every VM gets by default. */
    public static BalloonSpec withFreePageReporting() {
        return new BalloonSpec(true);
    }

    @Override
    public String type() {
        return TYPE;
    }
}
