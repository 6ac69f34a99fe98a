package org.krun.device.balloon.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;

import org.junit.jupiter.api.Test;
import org.krun.api.BalloonSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.EntropySpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;

class BalloonFactoryTest {

    @Test
    void servesTheBalloonTypeAndOffersItWithReportingByDefault() {
        BalloonFactory f = new BalloonFactory();
        assertEquals("balloon", f.type());
        DeviceSpec spec = f.defaultSpec().orElseThrow();
        assertEquals(new BalloonSpec(true), spec);
        assertEquals(f.type(), spec.type());
    }

    @Test
    void createsADeviceThatHonoursTheSpec() {
        BalloonFactory f = new BalloonFactory();
        try (VirtioDevice with = f.create(new BalloonSpec(true)); VirtioDevice without = f.create(new BalloonSpec(false))) {
            assertEquals(VirtioIds.BALLOON, with.deviceType());
            assertTrue((with.deviceFeatures() & VirtioBalloon.F_PAGE_REPORTING) != 0);
            assertEquals(0, without.deviceFeatures() & VirtioBalloon.F_PAGE_REPORTING);
        }
    }

    @Test
    void withReportingTheGuestReportsBlocksSmallGuestsHaveFree() {
        BalloonFactory f = new BalloonFactory();
        try (VirtioDevice with = f.create(new BalloonSpec(true)); VirtioDevice without = f.create(new BalloonSpec(false))) {
            assertEquals(java.util.List.of("page_reporting.page_reporting_order=5"), with.guestSetup().kernelArgs());
            assertEquals(GuestSetup.NONE, without.guestSetup());
        }
    }

    @Test
    void refusesOtherSpecs() {
        VmConfigException e = assertThrows(VmConfigException.class, () -> new BalloonFactory().create(new EntropySpec()));
        assertTrue(e.getMessage().contains("BalloonSpec"), e.getMessage());
    }

    @Test
    void theCommandLinesGenericSpecSetsReportingAndRefusesUnknownOptions() {
        BalloonFactory f = new BalloonFactory();
        try (VirtioDevice plain = f.create(new GenericDeviceSpec("balloon", Map.of()));
                VirtioDevice off = f.create(new GenericDeviceSpec("balloon", Map.of("free-page-reporting", "off")))) {
            assertTrue((plain.deviceFeatures() & VirtioBalloon.F_PAGE_REPORTING) != 0);
            assertEquals(0, off.deviceFeatures() & VirtioBalloon.F_PAGE_REPORTING);
        }
        VmConfigException unknown = assertThrows(VmConfigException.class,
                () -> f.create(new GenericDeviceSpec("balloon", Map.of("size", "1G"))));
        assertEquals("a 'balloon' device has no option 'size' (it takes: free-page-reporting)", unknown.getMessage());
        VmConfigException notAFlag = assertThrows(VmConfigException.class,
                () -> f.create(new GenericDeviceSpec("balloon", Map.of("free-page-reporting", "maybe"))));
        assertTrue(notAFlag.getMessage().contains("on or off"), notAFlag.getMessage());
    }
}
