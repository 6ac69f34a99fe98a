import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.krun.api.GpuSpec;
import org.krun.device.gpu.internal.GpuFactory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.HostDisplays;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioFeatures;

/**
 * bench/gpu, part 1 (any host): the 2D device's own cost in-process. The driver side (the test-jar's
 * MockDriverQueue) plays Linux's plane update for one full-screen XRGB framebuffer whose backing is a list
 * of 4 KiB guest pages (Linux's dumb buffers are shmem pages: scattered in the worst case): per frame a
 * TRANSFER_TO_HOST_2D of the whole screen and a RESOURCE_FLUSH, so the host copies the pixels from guest RAM
 * into the resource and converts them into the scanout's ARGB frame. Also a 64x64 damage rectangle per frame
 * (a cursor-sized update). Frames per second and MiB/s of guest pixels, median of ROUNDS rounds.
 *
 * Usage: java -cp ... bench/GpuBench.java SECONDS ROUNDS
 */
public class GpuBench {
    static final int HDR = 24;

    public static void main(String[] args) throws Exception {
        double seconds = Double.parseDouble(args[0]);
        int rounds = Integer.parseInt(args[1]);
        System.out.println("host: " + HostInfo.hostKind() + "; " + HostInfo.cpuModel() + "; "
                + Runtime.getRuntime().availableProcessors() + " CPUs; Java " + Runtime.version());
        System.out.println("part 1: the device in-process (no guest), median of " + rounds + " rounds of " + seconds + " s");
        System.out.printf("  %-44s %12s %12s%n", "update", "frames/s", "MiB/s");
        for (int[] size : new int[][] {{1280, 800}, {1920, 1080}}) {
            for (int damage : new int[] {0, 64}) {
                List<Double> fps = new ArrayList<>();
                for (int r = 0; r < rounds; r++) {
                    fps.add(run(size[0], size[1], damage, seconds));
                }
                fps.sort(null);
                double median = fps.get(fps.size() / 2);
                long bytes = damage == 0 ? 4L * size[0] * size[1] : 4L * damage * damage;
                String what = (damage == 0 ? "full screen " : damage + "x" + damage + " rect of ") + size[0] + "x" + size[1];
                System.out.printf("  %-44s %12.1f %12.1f%n", what, median, median * bytes / (1 << 20));
            }
        }
    }

    /** Frames per second of transfer + flush for a {@code w} x {@code h} screen; {@code damage} 0: all of it. */
    static double run(int w, int h, int damage, double seconds) throws Exception {
        long fbBytes = 4L * w * h;
        try (TestGuestMemory ram = TestGuestMemory.create(fbBytes + (64 << 20))) {
            MockDriverQueue control = new MockDriverQueue(ram, 256);
            MockDriverQueue cursor = new MockDriverQueue(ram, 256);
            VirtioDevice gpu = new GpuFactory().create(GpuSpec.twoD().withSize(w, h));
            gpu.activate(new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1 | 2,
                    List.of(control.configuredQueue(), cursor.configuredQueue())));
            long fb = ram.allocate(fbBytes, 4096);
            ram.memory().fill(fb, fbBytes, (byte) 0x5a);
            int pages = (int) ((fbBytes + 4095) / 4096);
            ByteBuffer entries = ByteBuffer.allocate(pages * 16).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < pages; i++) {
                entries.putLong(i * 16, fb + 4096L * i).putInt(i * 16 + 8, 4096);
            }
            send(gpu, control, cmd(0x0101, 16).putInt(24, 1).putInt(28, 2).putInt(32, w).putInt(36, h), null);
            send(gpu, control, cmd(0x0106, 8).putInt(24, 1).putInt(28, pages), entries.array());
            send(gpu, control, cmd(0x0103, 24).putInt(32, w).putInt(36, h).putInt(40, 0).putInt(44, 1), null);
            int rw = damage == 0 ? w : damage;
            int rh = damage == 0 ? h : damage;
            int x = damage == 0 ? 0 : w / 3;
            int y = damage == 0 ? 0 : h / 3;
            byte[] transfer = cmd(0x0105, 32).putInt(24, x).putInt(28, y).putInt(32, rw).putInt(36, rh)
                    .putLong(40, (long) y * w * 4 + x * 4L).putInt(48, 1).array();
            byte[] flush = cmd(0x0104, 24).putInt(24, x).putInt(28, y).putInt(32, rw).putInt(36, rh).putInt(40, 1).array();
            long frames = 0;
            long start = System.nanoTime();
            long end = start + (long) (seconds * 1e9);
            long now;
            do {
                send(gpu, control, transfer);
                send(gpu, control, flush);
                frames++;
                now = System.nanoTime();
            } while (now < end);
            if (((HostDisplays) gpu).displays().get(0).frame().isEmpty()) {
                throw new AssertionError("the scanout shows nothing");
            }
            gpu.close();
            return frames / ((now - start) / 1e9);
        }
    }

    static ByteBuffer cmd(int type, int body) {
        return ByteBuffer.allocate(HDR + body).order(ByteOrder.LITTLE_ENDIAN).putInt(0, type);
    }

    static void send(VirtioDevice gpu, MockDriverQueue q, ByteBuffer request, byte[] more) {
        List<byte[]> readable = more == null ? List.of(request.array()) : List.of(request.array(), more);
        q.addChain(readable, List.of(HDR));
        gpu.queueNotify(0);
        check(q);
    }

    static void send(VirtioDevice gpu, MockDriverQueue q, byte[] request) {
        q.addChain(List.of(request), List.of(HDR));
        gpu.queueNotify(0);
        check(q);
    }

    static void check(MockDriverQueue q) {
        for (MockDriverQueue.Used u : q.usedEntries()) {
            int type = ByteBuffer.wrap(u.written()).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
            if (type != 0x1100) {
                throw new AssertionError("response 0x" + Integer.toHexString(type));
            }
        }
    }
}
