package org.krun.vmm.internal.virtio;

/**
 * The device status field (virtio 1.2 §2.1) and the transitions a driver may make (§3.1.1 Driver
 * Requirements: Device Initialization): ACKNOWLEDGE, then DRIVER, then FEATURES_OK, then DRIVER_OK, each
 * adding one bit; FAILED at any time; 0 to reset.
 */
public final class DeviceStatus {
    public static final int ACKNOWLEDGE = 1;
    public static final int DRIVER = 2;
    public static final int DRIVER_OK = 4;
    public static final int FEATURES_OK = 8;
    public static final int DEVICE_NEEDS_RESET = 0x40;
    public static final int FAILED = 0x80;

    /** What a write of {@code requested} does. */
    public enum Transition {
        RESET, ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, FAILED, INVALID
    }

    private DeviceStatus() {
    }

    /**
     * Classifies a status write. The DEVICE_NEEDS_RESET bit is the device's own, and a driver writing back
     * a status it read may carry it: it does not count.
     */
    public static Transition classify(int current, int requested) {
        int from = current & ~DEVICE_NEEDS_RESET;
        int to = requested & ~DEVICE_NEEDS_RESET;
        if (to == 0) {
            return Transition.RESET;
        }
        if ((to & FAILED) != 0 && (to & ~FAILED) == (from & ~FAILED)) {
            return Transition.FAILED;
        }
        if ((from & FAILED) != 0) {
            return Transition.INVALID;
        }
        if (from == 0 && to == ACKNOWLEDGE) {
            return Transition.ACKNOWLEDGE;
        }
        if (from == ACKNOWLEDGE && to == (ACKNOWLEDGE | DRIVER)) {
            return Transition.DRIVER;
        }
        if (from == (ACKNOWLEDGE | DRIVER) && to == (ACKNOWLEDGE | DRIVER | FEATURES_OK)) {
            return Transition.FEATURES_OK;
        }
        if (from == (ACKNOWLEDGE | DRIVER | FEATURES_OK) && to == (ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK)) {
            return Transition.DRIVER_OK;
        }
        return Transition.INVALID;
    }
}
