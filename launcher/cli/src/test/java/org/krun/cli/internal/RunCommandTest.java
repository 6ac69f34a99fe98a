package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.GuestMount;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;

import picocli.CommandLine;

/** How {@code krun run}'s options become a {@link VmConfig} (no VM is created). */
class RunCommandTest {

    private static VmConfig parse(String... args) {
        RunCommand run = new RunCommand(null);
        new CommandLine(run).parseArgs(args);
        return run.config(ConsoleSpec.discard(), false);
    }

    @Test
    void memoryOvercommitIsOffUnlessAskedFor() {
        assertFalse(parse("--kernel", "/k", "--root", "/r", "--mem", "1024", "--", "/bin/true").memoryOvercommit());
        assertTrue(parse("--kernel", "/k", "--root", "/r", "--mem-overcommit", "--", "/bin/true").memoryOvercommit());
    }

    @Test
    void templatesAreOnWhereTheLauncherNamesAWritableFolderUnlessTurnedOffOrTheKernelLogIsWanted(@TempDir Path dir)
            throws java.io.IOException {
        String before = System.getProperty("krun.templates");
        try {
            System.clearProperty("krun.templates");
            assertTrue(parse("--kernel", "/k", "--root", "/r", "--", "/bin/true").templateCache().isEmpty(), "no folder named");
            Path templates = dir.resolve("cache").resolve("templates");
            System.setProperty("krun.templates", templates.toString());
            assertEquals(java.util.Optional.of(templates), parse("--kernel", "/k", "--root", "/r", "--", "/bin/true").templateCache());
            assertFalse(java.nio.file.Files.exists(templates), "not made by parsing: bad input leaves nothing behind");
            assertTrue(parse("--no-template", "--kernel", "/k", "--root", "/r", "--", "/bin/true").templateCache().isEmpty());
            assertTrue(parse("--kernel-log", "--kernel", "/k", "--root", "/r", "--", "/bin/true").templateCache().isEmpty(),
                    "a restored kernel has no boot to show");
            Path readOnly = java.nio.file.Files.createDirectory(dir.resolve("ro"));
            java.nio.file.Files.writeString(readOnly.resolve("cache"), "a file where the cache folder would go");
            System.setProperty("krun.templates", readOnly.resolve("cache").resolve("templates").toString());
            assertTrue(parse("--kernel", "/k", "--root", "/r", "--", "/bin/true").templateCache().isEmpty(),
                    "a folder that cannot be made means booting");
        } finally {
            if (before == null) {
                System.clearProperty("krun.templates");
            } else {
                System.setProperty("krun.templates", before);
            }
        }
    }

    @Test
    void defaultDevicesAreOnUnlessTurnedOff() {
        assertTrue(parse("--kernel", "/k", "--root", "/r", "--", "/bin/true").defaultDevices());
        assertFalse(parse("--no-default-devices", "--kernel", "/k", "--root", "/r", "--", "/bin/true").defaultDevices());
    }

    @Test
    void volumesBecomeSharesAndTheMountsOfThem(@TempDir Path dir) {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "-v", dir + ":/data", "-v", dir + ":/ro:ro", "--", "/bin/true");
        assertEquals(List.of(new FsShareSpec("krun-share0", dir, false), new FsShareSpec("krun-share1", dir, true)),
                c.devices());
        assertEquals(List.of(new GuestMount("krun-share0", "/data", "virtiofs", ""),
                new GuestMount("krun-share1", "/ro", "virtiofs", "ro")), c.mounts());
    }

    @Test
    void malformedVolumesAreOneLineErrors(@TempDir Path dir) {
        for (String bad : List.of(dir.toString(), dir + ":relative", dir + ":/x:rw", ":/x", dir + ":/", dir + ":/x/..")) {
            VmConfigException e = assertThrows(VmConfigException.class,
                    () -> parse("--kernel", "/k", "--root", "/r", "-v", bad, "--", "/bin/true"), bad);
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void devicesOfAnyTypeBecomeGenericSpecsWithTheirOptions() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--device", "test-null", "--device",
                "balloon,free-page-reporting=off", "--device", "x.y_z-1,a=1,b=,c=d=e", "--", "/bin/true");
        assertEquals(List.of(new GenericDeviceSpec("test-null", Map.of()),
                new GenericDeviceSpec("balloon", Map.of("free-page-reporting", "off")),
                new GenericDeviceSpec("x.y_z-1", Map.of("a", "1", "b", "", "c", "d=e"))), c.devices());
    }

    @Test
    void gpuBecomesAGpuSpecWithItsOptions() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--gpu", "2d,size=640x480,scanouts=2,memory=64",
                "--screenshot-on-exit", "shot.png", "--", "/bin/true");
        assertEquals(List.of(org.krun.api.GpuSpec.twoD().withSize(640, 480).withScanouts(2).withHostMemoryBytes(64L << 20)),
                c.devices());
        assertEquals(List.of(org.krun.api.GpuSpec.twoD()), parse("--kernel", "/k", "--root", "/r", "--gpu", "2d", "--", "/bin/true").devices());
        assertEquals(List.of(org.krun.api.GpuSpec.virgl()),
                parse("--kernel", "/k", "--root", "/r", "--gpu", "virgl", "--", "/bin/true").devices());
        assertEquals(List.of(org.krun.api.GpuSpec.venus()),
                parse("--kernel", "/k", "--root", "/r", "--gpu", "venus", "--", "/bin/true").devices());
    }

    @Test
    void badGpuOptionsAreOneLineErrors() {
        for (List<String> bad : List.of(List.of("--gpu", "3d"), List.of("--gpu", "vulkan"), List.of("--gpu", "2d,size=10"),
                List.of("--gpu", "2d,size=8x8"), List.of("--gpu", "2d,size=axb"), List.of("--gpu", "2d,scanouts=17"),
                List.of("--gpu", "2d,memory=0"), List.of("--gpu", "2d,colour=red"), List.of("--screenshot-on-exit", "x.png"),
                List.of("--gpu", "2d", "--screenshot-on-exit", "x.jpg"))) {
            List<String> args = new ArrayList<>(List.of("--kernel", "/k", "--root", "/r"));
            args.addAll(bad);
            args.addAll(List.of("--", "/bin/true"));
            VmConfigException e = assertThrows(VmConfigException.class, () -> parse(args.toArray(String[]::new)), bad.toString());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
            assertTrue(e.getMessage().contains("gpu") || e.getMessage().contains("GPU") || e.getMessage().contains("screenshot"),
                    e.getMessage());
        }
    }

    @Test
    void malformedDevicesAreOneLineErrorsThatNameTheOption() {
        for (String bad : List.of("", ",a=1", "bad type", "x,novalue", "x,=v", "x,a=1,a=2", "blk,file=/x", "fs", "console")) {
            VmConfigException e = assertThrows(VmConfigException.class,
                    () -> parse("--kernel", "/k", "--root", "/r", "--device", bad, "--", "/bin/true"), bad);
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
            assertTrue(e.getMessage().startsWith("--device " + bad), e.getMessage());
        }
    }

    @Test
    void vsockPortMapsBecomeOneVsockDevice(@TempDir Path dir) {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--vsock", "5000:" + dir.resolve("a.sock"), "--vsock",
                "6000:" + dir.resolve("b.sock") + ",listen", "--", "/bin/true");
        assertEquals(List.of(org.krun.api.VsockSpec.create().withTsi(org.krun.api.VsockSpec.Tsi.INET)
                .withPort(new org.krun.api.VsockPort(5000, dir.resolve("a.sock"), false))
                .withPort(new org.krun.api.VsockPort(6000, dir.resolve("b.sock"), true))), c.devices());
        for (String bad : List.of("5000", ":x", "x:/p", "0:/p", "262144:/p", "5000:/p,listen,x")) {
            VmConfigException e = assertThrows(VmConfigException.class,
                    () -> parse("--kernel", "/k", "--root", "/r", "--vsock", bad, "--", "/bin/true"), bad);
            assertTrue(e.getMessage().startsWith("--vsock " + bad), e.getMessage());
        }
    }

    @Test
    void withoutNetworkingOptionsTheVmTakesTheDefaultImpersonation() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--", "/bin/true");
        assertEquals(List.of(), c.devices(), "the vsock device's default serves");
        assertEquals(java.util.Set.of(), c.withoutDefaults());
    }

    @Test
    void netNoneGoesWithoutTheDefaultVsockDevice() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--net", "none", "--", "/bin/true");
        assertEquals(List.of(), c.devices());
        assertEquals(java.util.Set.of("vsock"), c.withoutDefaults());
        assertTrue(c.defaultDevices(), "the other default devices stay");
    }

    @Test
    void publishedPortsGoToTheImpersonatingVsockDevice() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "-p", "8080:80", "--publish", "5353:53/udp", "--", "/bin/true");
        assertEquals(List.of(org.krun.api.VsockSpec.create().withTsi(org.krun.api.VsockSpec.Tsi.INET)
                .withPublished(new org.krun.api.PortForward(8080, 80, org.krun.api.PortForward.Protocol.TCP))
                .withPublished(new org.krun.api.PortForward(5353, 53, org.krun.api.PortForward.Protocol.UDP))), c.devices());
    }

    @Test
    void aRootOfTheHostsOwnTreeImpersonatesUnixSocketsToo() {
        VmConfig c = parse("--kernel", "/k", "--root", "/", "-p", "8080", "--", "/bin/true");
        assertEquals(org.krun.api.VsockSpec.Tsi.INET_AND_UNIX, ((org.krun.api.VsockSpec) c.devices().get(0)).tsi());
        VmConfig inetOnly = parse("--kernel", "/k", "--root", "/", "--net", "tsi", "--", "/bin/true");
        assertEquals(org.krun.api.VsockSpec.Tsi.INET, ((org.krun.api.VsockSpec) inetOnly.devices().get(0)).tsi());
    }

    @Test
    void badNetworkingOptionsAreOneLineErrors() {
        for (List<String> bad : List.of(List.of("--net", "bridge"), List.of("--net", "none", "-p", "80"),
                List.of("-p", "80:x"), List.of("-p", "0:80"), List.of("-p", "80:80/sctp"), List.of("-p", "1:2:3"),
                List.of("-p", "8080:80", "-p", "8080:81"))) {
            List<String> args = new java.util.ArrayList<>(List.of("--kernel", "/k", "--root", "/r"));
            args.addAll(bad);
            args.addAll(List.of("--", "/bin/true"));
            VmConfigException e = assertThrows(VmConfigException.class, () -> parse(args.toArray(String[]::new)),
                    bad.toString());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }

    @Test
    void aNetworkCardReplacesImpersonationAndTakesThePublishedPorts() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--net", "passt", "-p", "8080:80", "--", "/bin/true");
        assertEquals(List.of(org.krun.api.NetSpec.passt().withMac(org.krun.api.NetSpec.DEFAULT_MAC)
                .withPublished(new org.krun.api.PortForward(8080, 80, org.krun.api.PortForward.Protocol.TCP))), c.devices(),
                "no vsock device: its default steps aside for a card");
    }

    @Test
    void severalCardsGetTheirOwnMacsAndTsiOnlyWhenAskedFor() {
        VmConfig c = parse("--kernel", "/k", "--root", "/r", "--net", "unixgram=/tmp/g.sock,vfkit", "--net",
                "tap=tap7,ip=10.1.0.2/24,gw=10.1.0.1,mac=02:00:00:00:00:07", "--net", "tsi", "--", "/bin/true");
        assertEquals(3, c.devices().size());
        org.krun.api.NetSpec first = (org.krun.api.NetSpec) c.devices().get(0);
        org.krun.api.NetSpec second = (org.krun.api.NetSpec) c.devices().get(1);
        assertEquals(java.util.Optional.of(org.krun.api.NetSpec.defaultMac(0)), first.mac());
        assertTrue(first.vfkit());
        assertEquals(java.util.Optional.of("02:00:00:00:00:07"), second.mac());
        assertEquals(org.krun.api.VsockSpec.create().withTsi(org.krun.api.VsockSpec.Tsi.INET), c.devices().get(2));
    }

    @Test
    void badNetworkCardsAreOneLineErrors() {
        for (List<String> bad : List.of(List.of("--net", "unixstream=/s", "-p", "80"), List.of("--net", "passt", "--net", "none"),
                List.of("--net", "tap="), List.of("--net", "passt,mac=01:00:00:00:00:00"), List.of("--net", "tsi", "--net", "none"))) {
            List<String> args = new java.util.ArrayList<>(List.of("--kernel", "/k", "--root", "/r"));
            args.addAll(bad);
            args.addAll(List.of("--", "/bin/true"));
            VmConfigException e = assertThrows(VmConfigException.class, () -> parse(args.toArray(String[]::new)),
                    bad.toString());
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        }
    }
}
