package org.krun.api;

import java.util.Locale;
import java.util.Objects;

/**
 * A virtio GPU (virtio 1.2 §5.7): the guest's {@code /dev/dri/card0}, with one or more scanouts (displays)
 * whose pixels the host reads through {@link VirtualMachine#displays()}.
 *
 * <p>{@link Mode#TWO_D}: the 2D command set. The guest draws into its own memory (DRM dumb buffers) and
 * copies what changed to the host; the host keeps a copy of each resource, bounded per device by
 * {@link #hostMemoryBytes()}.
 *
 * <p>{@link Mode#VIRGL}: 3D through the host's virglrenderer (OpenGL in the guest through Mesa's virgl
 * driver): the guest's command streams run on the host's EGL (Mesa's llvmpipe without a GPU); resources live
 * in the renderer, bounded by {@link #hostMemoryBytes()} as well (an estimate: 4 bytes per texel). The host
 * needs Debian's {@code libvirglrenderer1}; one VM per process has virgl at a time.
 *
 * <p>{@link Mode#VENUS}: virgl's device and Vulkan besides (Mesa's Venus driver in the guest, capset venus):
 * the guest's Vulkan calls run on the host's Vulkan driver (Mesa's lavapipe without a GPU) inside
 * virglrenderer's render server, a process of its own started with the device and ended with it. The host
 * needs Debian's {@code virgl-server} and a Vulkan driver ({@code mesa-vulkan-drivers}) besides.
 *
 * <p>Made by {@link #twoD()}, {@link #virgl()}, {@link #venus()} or {@link #parse(String)}, refined with the {@code with...} methods. Immutable.
 */
public final class GpuSpec implements DeviceSpec {

    /** The device type of the GPU. */
    public static final String TYPE = "gpu";
    /** The default size of each scanout. */
    public static final int DEFAULT_WIDTH = 1280;
    public static final int DEFAULT_HEIGHT = 800;
    /** The smallest and largest scanout side: EDID's detailed timing holds 12 bits. */
    public static final int MIN_SIDE = 16;
    public static final int MAX_SIDE = 4095;
    /** The most scanouts a device has (virtio 1.2 §5.7: VIRTIO_GPU_MAX_SCANOUTS). */
    public static final int MAX_SCANOUTS = 16;
    /** The default bound on host memory for the guest's resources. */
    public static final long DEFAULT_HOST_MEMORY = 256L << 20;
    /** The least and most a device may be given for its resources. */
    public static final long MIN_HOST_MEMORY = 1L << 20;
    public static final long MAX_HOST_MEMORY = 16L << 30;

    /** What the device offers. */
    public enum Mode {
        /** The 2D command set: resources in host memory, copied from guest memory, shown on scanouts. */
        TWO_D,
        /**
         * 3D: the 2D command set and virgl's (contexts, 3D resources, command submission, fences, capsets
         * virgl and virgl2), executed by the host's virglrenderer.
         *
         * @since 1.6
         */
        VIRGL,
        /**
         * 3D with Vulkan: everything {@link #VIRGL} offers, and the capset venus with contexts that name
         * their capset (VIRTIO_GPU_F_CONTEXT_INIT), run by virglrenderer's Venus renderer in its render
         * server over the host's Vulkan driver.
         *
         * @since 1.7
         */
        VENUS;

        /** The name on the command line ({@code 2d}, {@code virgl}, {@code venus}). */
        public String cliName() {
            return switch (this) {
                case TWO_D -> "2d";
                case VIRGL -> "virgl";
                case VENUS -> "venus";
            };
        }
    }

    private final Mode mode;
    private final int scanouts;
    private final int width;
    private final int height;
    private final long hostMemoryBytes;

    private GpuSpec(Mode mode, int scanouts, int width, int height, long hostMemoryBytes) {
        this.mode = Objects.requireNonNull(mode, "mode");
        if (scanouts < 1 || scanouts > MAX_SCANOUTS) {
            throw new VmConfigException("a GPU has 1 to " + MAX_SCANOUTS + " scanouts, not " + scanouts);
        }
        if (width < MIN_SIDE || width > MAX_SIDE || height < MIN_SIDE || height > MAX_SIDE) {
            throw new VmConfigException("GPU scanout size " + width + "x" + height + " is out of range (" + MIN_SIDE
                    + " to " + MAX_SIDE + " pixels a side)");
        }
        if (hostMemoryBytes < MIN_HOST_MEMORY || hostMemoryBytes > MAX_HOST_MEMORY) {
            throw new VmConfigException("GPU host memory " + hostMemoryBytes + " bytes is out of range (1 MiB to 16 GiB)");
        }
        if (hostMemoryBytes < 4L * width * height) {
            throw new VmConfigException("GPU host memory of " + (hostMemoryBytes >> 20) + " MiB does not hold one "
                    + width + "x" + height + " frame");
        }
        this.scanouts = scanouts;
        this.width = width;
        this.height = height;
        this.hostMemoryBytes = hostMemoryBytes;
    }

    /** A 2D GPU with one {@value #DEFAULT_WIDTH}x{@value #DEFAULT_HEIGHT} scanout and 256 MiB for resources. */
    public static GpuSpec twoD() {
        return new GpuSpec(Mode.TWO_D, 1, DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_HOST_MEMORY);
    }

    /**
     * A virgl (3D, OpenGL) GPU with one {@value #DEFAULT_WIDTH}x{@value #DEFAULT_HEIGHT} scanout and 256 MiB
     * for resources.
     *
     * @since 1.6
     */
    public static GpuSpec virgl() {
        return new GpuSpec(Mode.VIRGL, 1, DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_HOST_MEMORY);
    }

    /**
     * A Venus (3D, Vulkan and OpenGL) GPU with one {@value #DEFAULT_WIDTH}x{@value #DEFAULT_HEIGHT} scanout
     * and 256 MiB for resources.
     *
     * @since 1.7
     */
    public static GpuSpec venus() {
        return new GpuSpec(Mode.VENUS, 1, DEFAULT_WIDTH, DEFAULT_HEIGHT, DEFAULT_HOST_MEMORY);
    }

    /**
     * A GPU from the command line's form {@code MODE[,size=WxH][,scanouts=N][,memory=MiB]}, as in
     * {@code krun run --gpu 2d,size=1024x768}.
     *
     * @throws VmConfigException with a one-line message naming what is wrong
     */
    public static GpuSpec parse(String text) {
        String[] parts = text.strip().split(",");
        GpuSpec spec = switch (parts[0].strip().toLowerCase(Locale.ROOT)) {
            case "2d" -> twoD();
            case "virgl" -> virgl();
            case "venus" -> venus();
            default -> throw new VmConfigException("--gpu takes 2d, virgl or venus, not '" + parts[0].strip() + "'");
        };
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i].strip();
            int eq = p.indexOf('=');
            String key = eq < 0 ? p : p.substring(0, eq).strip();
            String value = eq < 0 ? "" : p.substring(eq + 1).strip();
            switch (key) {
                case "size" -> {
                    int x = value.toLowerCase(Locale.ROOT).indexOf('x');
                    if (x < 0) {
                        throw new VmConfigException("--gpu size is WIDTHxHEIGHT, not '" + value + "'");
                    }
                    spec = spec.withSize(number("size", value.substring(0, x)), number("size", value.substring(x + 1)));
                }
                case "scanouts" -> spec = spec.withScanouts(number("scanouts", value));
                case "memory" -> spec = spec.withHostMemoryBytes((long) number("memory", value) << 20);
                default -> throw new VmConfigException("--gpu has no option '" + key + "' (it takes: memory, scanouts, size)");
            }
        }
        return spec;
    }

    private static int number(String key, String value) {
        try {
            return Integer.parseInt(value.strip());
        } catch (NumberFormatException e) {
            throw new VmConfigException("--gpu " + key + " takes a number, not '" + value + "'");
        }
    }

    public GpuSpec withSize(int width, int height) {
        return new GpuSpec(mode, scanouts, width, height, hostMemoryBytes);
    }

    public GpuSpec withScanouts(int scanouts) {
        return new GpuSpec(mode, scanouts, width, height, hostMemoryBytes);
    }

    public GpuSpec withHostMemoryBytes(long bytes) {
        return new GpuSpec(mode, scanouts, width, height, bytes);
    }

    public Mode mode() {
        return mode;
    }

    /** How many scanouts (displays) the guest sees; all of {@link #width()}x{@link #height()}. */
    public int scanouts() {
        return scanouts;
    }

    /** The width the device reports for each scanout (its preferred mode and EDID). */
    public int width() {
        return width;
    }

    public int height() {
        return height;
    }

    /**
     * The most host memory the guest's resources may take together; a resource beyond it is refused with
     * VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY.
     */
    public long hostMemoryBytes() {
        return hostMemoryBytes;
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GpuSpec g && g.mode == mode && g.scanouts == scanouts && g.width == width
                && g.height == height && g.hostMemoryBytes == hostMemoryBytes;
    }

    @Override
    public int hashCode() {
        return Objects.hash(mode, scanouts, width, height, hostMemoryBytes);
    }

    @Override
    public String toString() {
        return "GpuSpec[" + mode.cliName() + ", " + scanouts + " x " + width + "x" + height + ", "
                + (hostMemoryBytes >> 20) + " MiB]";
    }
}
