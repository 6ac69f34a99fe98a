package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
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
 * One boot of krun's kernel with a virgl virtio-gpu and a Debian root with Mesa (guest/fixtures/
 * debian-mesa-rootfs.sh): virglcheck (src/test/guest) opens a surfaceless EGL display on the guest's render
 * node, must find Mesa's virgl driver (GL_RENDERER contains "virgl"), renders a known image (two colours,
 * one in the lower-left quadrant) into a texture through an FBO, reads it back with glReadPixels and checks
 * it; before that, the guest's driver must report 3D, blob resources and the host-visible region the device
 * offers (DRM_VIRTGPU_GETPARAM: the region was placed where Linux could claim it); while it waits on stdin, the host reads the device's resources back from virglrenderer and must find
 * the same image there.
 */
class VirglLinuxGuestTest {
    private static final int W = 64;
    private static final int H = 48;
    private static final int A = 0x336699;
    private static final int B = 0xff8000;

    @Test
    void aSurfacelessEglProgramRendersThroughVirglAndTheHostSeesItsImage(@TempDir Path dir) throws Exception {
        LinuxGuest.assumeKvm();
        Assumptions.assumeTrue(Virgl.problem() == null, Virgl.problem());
        var program = VirglLinuxGuestTest.class.getResource("/guest/virglcheck");
        Assumptions.assumeTrue(program != null, "virglcheck was not built (libegl-dev, libgles-dev): SKIPPED");
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/sbin/debootstrap")), "no debootstrap: SKIPPED");
        Path repo = Path.of(System.getProperty("user.dir")).getParent();
        Path debian = Path.of(run(repo.resolve("guest/fixtures/debian-mesa-rootfs.sh").toString()).lines()
                .reduce((a, b) -> b).orElseThrow());
        Path share = Files.createDirectories(dir.resolve("share"));
        Files.copy(Path.of(program.toURI()), share.resolve("virglcheck"), StandardCopyOption.REPLACE_EXISTING);
        share.resolve("virglcheck").toFile().setExecutable(true);

        RecordingFactory<VirtioGpu> gpus = new RecordingFactory<>(new GpuFactory(), VirtioGpu.class);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        VmExit exit;
        List<Gpu3d.Image> images;
        try (VirtualMachine vm = LinuxGuest.krun(gpus, new FsFactory()).create(LinuxGuest.config("/mnt/virgl/virglcheck",
                Integer.toString(W), Integer.toString(H), Integer.toHexString(A), Integer.toHexString(B))
                .root(debian).ephemeralRoot(true).memoryMib(512)
                .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                .device(GpuSpec.virgl().withSize(640, 480))
                .device(new FsShareSpec("virgl", share, true))
                .mount(new GuestMount("virgl", "/mnt/virgl", "virtiofs", ""))
                .console(ConsoleSpec.pipes(out, err, true)).build())) {
            vm.start();
            long deadline = System.nanoTime() + Duration.ofSeconds(600).toNanos();
            while (!out.toString(StandardCharsets.UTF_8).contains("waiting") && !vm.exit().isDone()
                    && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            Gpu3d g = gpus.created().get(0).state3d();
            images = g == null ? List.of() : g.images(W * H);
            try (OutputStream in = vm.consoleInput()) {
                in.write('\n');
            } catch (java.io.IOException e) {
                // the guest stopped already; its output says why
            }
            try {
                exit = vm.waitFor(Duration.ofSeconds(120));
            } catch (TimeoutException e) {
                vm.kill();
                throw new AssertionError("guest did not finish\n" + out.toString(StandardCharsets.UTF_8) + err);
            }
        }
        String log = out.toString(StandardCharsets.UTF_8);
        for (String l : log.lines().toList()) {
            System.out.println("[virgl guest] " + l);
        }
        assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), log + err);
        for (String check : List.of("ok virtio-gpu params 3d=1 resource_blob=1 host_visible=1", "ok egl surfaceless", "ok context current", "ok renderer is virgl", "ok framebuffer complete",
                "ok image read back", "virglcheck passed")) {
            assertTrue(log.lines().anyMatch(l -> l.startsWith(check)), "guest check '" + check + "':\n" + log + err);
        }
        assertFalse(log.contains("FAIL"), log);
        assertEquals(0, exit.status(), log + err);

        // the host's copy of the guest's texture: the same image, row 0 at the bottom as GL has it
        String seen = images.stream().map(i -> i.resourceId() + ":" + i.format() + " " + i.width() + "x" + i.height()).toList()
                .toString();
        assertTrue(images.stream().anyMatch(VirglLinuxGuestTest::isTheImage), "no resource holds the image; resources " + seen);
        System.out.println("virgl: the guest's image found on the host among " + seen);
    }

    private static boolean isTheImage(Gpu3d.Image i) {
        if (i.width() != W || i.height() != H) {
            return false;
        }
        int[] argb = new int[W * H];
        java.nio.ByteBuffer.wrap(i.pixels()).order(java.nio.ByteOrder.LITTLE_ENDIAN).asIntBuffer().get(argb);
        i.format().toArgb(argb, 0, argb.length);
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                int want = x < W / 2 && y < H / 2 ? B : A;
                if ((argb[y * W + x] & 0xffffff) != want) {
                    return false;
                }
            }
        }
        return true;
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
