package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertThrows;
import static org.junit.Assert.assertTrue;
import static org.krun.itests.ItSupport.text;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Map;

import javax.inject.Inject;

import org.junit.Assume;
import org.junit.Before;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.krun.api.EntropySpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.api.VmExit;
import org.krun.api.VmState;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.ops4j.pax.exam.Configuration;
import org.ops4j.pax.exam.Option;
import org.ops4j.pax.exam.junit.PaxExam;
import org.ops4j.pax.exam.spi.reactors.ExamReactorStrategy;
import org.ops4j.pax.exam.spi.reactors.PerMethod;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.InvalidSyntaxException;

/**
 * Devices are plugins, live: the core builds each VM from the device factories registered when it is
 * created. Stopping a device bundle takes its type out of VMs created afterwards while a VM started before
 * keeps the device and runs on; starting the bundle again brings the type back. A third-party device
 * bundle (org.krun.itests.testdevice, a null device with virtio id 63, built against the SPI alone) is
 * picked up the same way. The guest is probe.elf, which reports the device ids in the virtio-mmio slots.
 * A fresh framework per test.
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerMethod.class)
public class DynamicDevicesIT {
    static final int CONSOLE = 3;
    static final int ENTROPY = 4;
    static final int BALLOON = 5;
    static final int TEST_NULL = 63;
    /** Console first, then the default devices ordered by type name: balloon, rng, test-null. */
    static final String ALL_DEVICES = "devices: 3 5 4 63\n";

    @Inject
    BundleContext context;

    @Inject
    Krun krun;

    @Configuration
    public Option[] config() throws IOException {
        return ItSupport.options("org.krun.device.rng", "org.krun.device.balloon", "org.krun.itests.testdevice");
    }

    @Before
    public void needsKvm() {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
    }

    /** Runs probe.elf to its end; returns what it printed, after checking it exited with the device count. */
    private String probe(VmConfig.Builder config, ByteArrayOutputStream out, int expectedDevices) throws Exception {
        try (VirtualMachine vm = krun.create(config.build())) {
            vm.start();
            VmExit exit = vm.waitFor(ItSupport.WAIT);
            assertEquals(text(out), VmExit.commandExited(expectedDevices), exit);
        }
        return text(out);
    }

    private String probe(int expectedDevices) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        return probe(ItSupport.probe(out), out, expectedDevices);
    }

    private boolean factoryPresent(String type) {
        try {
            return !context.getServiceReferences(VirtioDeviceFactory.class, "(krun.device.type=" + type + ")").isEmpty();
        } catch (InvalidSyntaxException e) {
            throw new IllegalArgumentException(e);
        }
    }

    private void stop(String bundle, String type) throws Exception {
        ItSupport.installed(context, bundle).stop();
        assertTrue(type + " factory gone", ItSupport.await(() -> !factoryPresent(type)));
    }

    private void start(String bundle, String type) throws Exception {
        Bundle b = ItSupport.installed(context, bundle);
        b.start();
        assertEquals(Bundle.ACTIVE, b.getState());
        assertTrue(type + " factory back", ItSupport.await(() -> factoryPresent(type)));
    }

    @Test
    public void everyVmGetsTheDefaultDevicesIncludingTheThirdPartyOne() throws Exception {
        assertEquals(ALL_DEVICES, probe(4));
    }

    @Test
    public void thirdPartyDeviceComesOnRequestAsAGenericDeviceSpec() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        VmConfig.Builder config = ItSupport.probe(out).defaultDevices(false)
                .device(new GenericDeviceSpec("test-null", Map.of()));

        assertEquals("devices: " + CONSOLE + " " + TEST_NULL + "\n", probe(config, out, 2));
    }

    @Test
    public void stoppedDeviceBundlesVanishFromNewVmsWhileARunningVmKeepsItsDevicesAndRestartBringsThemBack()
            throws Exception {
        ByteArrayOutputStream waitingOut = new ByteArrayOutputStream();
        try (VirtualMachine waiting = krun.create(ItSupport.probe(waitingOut, "probe.wait").build())) {
            waiting.start();
            assertTrue(text(waitingOut), ItSupport.awaitOutput(waiting, waitingOut, "waiting\n"));

            stop("org.krun.device.rng", "rng");
            stop("org.krun.device.balloon", "balloon");

            assertEquals("devices: " + CONSOLE + " " + TEST_NULL + "\n", probe(2));
            VmConfigException refused = assertThrows(VmConfigException.class, () -> krun.create(
                    ItSupport.probe(new ByteArrayOutputStream()).device(new EntropySpec()).build()));
            assertTrue(refused.getMessage(), refused.getMessage().contains("org.krun.device.rng"));

            // The VM started before the bundles stopped runs on, and its guest still finds all its devices.
            assertEquals(VmState.RUNNING, waiting.state());
            assertFalse(waiting.exit().isDone());
            OutputStream input = waiting.consoleInput();
            input.write("still here\n".getBytes(StandardCharsets.US_ASCII));
            input.flush();
            assertEquals(VmExit.commandExited(4), waiting.waitFor(ItSupport.WAIT));
            assertEquals("waiting\nstill here\n" + ALL_DEVICES, text(waitingOut));
        }

        start("org.krun.device.rng", "rng");
        assertEquals("devices: " + CONSOLE + " " + ENTROPY + " " + TEST_NULL + "\n", probe(3));
        start("org.krun.device.balloon", "balloon");
        assertEquals(ALL_DEVICES, probe(4));
    }

    @Test
    public void stoppingTheThirdPartyBundleRemovesItsDeviceAndStartingItBringsItBack() throws Exception {
        stop("org.krun.itests.testdevice", "test-null");
        assertEquals("devices: " + CONSOLE + " " + BALLOON + " " + ENTROPY + "\n", probe(3));

        start("org.krun.itests.testdevice", "test-null");
        assertEquals(ALL_DEVICES, probe(4));
    }

    @Test
    public void aVmOutlivesTheStopOfEveryOptionalDeviceBundleAndIsKilledCleanly() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        VirtualMachine vm = krun.create(ItSupport.probe(out, "probe.wait").build());
        vm.start();
        assertTrue(text(out), ItSupport.awaitOutput(vm, out, "waiting\n"));
        stop("org.krun.device.rng", "rng");
        stop("org.krun.device.balloon", "balloon");
        stop("org.krun.itests.testdevice", "test-null");

        vm.kill();

        assertEquals(VmExit.killed(), vm.waitFor(Duration.ofSeconds(60)));
        assertTrue("the VM is gone from the service", ItSupport.await(() -> krun.list().isEmpty()));
    }
}
