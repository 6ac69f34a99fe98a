package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;
import static org.ops4j.pax.exam.CoreOptions.frameworkProperty;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Hashtable;
import java.util.List;
import java.util.Optional;
import java.util.stream.Stream;

import javax.inject.Inject;

import org.junit.After;
import org.junit.Assume;
import org.junit.Before;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.api.VmState;
import org.ops4j.pax.exam.Configuration;
import org.ops4j.pax.exam.Option;
import org.ops4j.pax.exam.junit.PaxExam;
import org.ops4j.pax.exam.spi.reactors.ExamReactorStrategy;
import org.ops4j.pax.exam.spi.reactors.PerMethod;
import org.osgi.service.cm.ConfigurationAdmin;

/**
 * VMs as configuration (bundle org.krun.config on Felix Configuration Admin and File Install): a factory
 * configuration of org.krun.vm starts a VM; changing it restarts the VM; deleting it kills the VM and
 * releases what the component took (the output file); a file dropped into File Install's watched folder
 * starts a VM, and removing the file kills it. The guest is probe.elf waiting for input that never comes.
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerMethod.class)
public class ConfiguredVmIT {
    private static final Path WORK = Path.of(System.getProperty("krun.bundles")).resolveSibling("configured-vm-it");
    private static final Path WATCHED = WORK.resolve("watched");

    @Inject
    Krun krun;

    @Inject
    ConfigurationAdmin configurationAdmin;

    @Configuration
    public Option[] config() throws IOException {
        Files.createDirectories(WATCHED);
        List<Option> opts = new ArrayList<>(Arrays.asList(ItSupport.options("org.apache.felix.configadmin",
                "org.apache.felix.fileinstall", "org.krun.config")));
        opts.add(frameworkProperty("felix.fileinstall.dir").value(WATCHED.toString()));
        opts.add(frameworkProperty("felix.fileinstall.poll").value("100"));
        opts.add(frameworkProperty("felix.fileinstall.noInitialDelay").value("true"));
        return opts.toArray(Option[]::new);
    }

    @Before
    public void cleanFolders() throws IOException {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        clean();
    }

    @After
    public void removeVms() throws IOException {
        clean();
        krun.list().forEach(VirtualMachine::close);
    }

    private static void clean() throws IOException {
        try (Stream<Path> files = Files.list(WATCHED)) {
            for (Path f : files.toList()) {
                Files.delete(f);
            }
        }
        Files.deleteIfExists(WORK.resolve("output.log"));
    }

    /** The one running VM whose kernel arguments include {@code marker}, once there is one. */
    private VirtualMachine awaitVm(String marker) throws InterruptedException {
        assertTrue("a VM with " + marker + " runs; VMs: " + krun.list(), ItSupport.await(() -> find(marker).isPresent()));
        return find(marker).get();
    }

    private Optional<VirtualMachine> find(String marker) {
        return krun.list().stream().filter(vm -> vm.config().kernelArgs().contains(marker))
                .filter(vm -> vm.state() == VmState.RUNNING).findFirst();
    }

    private static boolean tailShows(VirtualMachine vm, String text) throws InterruptedException {
        return ItSupport.await(() -> new String(vm.consoleTail(), StandardCharsets.UTF_8).contains(text));
    }

    /** Whether this process has a file descriptor open on {@code file}. */
    private static boolean openInThisProcess(Path file) throws IOException {
        try (Stream<Path> fds = Files.list(Path.of("/proc/self/fd"))) {
            return fds.anyMatch(fd -> {
                try {
                    return Files.readSymbolicLink(fd).equals(file);
                } catch (IOException e) {
                    return false; // closed while listing
                }
            });
        }
    }

    private Hashtable<String, Object> probeProperties(String say) {
        Hashtable<String, Object> p = new Hashtable<>();
        p.put("kernel", ItSupport.guest("probe.elf").toString());
        p.put("command", List.of("fast-guest"));
        p.put("memoryMib", 64);
        p.put("kernelArgs", new String[] {"probe.wait", "probe.say=" + say});
        return p;
    }

    @Test
    public void aFactoryConfigurationStartsAVmAndDeletingItKillsTheVmAndReleasesItsOutputFile() throws Exception {
        Path output = WORK.resolve("output.log");
        Hashtable<String, Object> properties = probeProperties("from-cm");
        properties.put("output", output.toString());
        org.osgi.service.cm.Configuration configuration =
                configurationAdmin.createFactoryConfiguration("org.krun.vm", "?");
        configuration.update(properties);

        VirtualMachine vm = awaitVm("probe.say=from-cm");
        assertEquals(64, vm.config().memoryMib());
        assertEquals(List.of("fast-guest"), vm.config().command());
        assertTrue(ItSupport.await(() -> {
            try {
                return Files.exists(output) && Files.readString(output).equals("from-cm\nwaiting\n");
            } catch (IOException e) {
                return false;
            }
        }));
        assertTrue("the output file is open while the VM runs", openInThisProcess(output.toRealPath()));

        configuration.delete();

        assertEquals(VmExit.killed(), vm.waitFor(ItSupport.WAIT));
        assertTrue(krun.list().isEmpty());
        Path real = output.toRealPath();
        assertTrue("the output file is closed", ItSupport.await(() -> {
            try {
                return !openInThisProcess(real);
            } catch (IOException e) {
                return false;
            }
        }));
    }

    @Test
    public void changingTheConfigurationRestartsTheVmWithTheNewOne() throws Exception {
        org.osgi.service.cm.Configuration configuration =
                configurationAdmin.createFactoryConfiguration("org.krun.vm", "?");
        configuration.update(probeProperties("first"));
        VirtualMachine first = awaitVm("probe.say=first");

        configuration.update(probeProperties("second"));

        assertEquals(VmExit.killed(), first.waitFor(ItSupport.WAIT));
        VirtualMachine second = awaitVm("probe.say=second");
        assertTrue(tailShows(second, "second\nwaiting\n"));
        assertEquals(1, krun.list().size());

        configuration.delete();
        assertEquals(VmExit.killed(), second.waitFor(ItSupport.WAIT));
    }

    /** Moves a file into the watched folder in one step, so File Install never reads half of it. */
    private static Path drop(String name, String content) throws IOException {
        Path staged = Files.writeString(WORK.resolve(name), content);
        return Files.move(staged, WATCHED.resolve(name), StandardCopyOption.ATOMIC_MOVE);
    }

    @Test
    public void aConfigFileDroppedIntoTheWatchedFolderStartsAVmAndRemovingTheFileKillsIt() throws Exception {
        Path file = drop("org.krun.vm-probe.config", String.join("\n",
                "kernel=\"" + ItSupport.guest("probe.elf") + "\"",
                "command=[\"fast-guest\"]",
                "memoryMib=I\"64\"",
                "kernelArgs=[\"probe.wait\",\"probe.say=from-file\"]",
                ""));

        VirtualMachine vm = awaitVm("probe.say=from-file");
        assertEquals(64, vm.config().memoryMib());
        assertTrue(tailShows(vm, "from-file\nwaiting\n"));

        Files.delete(file);

        assertEquals(VmExit.killed(), vm.waitFor(ItSupport.WAIT));
        assertTrue(ItSupport.await(() -> krun.list().isEmpty()));
    }

    @Test
    public void aPropertiesFileWithSingleValuesWorksToo() throws Exception {
        Path file = drop("org.krun.vm-plain.cfg", String.join("\n",
                "kernel=" + ItSupport.guest("probe.elf"),
                "command=fast-guest",
                "memoryMib=64",
                "cpus=2",
                "kernelArgs=probe.wait",
                ""));

        VirtualMachine vm = awaitVm("probe.wait");
        assertEquals(2, vm.config().cpus());
        assertEquals(List.of("fast-guest"), vm.config().command());
        assertTrue(tailShows(vm, "waiting\n"));
        assertFalse(vm.exit().isDone());

        Files.delete(file);
        assertEquals(VmExit.killed(), vm.waitFor(ItSupport.WAIT));
    }
}
