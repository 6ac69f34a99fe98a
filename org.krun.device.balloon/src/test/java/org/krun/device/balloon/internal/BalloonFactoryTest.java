package org.krun.device.balloon.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.krun.api.BalloonSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.EntropySpec;
import org.krun.api.VmConfigException;
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
    void refusesOtherSpecs() {
        VmConfigException e = assertThrows(VmConfigException.class, () -> new BalloonFactory().create(new EntropySpec()));
        assertTrue(e.getMessage().contains("BalloonSpec"), e.getMessage());
    }
}
