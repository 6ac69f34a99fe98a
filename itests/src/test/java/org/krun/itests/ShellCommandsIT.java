package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.inject.Inject;

import org.apache.felix.service.command.CommandProcessor;
import org.apache.felix.service.command.CommandSession;
import org.junit.After;
import org.junit.Assume;
import org.junit.Before;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.ops4j.pax.exam.Configuration;
import org.ops4j.pax.exam.Option;
import org.ops4j.pax.exam.junit.PaxExam;
import org.ops4j.pax.exam.spi.reactors.ExamReactorStrategy;
import org.ops4j.pax.exam.spi.reactors.PerMethod;
import org.osgi.framework.BundleContext;

/**
 * The krun:* commands in the real Gogo runtime, as a shell user runs them: they find the Krun service,
 * the device factories and the hypervisor in the framework, and start, watch, feed and stop VMs (probe.elf).
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerMethod.class)
public class ShellCommandsIT {
    private static final Pattern STARTED = Pattern.compile("(vm\\d+) started\n");

    @Inject
    BundleContext context;

    @Inject
    CommandProcessor processor;

    @Inject
    Krun krun;

    private CommandSession session;

    @Configuration
    public Option[] config() throws IOException {
        return ItSupport.options("org.apache.felix.gogo.runtime", "org.krun.shell", "org.krun.device.rng",
                "org.krun.device.balloon");
    }

    @Before
    public void openSession() {
        session = processor.createSession(new ByteArrayInputStream(new byte[0]), new ByteArrayOutputStream(),
                new ByteArrayOutputStream());
    }

    @After
    public void closeSession() {
        session.close();
        krun.list().forEach(VirtualMachine::close);
    }

    private String run(String line) throws Exception {
        return String.valueOf(session.execute(line));
    }

    /** krun:start of a probe.elf VM; returns its id. */
    private String startProbe(String kernelArgs) throws Exception {
        String out = run("krun:start -t -m 64 --timeout 60 -k " + ItSupport.guest("probe.elf") + " -a '" + kernelArgs
                + "' fast-guest");
        Matcher m = STARTED.matcher(out);
        assertTrue(out, m.matches());
        return m.group(1);
    }

    private boolean consoleShows(String id, String text) throws Exception {
        return ItSupport.await(() -> {
            try {
                return run("krun:console -n 0 " + id).contains(text);
            } catch (Exception e) {
                throw new IllegalStateException(e);
            }
        });
    }

    @Test
    public void devicesListsEveryFactoryWithItsBundleAndHypervisorsListsKvm() throws Exception {
        String devices = run("krun:devices");
        assertTrue(devices, devices.startsWith("TYPE     DEFAULT  BUNDLE\n"));
        assertTrue(devices, devices.contains("balloon  yes      org.krun.device.balloon 0.1.0.SNAPSHOT\n"));
        assertTrue(devices, devices.contains("console  no       org.krun.device.console 0.1.0.SNAPSHOT\n"));
        assertTrue(devices, devices.contains("rng      yes      org.krun.device.rng 0.1.0.SNAPSHOT\n"));
        assertEquals(devices, 4, devices.lines().count());

        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String hypervisors = run("krun:hypervisors");
        assertTrue(hypervisors, hypervisors.startsWith("NAME  HARDWARE  MAX-VCPUS  BUNDLE"));
        assertTrue(hypervisors, Pattern.compile("\nkvm +(yes|no) +\\d+ +org\\.krun\\.hv\\.kvm 0\\.1\\.0\\.SNAPSHOT +KVM")
                .matcher(hypervisors).find());
    }

    @Test
    public void devicesFollowsABundleStop() throws Exception {
        ItSupport.installed(context, "org.krun.device.rng").stop();

        String devices = run("krun:devices");
        assertFalse(devices, devices.contains("rng"));
        assertTrue(devices, devices.contains("balloon"));
    }

    @Test
    public void aSnapshotTakenFromTheShellRestoresIntoANewVmThatGoesOnFromThere() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String id = startProbe("probe.wait");
        assertTrue(run("krun:console " + id), consoleShows(id, "waiting\n"));
        java.nio.file.Path dir = java.nio.file.Files.createTempDirectory("krun-shell-snapshot");
        try {
            assertEquals(id + ": snapshot in " + dir + "\n", run("krun:snapshot " + id + " " + dir));
            String out = run("krun:restore " + dir);
            Matcher m = Pattern.compile("(vm\\d+) restored from " + Pattern.quote(dir.toString()) + "\n").matcher(out);
            assertTrue(out, m.matches());
            String restored = m.group(1);

            // The restored probe waits where the snapshot was taken: it never printed "waiting" itself.
            run("krun:send " + restored + " hello restored");
            VirtualMachine vm = krun.list().stream().filter(v -> v.id().equals(restored)).findFirst().orElse(null);
            if (vm != null) {
                vm.waitFor(ItSupport.WAIT);
            }
            assertEquals("hello restored\ndevices: 3 5 4\n", run("krun:console -n 0 " + restored));
            String list = run("krun:list");
            assertTrue(list, Pattern.compile("\n" + restored + " +STOPPED +- +1 +64 MiB +exited 3 +fast-guest\n")
                    .matcher(list).find());
            assertTrue(list, Pattern.compile("\n" + id + " +RUNNING ").matcher(list).find());
            assertEquals(id + ": killed\n", run("krun:kill " + id));
        } finally {
            try (java.util.stream.Stream<java.nio.file.Path> files = java.nio.file.Files.list(dir)) {
                for (java.nio.file.Path f : files.toList()) {
                    java.nio.file.Files.delete(f);
                }
            }
            java.nio.file.Files.delete(dir);
        }
    }

    @Test
    public void aVmStartedFromTheShellIsListedTakesInputAndKeepsItsConsoleTailAfterItExits() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String id = startProbe("probe.wait");
        assertTrue(run("krun:console " + id), consoleShows(id, "waiting\n"));

        String running = run("krun:list");
        assertTrue(running, Pattern.compile("\n" + id + " +RUNNING +\\d+s +1 +64 MiB +- +fast-guest\n")
                .matcher(running).find());

        run("krun:send " + id + " hello shell");
        VirtualMachine vm = krun.list().stream().filter(v -> v.id().equals(id)).findFirst().orElse(null);
        if (vm != null) {
            vm.waitFor(ItSupport.WAIT);
        }

        assertEquals("waiting\nhello shell\ndevices: 3 5 4\n", run("krun:console -n 0 " + id));
        assertEquals("devices: 3 5 4\n", run("krun:console -n 1 " + id));
        String stopped = run("krun:list");
        assertTrue(stopped, Pattern.compile("\n" + id + " +STOPPED +- +1 +64 MiB +exited 3 +fast-guest\n")
                .matcher(stopped).find());
    }

    @Test
    public void startGivesTheCommandTheOptionsAfterItAndThoseAfterDoubleDash() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String kernel = ItSupport.guest("probe.elf").toString();
        String options = "-m 64 --timeout 60 -k " + kernel + " -a probe.wait";
        String first = run("krun:start " + options + " fast-guest -c 'echo hi' -m 9");
        String second = run("krun:start -c 2 " + options + " -- -c 3");

        String list = run("krun:list");
        assertTrue(list, Pattern.compile(
                "\n" + id(first) + " +RUNNING +\\d+s +1 +64 MiB +- +fast-guest -c echo hi -m 9\n")
                .matcher(list).find());
        assertTrue(list, Pattern.compile("\n" + id(second) + " +RUNNING +\\d+s +2 +64 MiB +- +-c 3\n")
                .matcher(list).find());
    }

    private static String id(String started) {
        Matcher m = STARTED.matcher(started);
        assertTrue(started, m.matches());
        return m.group(1);
    }

    @Test
    public void aFailedCommandReadsAsItsMessageAlone() throws Exception {
        try {
            run("krun:start -k /nowhere/vmlinux /bin/true");
        } catch (Exception e) {
            // The console prints a failed command's exception with toString().
            assertTrue(e.toString(), e.toString().endsWith("/nowhere/vmlinux does not exist or is not a file")
                    || e.toString().startsWith("no hypervisor backend is available"));
            assertFalse(e.toString(), e.toString().contains("Exception"));
            return;
        }
        throw new AssertionError("krun:start of a missing kernel succeeded");
    }

    @Test
    public void killFromTheShellStopsTheVmAndReleasesIt() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String id = startProbe("probe.wait");
        assertTrue(consoleShows(id, "waiting\n"));

        assertEquals(id + ": killed\n", run("krun:kill " + id));
        assertTrue(krun.list().isEmpty());
    }

    @Test
    public void stopKillsAGuestThatOutlivesTheGracePeriodAfterItsInputEnded() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String id = startProbe("probe.wait");
        assertTrue(consoleShows(id, "waiting\n"));

        // probe.elf waits for a newline that never comes: end-of-file does not end it.
        assertEquals(id + ": killed\n", run("krun:stop -g 1 " + id));
        assertTrue(krun.list().isEmpty());
    }

    @Test
    public void stopReportsTheExitOfAGuestThatAlreadyFinished() throws Exception {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
        String id = startProbe("probe.status=7");
        assertTrue(consoleShows(id, "devices:"));

        assertEquals(id + ": exited 7\n", run("krun:stop " + id));
    }
}
