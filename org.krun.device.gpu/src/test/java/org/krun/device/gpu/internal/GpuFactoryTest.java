package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.GpuSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.HostDisplays;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;

class GpuFactoryTest {

    @Test
    void servesTheGpuTypeAndIsNotADefaultDevice() {
        GpuFactory f = new GpuFactory();
        assertEquals("gpu", f.type());
        assertTrue(f.defaultSpec().isEmpty(), "a GPU only where asked for");
    }

    @Test
    void createsAFreshGpuPerVmWithItsScanouts() {
        GpuFactory f = new GpuFactory();
        try (VirtioDevice a = f.create(GpuSpec.twoD().withScanouts(3)); VirtioDevice b = f.create(GpuSpec.twoD())) {
            assertEquals(VirtioIds.GPU, a.deviceType());
            assertTrue(a != b);
            assertEquals(3, ((HostDisplays) a).displays().size());
            assertEquals(1, ((HostDisplays) b).displays().size());
        }
    }

    @Test
    void refusesOtherSpecsWithAOneLineMessage() {
        VmConfigException e = assertThrows(VmConfigException.class, () -> new GpuFactory().create(ConsoleSpec.discard()));
        assertTrue(e.getMessage().contains("GpuSpec"), e.getMessage());
    }

    @Test
    void theCommandLinesGenericSpecTakesTheGpuOptions() {
        GpuFactory f = new GpuFactory();
        try (VirtioDevice d = f.create(new GenericDeviceSpec("gpu", Map.of("size", "320x200", "scanouts", "2")))) {
            assertEquals(2, ((HostDisplays) d).displays().size());
        }
        assertEquals("a 'gpu' device has no option 'depth' (it takes: memory, mode, scanouts, size)",
                assertThrows(VmConfigException.class, () -> f.create(new GenericDeviceSpec("gpu", Map.of("depth", "8"))))
                        .getMessage());
        assertEquals("--gpu takes 2d, virgl or venus, not 'x'",
                assertThrows(VmConfigException.class, () -> f.create(new GenericDeviceSpec("gpu", Map.of("mode", "x"))))
                        .getMessage());
    }

    @Test
    void specValuesAreCheckedWithOneLineMessages() {
        assertEquals(GpuSpec.twoD().withSize(640, 480).withScanouts(2).withHostMemoryBytes(32L << 20),
                GpuSpec.parse("2d, size=640x480, scanouts=2, memory=32"));
        assertEquals(GpuSpec.virgl().withSize(640, 480), GpuSpec.parse("virgl,size=640x480"));
        assertEquals(GpuSpec.Mode.VIRGL, GpuSpec.parse("virgl").mode());
        assertEquals(GpuSpec.venus().withScanouts(2), GpuSpec.parse("venus,scanouts=2"));
        assertEquals("venus", GpuSpec.Mode.VENUS.cliName());
        for (String bad : new String[] {"", "3d", "2d,size=0x0", "2d,size=5000x10", "2d,size=640", "2d,scanouts=0",
                "2d,memory=1", "2d,memory=x", "2d,foo=1", "2d,size=4000x4000,memory=16"}) {
            VmConfigException e = assertThrows(VmConfigException.class, () -> GpuSpec.parse(bad), bad);
            assertTrue(!e.getMessage().contains("\n") && !e.getMessage().isBlank(), e.getMessage());
        }
    }

    @Test
    void aVirglGpuTakesTheProcesssRendererAndASecondIsRefusedInOneLine() {
        org.junit.jupiter.api.Assumptions.assumeTrue(Virgl.problem() == null, Virgl.problem());
        GpuFactory f = new GpuFactory();
        try (VirtioDevice d = f.create(new GenericDeviceSpec("gpu", Map.of("mode", "virgl")))) {
            assertEquals(GpuProtocol.F_VIRGL | GpuProtocol.F_EDID | GpuProtocol.F_RESOURCE_BLOB, d.deviceFeatures());
            VmConfigException e = assertThrows(VmConfigException.class, () -> f.create(GpuSpec.virgl()));
            assertTrue(e.getMessage().startsWith("--gpu virgl: virglrenderer is in use by another VM in this process"),
                    e.getMessage());
            assertTrue(!e.getMessage().contains("\n"));
        }
        try (VirtioDevice d = f.create(GpuSpec.virgl())) { // given back when the first closed
            assertEquals(1, ((HostDisplays) d).displays().size());
        }
    }
}
