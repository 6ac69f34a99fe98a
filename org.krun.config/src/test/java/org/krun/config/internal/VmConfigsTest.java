package org.krun.config.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.lang.reflect.Proxy;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.NetSpec;
import org.krun.api.PortForward;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;

/** Configuration properties to VM configurations, as DS hands them over (typed, with the defaults). */
class VmConfigsTest {
    private static final Optional<Path> KERNEL = Optional.of(Path.of("/cache/vmlinux"));
    private static final Optional<Path> ROOTFS = Optional.of(Path.of("/cache/rootfs"));

    /** A typed configuration as DS builds one: the given properties, the annotation's defaults for the rest. */
    private static VmConfiguration configuration(Map<String, Object> properties) {
        return (VmConfiguration) Proxy.newProxyInstance(VmConfiguration.class.getClassLoader(),
                new Class<?>[] {VmConfiguration.class}, (proxy, method, args) -> {
                    Object v = properties.get(method.getName());
                    return v != null ? v : method.getDefaultValue();
                });
    }

    private static VmConfig from(Map<String, Object> properties) {
        return VmConfigs.from(configuration(properties), KERNEL, ROOTFS, OutputStream.nullOutputStream());
    }

    @Test
    void everyPropertyReachesTheVmConfig() {
        VmConfig c = from(Map.ofEntries(
                Map.entry("cpus", 2),
                Map.entry("memoryMib", 128),
                Map.entry("kernel", "/k/probe.elf"),
                Map.entry("initrd", "/k/initrd.cpio"),
                Map.entry("root", "/srv/root"),
                Map.entry("command", new String[] {"/bin/sh", "-c", "echo $GREETING"}),
                Map.entry("env", new String[] {"GREETING=hello=world", "EMPTY="}),
                Map.entry("workdir", "/tmp"),
                Map.entry("hostname", "box"),
                Map.entry("kernelArgs", new String[] {"probe.wait"}),
                Map.entry("timeoutSeconds", 30L),
                Map.entry("defaultDevices", false),
                Map.entry("kernelLog", true)));

        assertEquals(2, c.cpus());
        assertEquals(128, c.memoryMib());
        assertEquals(Path.of("/k/probe.elf"), c.kernel());
        assertEquals(Optional.of(Path.of("/k/initrd.cpio")), c.initrd());
        assertEquals(Optional.of(Path.of("/srv/root")), c.root());
        assertEquals(List.of("/bin/sh", "-c", "echo $GREETING"), c.command());
        assertEquals(Map.of("GREETING", "hello=world", "EMPTY", ""), c.env());
        assertEquals("/tmp", c.workdir());
        assertEquals("box", c.hostname());
        assertEquals(List.of("probe.wait"), c.kernelArgs());
        assertEquals(Optional.of(Duration.ofSeconds(30)), c.timeout());
        assertFalse(c.defaultDevices());
        assertEquals(true, c.kernelLog());
    }

    @Test
    void networkingPropertiesMakeTheDevicesKrunRunsOptionsMake() {
        VmConfig c = from(Map.of("command", new String[] {"/bin/true"},
                "net", new String[] {"tsi"},
                "vsock", new String[] {"1024:/run/agent.sock", "2048:/run/in.sock,listen"},
                "publish", new String[] {"18080:80", "5353:53/udp"}));

        VsockSpec vsock = (VsockSpec) c.devices().stream().filter(d -> d.type().equals(VsockSpec.TYPE)).findFirst()
                .orElseThrow();
        assertEquals(VsockSpec.Tsi.INET, vsock.tsi());
        assertEquals(List.of(new VsockPort(1024, Path.of("/run/agent.sock"), false),
                new VsockPort(2048, Path.of("/run/in.sock"), true)), vsock.ports());
        assertEquals(List.of(new PortForward(18080, 80, PortForward.Protocol.TCP),
                new PortForward(5353, 53, PortForward.Protocol.UDP)), vsock.published());
    }

    @Test
    void netNoneLeavesOutTheDefaultVsockAndACardTakesItsPlace() {
        assertEquals(java.util.Set.of(VsockSpec.TYPE),
                from(Map.of("command", new String[] {"/bin/true"}, "net", new String[] {"none"})).withoutDefaults());

        VmConfig card = from(Map.of("command", new String[] {"/bin/true"}, "net", new String[] {"passt"},
                "publish", new String[] {"18080:80"}));
        NetSpec net = (NetSpec) card.devices().stream().filter(d -> d.type().equals(NetSpec.TYPE)).findFirst()
                .orElseThrow();
        assertEquals(List.of(new PortForward(18080, 80, PortForward.Protocol.TCP)), net.published());
        assertFalse(card.devices().stream().anyMatch(d -> d.type().equals(VsockSpec.TYPE)),
                "with a card, socket impersonation is off unless asked for");
    }

    @Test
    void aBadNetworkingPropertyIsNamedInTheError() {
        assertEquals("property net tsi and property net none contradict each other", assertThrows(
                VmConfigException.class, () -> from(Map.of("command", new String[] {"/bin/true"},
                        "net", new String[] {"tsi", "none"}))).getMessage());
        assertEquals("property publish 80: publishing a port needs property net passt or tsi, and property net is none",
                assertThrows(VmConfigException.class, () -> from(Map.of("command", new String[] {"/bin/true"},
                        "net", new String[] {"none"}, "publish", new String[] {"80"}))).getMessage());
        String bad = assertThrows(VmConfigException.class, () -> from(Map.of("command", new String[] {"/bin/true"},
                "publish", new String[] {"80:x"}))).getMessage();
        assertTrue(bad.startsWith("property publish 80:x: "), bad);
    }

    @Test
    void gpuPropertyMakesAGpuAndABadOneIsNamed() {
        VmConfig c = from(Map.of("command", new String[] {"/bin/true"}, "gpu", "2d,size=800x600"));
        assertEquals(List.of(org.krun.api.GpuSpec.twoD().withSize(800, 600)),
                c.devices().stream().filter(d -> d.type().equals(org.krun.api.GpuSpec.TYPE)).toList());
        assertEquals(List.of(org.krun.api.GpuSpec.venus()), from(Map.of("command", new String[] {"/bin/true"}, "gpu", "venus"))
                .devices().stream().filter(d -> d.type().equals(org.krun.api.GpuSpec.TYPE)).toList());
        assertTrue(from(Map.of("command", new String[] {"/bin/true"})).devices().stream()
                .noneMatch(d -> d.type().equals(org.krun.api.GpuSpec.TYPE)), "no GPU unless asked for");
        String bad = assertThrows(VmConfigException.class, () -> from(Map.of("command", new String[] {"/bin/true"},
                "gpu", "2d,size=1x1"))).getMessage();
        assertTrue(bad.startsWith("property gpu: ") && !bad.contains("\n"), bad);
    }

    @Test
    void withoutKernelTheDefaultKernelAndRootfsAreUsed() {
        VmConfig c = from(Map.of("command", new String[] {"/bin/true"}));

        assertEquals(KERNEL.get(), c.kernel());
        assertEquals(ROOTFS, c.root());
        assertEquals(1, c.cpus());
        assertEquals(512, c.memoryMib());
        assertEquals(Optional.empty(), c.timeout());
        assertEquals("/", c.workdir());
    }

    @Test
    void aKernelOfItsOwnGetsNoDefaultRoot() {
        VmConfig c = from(Map.of("command", new String[] {"x"}, "kernel", "/k/probe.elf"));

        assertEquals(Optional.empty(), c.root());
    }

    @Test
    void outputReceivesBothStreamsWithoutInput() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        VmConfig c = VmConfigs.from(configuration(Map.of("command", new String[] {"x"})), KERNEL, ROOTFS, out);

        assertEquals(ConsoleSpec.Mode.PIPES, c.console().mode());
        assertSame(out, c.console().stdout());
        assertSame(out, c.console().stderr());
        assertFalse(c.console().input(), "nobody writes: the command reads end-of-file");
    }

    @Test
    void missingCommandIsRefusedNamingTheProperty() {
        VmConfigException e = assertThrows(VmConfigException.class, () -> from(Map.of()));
        assertEquals("property command is missing", e.getMessage());
    }

    @Test
    void missingKernelWithoutDefaultIsRefused() {
        VmConfigException e = assertThrows(VmConfigException.class, () -> VmConfigs.from(
                configuration(Map.of("command", new String[] {"x"})), Optional.empty(), ROOTFS,
                OutputStream.nullOutputStream()));
        assertEquals("property kernel is missing and there is no default (framework property krun.kernel)",
                e.getMessage());
    }

    @Test
    void environmentEntryWithoutNameIsRefused() {
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> from(Map.of("command", new String[] {"x"}, "env", new String[] {"NOEQUALS"})));
        assertEquals("property env: 'NOEQUALS' is not NAME=VALUE", e.getMessage());
    }

    @Test
    void negativeTimeoutIsRefused() {
        assertThrows(VmConfigException.class,
                () -> from(Map.of("command", new String[] {"x"}, "timeoutSeconds", -1L)));
    }

    @Test
    void soundPropertyAddsASoundCard() {
        VmConfig c = from(Map.of("command", new String[] {"x"}, "sound", "wav:/tmp/out.wav,capture=/tmp/in.wav"));
        assertEquals(List.of(org.krun.api.SoundSpec.wav(Path.of("/tmp/out.wav"), Path.of("/tmp/in.wav"))),
                c.devices().stream().filter(d -> d instanceof org.krun.api.SoundSpec).toList());
        VmConfig none = from(Map.of("command", new String[] {"x"}));
        assertEquals(List.of(), none.devices().stream().filter(d -> d instanceof org.krun.api.SoundSpec).toList());
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> from(Map.of("command", new String[] {"x"}, "sound", "jack")));
        assertEquals("property sound: unknown backend 'jack' (expected null, wav:FILE or pulse)", e.getMessage());
    }
}
