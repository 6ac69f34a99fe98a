package org.krun.device.rng.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.EntropySpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;

class RngFactoryTest {

    @Test
    void servesTheRngTypeAndOffersItByDefault() {
        RngFactory f = new RngFactory();
        assertEquals("rng", f.type());
        assertEquals(EntropySpec.TYPE, f.type());
        assertInstanceOf(EntropySpec.class, f.defaultSpec().orElseThrow());
        assertEquals(f.type(), f.defaultSpec().orElseThrow().type(), "the default spec is for this factory");
    }

    @Test
    void createsAFreshEntropyDevicePerVm() {
        RngFactory f = new RngFactory();
        try (VirtioDevice a = f.create(new EntropySpec()); VirtioDevice b = f.create(new EntropySpec())) {
            assertEquals(VirtioIds.ENTROPY, a.deviceType());
            assertTrue(a != b);
        }
    }

    @Test
    void refusesOtherSpecsWithAOneLineMessage() {
        RngFactory f = new RngFactory();
        VmConfigException e = assertThrows(VmConfigException.class, () -> f.create(ConsoleSpec.discard()));
        assertTrue(e.getMessage().contains("EntropySpec"), e.getMessage());
    }

    @Test
    void theCommandLinesGenericSpecWorksAndTakesNoOptions() {
        RngFactory f = new RngFactory();
        try (VirtioDevice d = f.create(new GenericDeviceSpec("rng", Map.of()))) {
            assertEquals(VirtioIds.ENTROPY, d.deviceType());
        }
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> f.create(new GenericDeviceSpec("rng", Map.of("rate", "1"))));
        assertEquals("a 'rng' device has no option 'rate' (it takes none)", e.getMessage());
    }
}
