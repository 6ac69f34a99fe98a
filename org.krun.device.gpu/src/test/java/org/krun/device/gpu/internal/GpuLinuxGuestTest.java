package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;

import javax.imageio.ImageIO;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.Display;
import org.krun.api.Frame;
import org.krun.api.GpuSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One boot of krun's kernel with a 2D virtio-gpu: gpucheck (src/test/guest) finds the virtio_gpu DRM driver,
 * its connector's preferred mode (from the device's EDID and display info), draws a pattern into a dumb
 * buffer, shows it with SETCRTC, then redraws a rectangle and reports it with DIRTYFB. The host side
 * records every frame the scanout shows and checks both pictures pixel for pixel, then saves the last
 * frame as a PNG ({@code target/gpu-linux-guest.png}) and checks the file too.
 */
class GpuLinuxGuestTest {
    private static final int W = 640;
    private static final int H = 480;

    @TempDir
    Path dir;

    /** What gpucheck draws, as 0xAARRGGBB: {@code pattern(x, y, salt)} in XRGB, alpha opaque. */
    static int pattern(int x, int y, int salt) {
        return 0xff000000 | ((x * 7 + salt) & 0xff) << 16 | ((y * 5 + salt) & 0xff) << 8 | (((x ^ y) + salt) & 0xff);
    }

    static int expectedAfterDirty(int x, int y) {
        int x0 = W / 4;
        int y0 = H / 4;
        boolean inside = x >= x0 && x < x0 + W / 2 && y >= y0 && y < y0 + H / 3;
        return pattern(x, y, inside ? 77 : 0);
    }

    /** The first pixel where {@code f} differs from {@code expected}, or null. */
    private static String difference(Frame f, java.util.function.IntBinaryOperator expected) {
        if (f.width() != W || f.height() != H) {
            return "size " + f.width() + "x" + f.height();
        }
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                if (f.pixel(x, y) != expected.applyAsInt(x, y)) {
                    return String.format("pixel %d,%d is %08x, not %08x", x, y, f.pixel(x, y), expected.applyAsInt(x, y));
                }
            }
        }
        return null;
    }

    @Test
    void aGuestProgramsDumbBufferReachesTheHostPixelForPixel() throws Exception {
        LinuxGuest.assumeKvm();
        Path root = testRootfs(dir.resolve("rootfs"));
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        List<Frame> frames = new ArrayList<>();
        VmExit exit;
        Frame last;
        try (VirtualMachine vm = LinuxGuest.krun(new GpuFactory()).create(LinuxGuest.config()
                .root(root).device(GpuSpec.twoD().withSize(W, H))
                .command("/usr/local/bin/gpucheck", Integer.toString(W), Integer.toString(H))
                .console(ConsoleSpec.pipes(out, err, false)).build())) {
            assertEquals(1, vm.displays().size());
            Display display = vm.displays().get(0);
            assertTrue(display.lastFrame().isEmpty(), "nothing shown before the guest runs");
            display.onChange(seq -> display.frame().ifPresent(frames::add)); // on the device's loop: in order
            vm.start();
            try {
                exit = vm.waitFor(Duration.ofSeconds(300));
            } catch (TimeoutException e) {
                vm.kill();
                throw new AssertionError("guest did not finish\n" + out.toString(StandardCharsets.UTF_8) + err);
            }
            last = display.lastFrame().orElseThrow(() -> new AssertionError("the scanout never showed anything"));
        }
        String log = out.toString(StandardCharsets.UTF_8);
        for (String l : log.lines().toList()) {
            System.out.println("[gpu guest] " + l);
        }
        assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), log + err);
        assertEquals(0, exit.status(), log + err);
        for (String check : List.of("ok open /dev/dri/card0", "ok driver virtio_gpu", "ok resources", "ok connector",
                "ok preferred mode " + W + "x" + H, "ok create dumb", "ok addfb", "ok map dumb", "ok setcrtc pattern 0",
                "ok dirtyfb pattern 77", "gpucheck passed")) {
            assertTrue(log.lines().anyMatch(l -> l.startsWith(check)), "guest check '" + check + "':\n" + log);
        }
        assertFalse(log.contains("FAIL"), log);

        assertFalse(frames.isEmpty(), "the scanout changed while the guest ran");
        assertTrue(frames.stream().anyMatch(f -> difference(f, GpuLinuxGuestTest::pattern0) == null),
                "one frame is the first picture exactly; the frames differ: "
                        + frames.stream().map(f -> difference(f, GpuLinuxGuestTest::pattern0)).toList());
        assertEquals(null, difference(last, GpuLinuxGuestTest::expectedAfterDirty), "the last frame is the redrawn picture");

        Path png = Path.of("target", "gpu-linux-guest.png");
        Files.createDirectories(png.getParent());
        assertTrue(ImageIO.write(last.toImage(), "png", png.toFile()));
        BufferedImage read = ImageIO.read(png.toFile());
        assertEquals(W, read.getWidth());
        assertEquals(H, read.getHeight());
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                assertEquals(expectedAfterDirty(x, y), read.getRGB(x, y), "PNG pixel " + x + "," + y);
            }
        }
        System.out.println("gpu: " + frames.size() + " frames seen; last saved as " + png.toAbsolutePath());
    }

    private static int pattern0(int x, int y) {
        return pattern(x, y, 0);
    }

    private static Path testRootfs(Path root) throws Exception {
        Process cp = new ProcessBuilder("cp", "-a", LinuxGuest.rootfs().toRealPath() + "/.", root.toString())
                .inheritIO().start();
        assertEquals(0, cp.waitFor());
        Path bin = Files.createDirectories(root.resolve("usr/local/bin"));
        Path program = Path.of(GpuLinuxGuestTest.class.getResource("/guest/gpucheck").toURI());
        Files.copy(program, bin.resolve("gpucheck"), StandardCopyOption.REPLACE_EXISTING);
        Files.setPosixFilePermissions(bin.resolve("gpucheck"), PosixFilePermissions.fromString("rwxr-xr-x"));
        return root;
    }
}
