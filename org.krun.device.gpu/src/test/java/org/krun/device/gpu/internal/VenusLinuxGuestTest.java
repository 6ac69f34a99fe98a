package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeoutException;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.GpuSpec;
import org.krun.api.GuestMount;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.device.virtiofs.internal.FsFactory;
import org.krun.vmm.testing.LinuxGuest;
import org.krun.vmm.testing.RecordingFactory;

/**
 * One boot of krun's kernel with a Venus virtio-gpu and the Debian root with Mesa's Venus driver
 * (guest/fixtures/debian-venus-rootfs.sh), the guest's Vulkan loader restricted to that driver: {@code vulkaninfo
 * --summary} must list a Venus device whose name carries the host's driver (lavapipe: llvmpipe), and
 * venuscheck (src/test/guest) must find it, run its compute shader over {@value #COUNT} elements in
 * host-visible memory and get every element and the sum right. While the VM runs, virglrenderer's render
 * server is a child of this process; after the VM is closed none is left.
 *
 * <p>Skipped where the host's virglrenderer speaks Venus wire format 0 (Debian bookworm's 0.10.4): the only
 * Venus driver Debian offers for bookworm guests (Mesa 25.0.7 from bookworm-backports) refuses it.
 */
class VenusLinuxGuestTest {
    private static final int COUNT = 4096;
    private static final String RENDER_SERVER = "virgl_render_server";

    @Test
    void vulkaninfoListsAVenusDeviceOverTheHostsDriverAndAComputeShaderGetsItsResult(@TempDir Path dir) throws Exception {
        LinuxGuest.assumeKvm();
        Assumptions.assumeTrue(Virgl.problem() == null, Virgl.problem());
        Assumptions.assumeTrue(VenusHost.problem() == null, VenusHost.problem());
        var program = VenusLinuxGuestTest.class.getResource("/guest/venuscheck");
        Assumptions.assumeTrue(program != null, "venuscheck was not built (libvulkan-dev, glslang-tools): SKIPPED");
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/sbin/debootstrap")), "no debootstrap: SKIPPED");
        // Mesa's Venus driver (the fixture's is bookworm-backports' 25.0.7) refuses a renderer whose
        // capset says wire_format_version 0 ("Unsupported wire format version 0" with VN_DEBUG=init), and that is
        // what virglrenderer 0.10.4 (Debian bookworm's) says; a newer virglrenderer speaks a newer wire format.
        // -Dkrun.test.venus.anyWireFormat=true boots anyway, to see the guest's own words.
        int wire = hostVenusWireFormat();
        Assumptions.assumeTrue(wire >= 1 || Boolean.getBoolean("krun.test.venus.anyWireFormat"), "the host's virglrenderer "
                + "offers Venus wire format " + wire + "; the fixture's Mesa Venus driver needs 1 or later (a newer virglrenderer): SKIPPED");
        Path repo = Path.of(System.getProperty("user.dir")).getParent();
        Path debian = Path.of(run(repo.resolve("guest/fixtures/debian-venus-rootfs.sh").toString()).lines()
                .reduce((a, b) -> b).orElseThrow());
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.copy(Path.of(program.toURI()), share.resolve("venuscheck"), StandardCopyOption.REPLACE_EXISTING);
        share.resolve("venuscheck").toFile().setExecutable(true);
        assertEquals(0, renderServers(), "a render server before the VM");

        // the kernel's view of the device first (its negotiated features), then the two Vulkan programs; Venus
        // says why it gives up on a device (VN_DEBUG=init)
        String script = "dmesg | grep -i -E 'drm|virtio.gpu'; ls /dev/dri; vulkaninfo --summary 2>&1; echo \"vulkaninfo exit $?\"; "
                + "exec /mnt/venus/venuscheck " + COUNT + " 2>&1";
        RecordingFactory<VirtioGpu> gpus = new RecordingFactory<>(new GpuFactory(), VirtioGpu.class);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        VmExit exit;
        long serversWhileRunning = 0;
        try (VirtualMachine vm = LinuxGuest.krun(gpus, new FsFactory()).create(LinuxGuest.config("/bin/sh", "-c", script)
                .root(debian).ephemeralRoot(true).memoryMib(768)
                .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                .env("VK_DRIVER_FILES", "/usr/share/vulkan/icd.d/virtio_icd.json")
                .env("VK_ICD_FILENAMES", "/usr/share/vulkan/icd.d/virtio_icd.json")
                .env("HOME", "/root")
                .env("VN_DEBUG", "init")
                .device(GpuSpec.venus().withSize(640, 480))
                .device(new FsShareSpec("venus", share, true))
                .mount(new GuestMount("venus", "/mnt/venus", "virtiofs", ""))
                .console(ConsoleSpec.pipes(out, err, true)).build())) {
            vm.start();
            serversWhileRunning = renderServers();
            try {
                exit = vm.waitFor(Duration.ofSeconds(1500));
            } catch (TimeoutException e) {
                vm.kill();
                throw new AssertionError("guest did not finish\n" + out.toString(StandardCharsets.UTF_8) + err);
            }
        }
        String log = out.toString(StandardCharsets.UTF_8);
        for (String l : log.lines().toList()) {
            System.out.println("[venus guest] " + l);
        }
        assertTrue(serversWhileRunning >= 1, "virglrenderer's render server ran while the VM did");
        assertEquals(0, renderServers(), "the render server ended with the VM");
        assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), log + err);
        assertTrue(log.lines().anyMatch(l -> l.contains("deviceName") && l.contains("Venus") && l.contains("llvmpipe")),
                "vulkaninfo --summary lists a Venus device backed by the host's llvmpipe:\n" + log + err);
        assertTrue(log.contains("vulkaninfo exit 0"), log + err);
        long sum = 0;
        for (long i = 0; i < COUNT; i++) {
            sum += (i * i + 7) & 0xffffffffL;
        }
        String result = "venus compute: " + COUNT + " values, sum " + sum + ", last " + ((COUNT - 1L) * (COUNT - 1) + 7);
        for (String check : List.of("ok venus device", "ok host-visible coherent memory type", "ok map memory",
                "ok compute pipeline", "ok wait for the dispatch", result, "ok compute result", "venuscheck passed")) {
            assertTrue(log.lines().anyMatch(l -> l.startsWith(check)), "guest check '" + check + "':\n" + log + err);
        }
        assertFalse(log.contains("FAIL"), log);
        assertEquals(0, exit.status(), log + err);
        System.out.println("venus: " + log.lines().filter(l -> l.startsWith("venus device:") || l.startsWith("venus compute:"))
                .toList());
    }

    /** The host's struct virgl_renderer_capset_venus's first field, wire_format_version. */
    static int hostVenusWireFormat() {
        VirglRenderer r = VirglRenderer.acquire("VenusLinuxGuestTest (capset)", true);
        try {
            return r.venusWireFormat();
        } finally {
            r.release();
        }
    }

    /** virglrenderer's render servers among this process's descendants. */
    static long renderServers() {
        return ProcessHandle.current().descendants()
                .filter(p -> p.info().command().map(c -> c.endsWith(RENDER_SERVER)).orElse(false)).count();
    }

    private static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed");
        }
        return out;
    }
}
