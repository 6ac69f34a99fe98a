package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
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
        for (String bad : List.of(dir.toString(), dir + ":relative", dir + ":/x:rw", ":/x", "/no/such/dir:/x")) {
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
        assertEquals(List.of(org.krun.api.VsockSpec.create()
                .withPort(new org.krun.api.VsockPort(5000, dir.resolve("a.sock"), false))
                .withPort(new org.krun.api.VsockPort(6000, dir.resolve("b.sock"), true))), c.devices());
        for (String bad : List.of("5000", ":x", "x:/p", "0:/p", "262144:/p", "5000:/p,listen,x")) {
            VmConfigException e = assertThrows(VmConfigException.class,
                    () -> parse("--kernel", "/k", "--root", "/r", "--vsock", bad, "--", "/bin/true"), bad);
            assertTrue(e.getMessage().startsWith("--vsock " + bad), e.getMessage());
        }
    }
}
