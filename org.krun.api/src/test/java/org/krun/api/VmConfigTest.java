package org.krun.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.Test;

class VmConfigTest {

    private static VmConfig.Builder valid() {
        return VmConfig.builder().kernel(Path.of("/boot/vmlinux")).command("/bin/true");
    }

    @Test
    void defaultsAreOneCpu512MibAndRootWorkdir() {
        VmConfig c = valid().build();
        assertEquals(1, c.cpus());
        assertEquals(512, c.memoryMib());
        assertEquals("/", c.workdir());
        assertEquals("krun", c.hostname());
        assertEquals(List.of("/bin/true"), c.command());
    }

    @Test
    void cpuCountOutOfRangeIsAConfigError() {
        assertThrows(VmConfigException.class, () -> valid().cpus(0).build());
        assertThrows(VmConfigException.class, () -> valid().cpus(-1).build());
        assertThrows(VmConfigException.class, () -> valid().cpus(VmConfig.MAX_CPUS + 1).build());
        assertEquals(VmConfig.MAX_CPUS, valid().cpus(VmConfig.MAX_CPUS).build().cpus());
    }

    @Test
    void memoryOutOfRangeIsAConfigError() {
        assertThrows(VmConfigException.class, () -> valid().memoryMib(0).build());
        assertThrows(VmConfigException.class, () -> valid().memoryMib(VmConfig.MIN_MEMORY_MIB - 1).build());
        assertThrows(VmConfigException.class, () -> valid().memoryMib(VmConfig.MAX_MEMORY_MIB + 1).build());
        assertEquals(VmConfig.MIN_MEMORY_MIB, valid().memoryMib(VmConfig.MIN_MEMORY_MIB).build().memoryMib());
    }

    @Test
    void emptyCommandIsAConfigError() {
        assertThrows(VmConfigException.class, () -> valid().command(List.of()).build());
        assertThrows(VmConfigException.class, () -> valid().command("").build());
    }

    @Test
    void relativeWorkdirIsAConfigError() {
        assertThrows(VmConfigException.class, () -> valid().workdir("tmp").build());
        assertThrows(VmConfigException.class, () -> valid().workdir("./tmp").build());
        assertEquals("/tmp", valid().workdir("/tmp").build().workdir());
        assertEquals("/", valid().workdir("").build().workdir());
    }

    @Test
    void missingKernelIsAConfigError() {
        assertThrows(VmConfigException.class, () -> VmConfig.builder().command("/bin/true").build());
    }

    @Test
    void badEnvironmentNamesAreConfigErrors() {
        assertThrows(VmConfigException.class, () -> valid().env("A=B", "x").build());
        assertThrows(VmConfigException.class, () -> valid().env("", "x").build());
        assertThrows(VmConfigException.class, () -> valid().env("A\0", "x").build());
        assertEquals("x", valid().env("A", "x").build().env().get("A"));
    }

    @Test
    void nonPositiveTimeoutIsAConfigError() {
        assertThrows(VmConfigException.class, () -> valid().timeout(Duration.ZERO).build());
        assertThrows(VmConfigException.class, () -> valid().timeout(Duration.ofSeconds(-1)).build());
    }

    @Test
    void hostNamesMustBeValidHostNames() {
        for (String bad : List.of("a b/c", "a b", "-a", "a-", "a..b", ".a", "a.", "host_name", "h\u00e9te", "a/b",
                "x".repeat(65), "a." + "b".repeat(64))) {
            VmConfigException e = assertThrows(VmConfigException.class, () -> valid().hostname(bad).build(), bad);
            assertTrue(e.getMessage().contains("hostname"), e.getMessage());
        }
        for (String good : List.of("krun", "a", "web-1", "a.b.c", "A1", "x".repeat(63), "1")) {
            assertEquals(good, valid().hostname(good).build().hostname());
        }
    }

    @Test
    void twoMountsAtOneGuestPathAreAConfigError() {
        VmConfig.Builder b = valid().mount(new GuestMount("a", "/x", "virtiofs", "")).mount(new GuestMount("b", "/x/", "virtiofs", ""));
        VmConfigException e = assertThrows(VmConfigException.class, b::build);
        assertTrue(e.getMessage().contains("/x"), e.getMessage());
        assertThrows(VmConfigException.class, () -> valid().mount(new GuestMount("a", "/x", "virtiofs", ""))
                .mount(new GuestMount("b", "/y/../x", "virtiofs", "")).build());
        assertEquals(2, valid().mount(new GuestMount("a", "/x", "virtiofs", ""))
                .mount(new GuestMount("b", "/x/y", "virtiofs", "")).build().mounts().size());
    }

    @Test
    void kernelArgumentsMustBeSingleParameters() {
        for (String bad : List.of("", " ", "--", "a\nb", "a\tb")) {
            assertThrows(VmConfigException.class, () -> valid().kernelArg(bad).build(), bad);
        }
        assertEquals(List.of("quiet", "a=b"), valid().kernelArg("quiet").kernelArg("a=b").build().kernelArgs());
    }

    @Test
    void configIsImmutableAndRoundTripsThroughItsBuilder() {
        VmConfig c = valid().cpus(2).env("A", "1").rlimit(Rlimit.parse("NOFILE=1024")).kernelArg("quiet").build();
        assertThrows(UnsupportedOperationException.class, () -> c.command().add("x"));
        assertThrows(UnsupportedOperationException.class, () -> c.env().put("B", "2"));
        assertEquals(c, c.toBuilder().build());
    }

    @Test
    void aConfigIsMadeOnlyThroughItsBuilder() {
        assertEquals(0, VmConfig.class.getConstructors().length, "no public constructor: new properties must not break callers");
        assertEquals(0, DiskSpec.class.getConstructors().length);
        assertEquals(0, ConsoleSpec.class.getConstructors().length);
    }
}
