package org.krun.shell.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;
import java.util.List;
import java.util.Optional;

import org.apache.felix.gogo.runtime.CommandProcessorImpl;
import org.apache.felix.gogo.runtime.threadio.ThreadIOImpl;
import org.apache.felix.service.command.CommandSession;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.api.VmState;
import org.krun.spi.hypervisor.HostCapabilities;

/**
 * The krun:* commands as a Gogo user types them, through Gogo's real command processor (option parsing,
 * argument coercion), against a fake Krun service and registry.
 */
class KrunCommandsTest {
    private static final Instant NOW = Instant.parse("2026-11-26T10:00:00Z");
    private static final Path KERNEL = Path.of("/cache/vmlinux");
    private static final Path ROOTFS = Path.of("/cache/rootfs");

    private final FakeKrun krun = new FakeKrun();
    private final Registry registry = new Registry() {
        @Override
        public List<DeviceFactoryInfo> deviceFactories() {
            return List.of(new DeviceFactoryInfo("balloon", "org.krun.device.balloon", "0.1.0", true),
                    new DeviceFactoryInfo("console", "org.krun.device.console", "0.1.0", false));
        }

        @Override
        public List<HypervisorInfo> hypervisors() {
            return List.of(new HypervisorInfo("kvm", new HostCapabilities("KVM API 12, kvm-pvm", false, 255),
                    "org.krun.hv.kvm", "0.1.0"));
        }
    };
    private final ThreadIOImpl threadIo = new ThreadIOImpl();
    private CommandProcessorImpl processor;
    private CommandSession session;

    @BeforeEach
    void gogo() {
        threadIo.start();
        processor = new CommandProcessorImpl(threadIo);
        Commands commands = new Commands(krun, registry, Clock.fixed(NOW, ZoneOffset.UTC), Optional.of(KERNEL),
                Optional.of(ROOTFS));
        processor.addCommand("krun", new KrunCommands(commands));
        session = processor.createSession(new ByteArrayInputStream(new byte[0]), new ByteArrayOutputStream(),
                new ByteArrayOutputStream());
    }

    @AfterEach
    void stopGogo() {
        session.close();
        processor.stop();
        threadIo.stop();
    }

    private String run(String line) throws Exception {
        return String.valueOf(session.execute(line));
    }

    /** The message of the failure {@code line} ends in. */
    private String failure(String line) {
        Exception e = assertThrows(Exception.class, () -> run(line), line);
        return String.valueOf(e.getMessage());
    }

    private static VmConfig.Builder config(String... command) {
        return VmConfig.builder().kernel(KERNEL).command(command);
    }

    @Test
    void startPassesOptionsAndTheWholeCommandIncludingItsOwnDashOptions() throws Exception {
        String out = run("krun:start -c 2 -m 128 -k /k/probe.elf -a 'probe.wait probe.say=hi' -w /tmp --timeout 30 "
                + "/bin/sh -c 'echo hi; exit 3'");

        assertEquals("vm1 started\n", out);
        FakeVm vm = krun.created.get(0);
        VmConfig c = vm.config;
        assertEquals(2, c.cpus());
        assertEquals(128, c.memoryMib());
        assertEquals(Path.of("/k/probe.elf"), c.kernel());
        assertEquals(Optional.empty(), c.root(), "a kernel of one's own gets no default root");
        assertEquals(List.of("probe.wait", "probe.say=hi"), c.kernelArgs());
        assertEquals("/tmp", c.workdir());
        assertEquals(List.of("/bin/sh", "-c", "echo hi; exit 3"), c.command());
        assertEquals(Optional.of(java.time.Duration.ofSeconds(30)), c.timeout());
        assertEquals(VmState.RUNNING, vm.state());
        assertTrue(c.console().input(), "the console takes input for krun:send");
    }

    @Test
    void snapshotPausesForTheSnapshotAndRestoreStartsANewVmOfTheSameShape() throws Exception {
        run("krun:start -c 2 -m 128 /bin/sh -c 'echo hi'");
        FakeVm vm1 = krun.created.get(0);

        assertEquals("vm1: snapshot in /snaps/a\n", run("krun:snapshot vm1 /snaps/a"));
        assertEquals(List.of(Path.of("/snaps/a")), vm1.snapshots);
        assertFalse(vm1.paused, "a running VM goes on after its snapshot");

        assertEquals("vm1 paused\n", run("krun:pause vm1"));
        assertEquals("vm1: snapshot in /snaps/b (still paused)\n", run("krun:snapshot vm1 /snaps/b"));
        assertTrue(vm1.paused);
        assertEquals("vm1 resumed\n", run("krun:resume vm1"));
        assertFalse(vm1.paused);

        // Taken here: the shell knows the shape, so the folder alone restores it.
        assertEquals("vm2 restored from /snaps/a\n", run("krun:restore /snaps/a"));
        FakeVm vm2 = krun.created.get(1);
        assertEquals(Path.of("/snaps/a"), vm2.restoredFrom);
        assertEquals(2, vm2.config.cpus());
        assertEquals(128, vm2.config.memoryMib());
        assertEquals(List.of("/bin/sh", "-c", "echo hi"), vm2.config.command());
        assertEquals(VmState.RUNNING, vm2.state());

        // Taken elsewhere: the shape is given as krun:start takes it.
        assertEquals("vm3 restored from /elsewhere\n", run("krun:restore /elsewhere -m 64 /bin/true"));
        assertEquals(64, krun.created.get(2).config.memoryMib());
        Exception unknown = assertThrows(Exception.class, () -> run("krun:restore /unknown"));
        assertTrue(unknown.toString().startsWith("the snapshot in /unknown was not taken in this shell"), unknown.toString());

        vm1.finish(VmExit.commandExited(0));
        Exception stopped = assertThrows(Exception.class, () -> run("krun:snapshot vm1 /snaps/c"));
        assertEquals("vm1 is not running", stopped.getMessage());
        assertThrows(Exception.class, () -> run("krun:pause vm1"));
        assertEquals(List.of(Path.of("/snaps/a"), Path.of("/snaps/b")), vm1.snapshots);
    }

    @Test
    void startLeavesOptionsAfterTheCommandToTheCommand() throws Exception {
        run("krun:start /bin/sh -c 'echo hi' -m 64");

        VmConfig c = krun.created.get(0).config;
        assertEquals(List.of("/bin/sh", "-c", "echo hi", "-m", "64"), c.command());
        assertEquals(1, c.cpus());
        assertEquals(256, c.memoryMib());
    }

    @Test
    void startOptionsEndAtDoubleDash() throws Exception {
        run("krun:start -c 2 -- -c 'echo hi'");

        VmConfig c = krun.created.get(0).config;
        assertEquals(2, c.cpus());
        assertEquals(List.of("-c", "echo hi"), c.command());
    }

    @Test
    void startTakesLongOptionsWithValuesAfterAnEqualsSign() throws Exception {
        run("krun:start --cpus=3 --memory 96 --timeout=5 /bin/true");

        VmConfig c = krun.created.get(0).config;
        assertEquals(3, c.cpus());
        assertEquals(96, c.memoryMib());
        assertEquals(Optional.of(java.time.Duration.ofSeconds(5)), c.timeout());
    }

    @Test
    void startWithAnUnknownOptionOrNoCommandIsAOneLineError() {
        Exception unknown = assertThrows(Exception.class, () -> run("krun:start -x /bin/true"));
        assertTrue(unknown.toString().startsWith("unknown option -x (krun:start [-c CPUS]"), unknown.toString());
        Exception noCommand = assertThrows(Exception.class, () -> run("krun:start -c 2"));
        assertTrue(noCommand.toString().startsWith("no command given: krun:start"), noCommand.toString());
        Exception badNumber = assertThrows(Exception.class, () -> run("krun:start -c two /bin/true"));
        assertEquals("option -c needs a whole number, not 'two'", badNumber.toString());
        assertTrue(krun.created.isEmpty());
    }

    @Test
    void startWithoutKernelBootsTheDefaultKernelAndRootfs() throws Exception {
        run("krun:start /bin/true");

        VmConfig c = krun.created.get(0).config;
        assertEquals(KERNEL, c.kernel());
        assertEquals(Optional.of(ROOTFS), c.root());
        assertEquals(1, c.cpus());
        assertEquals(256, c.memoryMib());
        assertTrue(c.defaultDevices());
        assertEquals(org.krun.api.ConsoleSpec.Mode.PIPES, c.console().mode());
    }

    @Test
    void startOptionsForTerminalAndNoDefaultDevices() throws Exception {
        run("krun:start -t --no-default-devices /bin/sh");

        VmConfig c = krun.created.get(0).config;
        assertEquals(org.krun.api.ConsoleSpec.Mode.TERMINAL, c.console().mode());
        assertFalse(c.defaultDevices());
    }

    @Test
    void listShowsStateUptimeResourcesExitAndCommand() throws Exception {
        FakeVm running = (FakeVm) krun.create(config("/bin/sh", "-c", "sleep 1000").cpus(2).memoryMib(128).build());
        running.state = VmState.RUNNING;
        running.startedAt = NOW.minusSeconds(3725);
        run("krun:start /bin/false");
        FakeVm exited = krun.created.get(1);
        exited.finish(VmExit.commandExited(1));
        krun.create(config("/bin/true").build());

        String out = run("krun:list");

        assertEquals("""
                ID   STATE    UPTIME    CPUS  MEMORY   EXIT      COMMAND
                vm1  RUNNING  1h02m05s  2     128 MiB  -         /bin/sh -c sleep 1000
                vm2  STOPPED  -         1     256 MiB  exited 1  /bin/false
                vm3  CREATED  -         1     512 MiB  -         /bin/true
                """, out);
    }

    @Test
    void stopEndsTheInputAndReportsTheCommandsExit() throws Exception {
        run("krun:start /bin/cat");
        FakeVm vm = krun.created.get(0);
        vm.statusOnEndOfInput = 0;

        assertEquals("vm1: exited 0\n", run("krun:stop vm1"));
        assertTrue(vm.inputClosed);
        assertFalse(vm.killed, "not killed: it ended by itself");
    }

    @Test
    void stopKillsWhatOutlivesTheGracePeriod() throws Exception {
        run("krun:start /bin/sleep 1000");
        FakeVm vm = krun.created.get(0);

        assertEquals("vm1: killed\n", run("krun:stop -g 0 vm1"));
        assertTrue(vm.inputClosed);
        assertTrue(vm.killed);
    }

    @Test
    void killPullsThePlug() throws Exception {
        run("krun:start /bin/sleep 1000");

        assertEquals("vm1: killed\n", run("krun:kill vm1"));
        assertEquals(VmState.STOPPED, krun.created.get(0).state());
    }

    /** A display that last showed {@code frame}, or nothing. */
    private static org.krun.api.Display display(int index, org.krun.api.Frame frame) {
        return new org.krun.api.Display() {
            @Override
            public int index() {
                return index;
            }

            @Override
            public java.util.Optional<org.krun.api.Frame> frame() {
                return java.util.Optional.ofNullable(frame);
            }

            @Override
            public java.util.Optional<org.krun.api.Frame> lastFrame() {
                return java.util.Optional.ofNullable(frame);
            }

            @Override
            public AutoCloseable onChange(java.util.function.Consumer<Long> listener) {
                return () -> {
                };
            }
        };
    }

    @Test
    void screenshotSavesTheScanoutsLastFrameAsAPng(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        run("krun:start --gpu 2d,size=64x32 /bin/true");
        assertEquals(java.util.List.of(org.krun.api.GpuSpec.twoD().withSize(64, 32)), krun.created.get(0).config().devices());
        int[] argb = new int[4 * 3];
        for (int i = 0; i < argb.length; i++) {
            argb[i] = 0xff000000 | i * 0x101010;
        }
        krun.created.get(0).displays = java.util.List.of(display(0, new org.krun.api.Frame(4, 3, argb, 1)), display(1, null));
        java.nio.file.Path png = dir.resolve("shot.png");
        assertEquals("vm1: scanout 0 (4x3) saved as " + png + "\n", run("krun:screenshot vm1 " + png));
        java.awt.image.BufferedImage image = javax.imageio.ImageIO.read(png.toFile());
        assertEquals(4, image.getWidth());
        assertEquals(3, image.getHeight());
        for (int y = 0; y < 3; y++) {
            for (int x = 0; x < 4; x++) {
                assertEquals(argb[y * 4 + x], image.getRGB(x, y));
            }
        }
        assertTrue(failure("krun:screenshot -s 1 vm1 " + png).contains("shown nothing on scanout 1"));
        assertTrue(failure("krun:screenshot -s 2 vm1 " + png).contains("scanouts 0 to 1"));
        run("krun:start /bin/true");
        assertTrue(failure("krun:screenshot vm2 " + png).contains("has no display"));
        assertTrue(failure("krun:start --gpu 3d /bin/true").contains("--gpu takes 2d"));
    }

    @Test
    void consoleShowsTheLastLinesOfTheTail() throws Exception {
        run("krun:start /bin/seq 5");
        krun.created.get(0).tail("1\n2\n3\n4\n5\n");

        assertEquals("4\n5\n", run("krun:console -n 2 vm1"));
        assertEquals("1\n2\n3\n4\n5\n", run("krun:console vm1"));
        assertEquals("1\n2\n3\n4\n5\n", run("krun:console -n 0 vm1"));
    }

    @Test
    void consoleOfAStoppedVmStartedHereStillWorks() throws Exception {
        run("krun:start /bin/echo bye");
        FakeVm vm = krun.created.get(0).tail("bye\n");
        vm.finish(VmExit.commandExited(0));

        assertEquals("bye\n", run("krun:console vm1"));
    }

    @Test
    void sendWritesALineToTheConsoleInput() throws Exception {
        run("krun:start /bin/cat");

        run("krun:send vm1 hello world");

        assertEquals("hello world\n", krun.created.get(0).input.toString(StandardCharsets.UTF_8));
    }

    @Test
    void unknownVmIsAClearError() {
        Exception e = assertThrows(Exception.class, () -> run("krun:kill vm9"));
        assertEquals("no VM vm9 (krun:list shows them)", e.getMessage());
    }

    @Test
    void aFailedCommandReadsAsItsMessageAloneWhereTheConsolePrintsIt() {
        // Gogo's console prints a failed command's exception with toString().
        krun.failure = new org.krun.api.VmConfigException("kernel /nowhere does not exist or is not a file");

        Exception e = assertThrows(Exception.class, () -> run("krun:start -k /nowhere /bin/true"));

        assertEquals("kernel /nowhere does not exist or is not a file", e.toString());
        assertTrue(e.getCause() instanceof org.krun.api.VmConfigException, "the original stays the cause");
    }

    @Test
    void devicesListsTypeDefaultAndBundle() throws Exception {
        assertEquals("""
                TYPE     DEFAULT  BUNDLE
                balloon  yes      org.krun.device.balloon 0.1.0
                console  no       org.krun.device.console 0.1.0
                """, run("krun:devices"));
    }

    @Test
    void hypervisorsListsNameAndCapabilities() throws Exception {
        assertEquals("""
                NAME  HARDWARE  MAX-VCPUS  BUNDLE                 DESCRIPTION
                kvm   no        255        org.krun.hv.kvm 0.1.0  KVM API 12, kvm-pvm
                """, run("krun:hypervisors"));
    }
}
