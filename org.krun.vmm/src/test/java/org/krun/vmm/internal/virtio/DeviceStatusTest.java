package org.krun.vmm.internal.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.krun.vmm.internal.virtio.DeviceStatus.Transition;

class DeviceStatusTest {

    @ParameterizedTest(name = "0x{0} -> 0x{1}: {2}")
    @CsvSource({
        // the driver's initialisation sequence, one bit at a time (virtio 1.2 §3.1.1)
        "0,  1,  ACKNOWLEDGE",
        "1,  3,  DRIVER",
        "3,  b,  FEATURES_OK",
        "b,  f,  DRIVER_OK",
        // reset from anywhere, including a failed device
        "0,  0,  RESET",
        "f,  0,  RESET",
        "83, 0,  RESET",
        // FAILED keeps the bits already set
        "0,  80, FAILED",
        "3,  83, FAILED",
        "f,  8f, FAILED",
        "83, 83, FAILED",
        // FAILED clearing other bits, or anything but reset after FAILED
        "3,  81, INVALID",
        "83, 1,  INVALID",
        "80, 1,  INVALID",
        // skipping steps
        "0,  4,  INVALID",
        "0,  3,  INVALID",
        "1,  b,  INVALID",
        "3,  7,  INVALID",
        "0,  f,  INVALID",
        // clearing bits
        "3,  1,  INVALID",
        "b,  3,  INVALID",
        "f,  b,  INVALID",
        "1,  2,  INVALID",
        // repeating a step
        "1,  1,  INVALID",
        "f,  f,  INVALID",
    })
    void classifiesStatusWrites(String current, String requested, Transition expected) {
        assertEquals(expected, DeviceStatus.classify(Integer.parseInt(current, 16), Integer.parseInt(requested, 16)));
    }

    @ParameterizedTest(name = "0x{0} -> 0x{1}: {2}")
    @CsvSource({
        "41, 3,  DRIVER",
        "1,  43, DRIVER",
        "4b, 4f, DRIVER_OK",
        "4f, 40, RESET",
    })
    void deviceNeedsResetBitDoesNotCountOnEitherSide(String current, String requested, Transition expected) {
        assertEquals(expected, DeviceStatus.classify(Integer.parseInt(current, 16), Integer.parseInt(requested, 16)));
    }
}
