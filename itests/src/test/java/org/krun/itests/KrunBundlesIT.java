package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;
import static org.ops4j.pax.exam.CoreOptions.bundle;
import static org.ops4j.pax.exam.CoreOptions.junitBundles;
import static org.ops4j.pax.exam.CoreOptions.options;
import static org.ops4j.pax.exam.CoreOptions.systemPackages;
import static org.ops4j.pax.exam.CoreOptions.systemProperty;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.stream.Stream;

import javax.inject.Inject;

import org.junit.Assume;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.krun.api.ConsoleSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.ops4j.pax.exam.Configuration;
import org.ops4j.pax.exam.Option;
import org.ops4j.pax.exam.junit.PaxExam;
import org.ops4j.pax.exam.spi.reactors.ExamReactorStrategy;
import org.ops4j.pax.exam.spi.reactors.PerClass;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.ServiceReference;

/**
 * The real bundles on Felix: they resolve and start, DS registers the KVM backend and the console
 * factory, and the Krun service boots a VM (a freestanding guest program of ours that drives the console
 * device) and reports its exit status.
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerClass.class)
public class KrunBundlesIT {
    /** What virtio.elf reports when every check passed (see org.krun.vmm/src/test/guest/virtio.c). */
    static final int VIRTIO_GUEST_ALL_PASSED = 0x7f;

    @Inject
    BundleContext context;

    @Inject
    Krun krun;

    @Configuration
    public Option[] config() throws IOException {
        List<Option> opts = new ArrayList<>();
        try (Stream<Path> jars = Files.list(Path.of(System.getProperty("krun.bundles")))) {
            for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).sorted().toList()) {
                opts.add(bundle(jar.toUri().toString()));
            }
        }
        opts.add(junitBundles());
        opts.add(systemPackages("org.slf4j;version=2.0.17", "org.slf4j.event;version=2.0.17",
                "org.slf4j.spi;version=2.0.17"));
        opts.add(systemProperty("krun.guests").value(System.getProperty("krun.guests")));
        return options(opts.toArray(Option[]::new));
    }

    private static boolean kvmUsable() {
        Path kvm = Path.of("/dev/kvm");
        boolean ok = Files.isReadable(kvm) && Files.isWritable(kvm);
        if (!ok) {
            System.err.println("*** /dev/kvm is missing or not accessible: the VM boot through OSGi is SKIPPED ***");
        }
        return ok;
    }

    @Test
    public void everyKrunBundleIsActive() {
        List<String> expected = List.of("org.krun.api", "org.krun.vmm", "org.krun.hv.kvm", "org.krun.device.console");
        for (String bsn : expected) {
            Bundle b = Stream.of(context.getBundles()).filter(x -> bsn.equals(x.getSymbolicName())).findFirst()
                    .orElse(null);
            assertNotNull(bsn + " is installed", b);
            assertEquals(bsn + " is active", Bundle.ACTIVE, b.getState());
        }
    }

    @Test
    public void consoleFactoryIsRegisteredWithItsType() throws Exception {
        Collection<ServiceReference<VirtioDeviceFactory>> refs =
                context.getServiceReferences(VirtioDeviceFactory.class, "(krun.device.type=console)");
        assertEquals(1, refs.size());
        VirtioDeviceFactory f = context.getService(refs.iterator().next());
        assertEquals("console", f.type());
    }

    @Test
    public void kvmHypervisorIsRegisteredWhereKvmExists() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", kvmUsable());
        Collection<ServiceReference<Hypervisor>> refs = context.getServiceReferences(Hypervisor.class, "(krun.hypervisor=kvm)");
        assertEquals(1, refs.size());
        Hypervisor hv = context.getService(refs.iterator().next());
        assertEquals("kvm", hv.name());
        assertTrue(hv.capabilities().maxVcpus() >= 1);
    }

    @Test
    public void krunServiceBootsAVmThatDrivesTheConsoleAndReportsItsStatus() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", kvmUsable());
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        VmConfig config = VmConfig.builder()
                .kernel(Path.of(System.getProperty("krun.guests"), "virtio.elf"))
                .command("fast-guest")
                .memoryMib(64)
                .console(ConsoleSpec.terminal(out, 80, 24))
                .timeout(Duration.ofSeconds(60))
                .build();
        try (VirtualMachine vm = krun.create(config)) {
            vm.start();
            // virtio.elf echoes one line of input after its greeting.
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!out.toString(StandardCharsets.UTF_8).contains("hello from the guest") && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            vm.consoleInput().write("ping\n".getBytes(StandardCharsets.US_ASCII));
            VmExit exit = vm.waitFor(Duration.ofSeconds(60));
            assertEquals(exit.toString(), VmExit.Reason.COMMAND_EXITED, exit.reason());
            assertEquals(VIRTIO_GUEST_ALL_PASSED, exit.status());
        }
        assertEquals("hello from the guest\nping\n", out.toString(StandardCharsets.UTF_8));
        assertTrue("the VM is gone from the service", krun.list().isEmpty());
    }
}
