package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.api.Frame;
import org.krun.api.GpuSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-gpu 2D (virtio 1.2 §5.7) with a hostile driver: every command with
 * resource ids, formats, sizes, rectangles and offsets near the edges and anywhere, backing lists of up to
 * tens of thousands of entries inside RAM, across region boundaries, in the hole and off its end, commands
 * short, unknown or of the 3D range, response buffers too short or absent, fence flags, garbage descriptors,
 * resets. Guest RAM has three regions, two of them contiguous.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: every chain comes back answered with a response
 * type of the spec; the device's host memory never exceeds its {@link GpuSpec#hostMemoryBytes()} budget, and
 * it holds no more than {@link Gpu2d#MAX_RESOURCES} resources and {@link Gpu2d#MAX_BACKING_ENTRIES_TOTAL}
 * backing entries; frames have the size of their scanout's rectangle; after a reset and at close every
 * resource's host memory is freed.
 */
class VirtioGpuFuzzTest {

    private static final long REGION0_SIZE = 1 << 20;
    private static final long REGION1 = 1 << 20; // contiguous with region 0
    private static final long REGION1_SIZE = 256 << 10;
    private static final long REGION2 = 1L << 32; // behind a hole, above 4 GiB
    private static final long REGION2_SIZE = 256 << 10;
    private static final long BUDGET = 1 << 20;
    private static final int MAX_STEPS = 48;
    private static final Set<Integer> RESPONSES = Set.of(RESP_OK_NODATA, RESP_OK_DISPLAY_INFO, RESP_OK_EDID,
            RESP_ERR_UNSPEC, RESP_ERR_OUT_OF_MEMORY, RESP_ERR_INVALID_SCANOUT_ID, RESP_ERR_INVALID_RESOURCE_ID,
            RESP_ERR_INVALID_PARAMETER);

    private static final TestGuestMemory MEMORY = TestGuestMemory.withRegions(0, REGION0_SIZE, REGION1, REGION1_SIZE,
            REGION2, REGION2_SIZE);

    static {
        FuzzBounds.quietLogs("org.krun.device.gpu");
    }

    /** Per input: steps of attach-backing lists (1 MiB of entries read and held), frame copies within the budget. */
    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-gpu",
            FuzzBounds.Limits.defaults().withAllocatedPerInput(MAX_STEPS * (4L << 20)),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void hostileCommandStreamsStayWithinTheDevicesBounds(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final GuestMemory mem = MEMORY.memory();
        private final VirtioGpu gpu;
        private final List<Resource> seen = new ArrayList<>();
        private List<MockDriverQueue> queues;
        private List<Virtqueue> deviceQueues;
        private FakeDeviceContext context;

        Scenario(FuzzInput in) {
            this.in = in;
            MEMORY.clear();
            gpu = new VirtioGpu(GpuSpec.twoD().withSize(64, 48).withScanouts(1 + in.below(2)).withHostMemoryBytes(BUDGET));
            activate();
        }

        private void activate() {
            queues = new ArrayList<>();
            deviceQueues = new ArrayList<>();
            for (int i = 0; i < gpu.queueCount(); i++) {
                MockDriverQueue q = new MockDriverQueue(MEMORY, 64);
                queues.add(q);
                deviceQueues.add(q.configuredQueue(in.bool()));
            }
            context = new FakeDeviceContext(mem, VirtioFeatures.VERSION_1 | F_EDID, deviceQueues);
            gpu.activate(context);
        }

        void run() {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    switch (in.below(19)) {
                        case 0, 1 -> create();
                        case 2 -> send(GpuDriver.command(CMD_RESOURCE_UNREF, 8).putInt(24, id()));
                        case 3, 4 -> attach();
                        case 5 -> send(GpuDriver.command(CMD_RESOURCE_DETACH_BACKING, 8).putInt(24, id()));
                        case 6 -> send(rectCommand(CMD_SET_SCANOUT, 24).putInt(40, in.pick(0, 1, 2, in.i32())).putInt(44, id()));
                        case 7, 8 -> send(rectCommand(CMD_TRANSFER_TO_HOST_2D, 32).putLong(40, offset()).putInt(48, id()));
                        case 9 -> send(rectCommand(CMD_RESOURCE_FLUSH, 24).putInt(40, id()));
                        case 10 -> send(GpuDriver.command(in.pick(CMD_GET_DISPLAY_INFO, CMD_GET_EDID), 8).putInt(24, in.pick(0, 1, 16, in.i32())));
                        case 11 -> cursor();
                        case 12 -> garbageCommand();
                        case 13 -> garbageChain();
                        case 14 -> gpu.writeConfig(in.below(CONFIG_SIZE), in.fixed(1));
                        case 16 -> createBlob();
                        case 17 -> setScanoutBlob();
                        case 18 -> send(GpuDriver.command(in.pick(CMD_RESOURCE_MAP_BLOB, CMD_RESOURCE_UNMAP_BLOB), 16).putInt(24, id())
                                .putLong(32, offset()));
                        default -> {
                            if (in.u8() < 32) {
                                keepResources();
                                gpu.reset();
                                checkFreed("reset");
                                activate();
                            }
                        }
                    }
                    check();
                }
            } finally {
                keepResources();
                gpu.close();
                checkFreed("close");
            }
        }

        private int id() {
            return in.pick(0, 1, 2, 3, 4, in.i32());
        }

        private long offset() {
            return in.pick(0L, 4L, 64L * 4, 64L * 4 * 47, -1L, in.i64(), in.i32() & 0xffffffffL);
        }

        private int side() {
            return in.pick(0, 1, 16, 48, 64, 255, 512, 16384, 16385, -1, in.u16(), in.i32());
        }

        private ByteBuffer rectCommand(int type, int body) {
            ByteBuffer b = GpuDriver.command(type, body);
            return b.putInt(24, in.pick(0, 1, 16, 63, -1, in.i32())).putInt(28, in.pick(0, 1, 16, 47, -1, in.i32()))
                    .putInt(32, side()).putInt(36, side());
        }

        private void create() {
            ByteBuffer b = GpuDriver.command(CMD_RESOURCE_CREATE_2D, 16);
            b.putInt(24, id()).putInt(28, in.pick(1, 2, 3, 4, 67, 68, 121, 134, 0, in.i32())).putInt(32, side()).putInt(36, side());
            send(b);
        }

        private void attach() {
            int n = in.pick(0, 1, 2, 3, 16, 1 + in.below(300), 4096, 70000);
            boolean lie = in.u8() < 16; // nr_entries larger than what follows
            ByteBuffer b = GpuDriver.command(CMD_RESOURCE_ATTACH_BACKING, 8).putInt(24, id()).putInt(28, lie ? n + in.below(1000) + 1 : n);
            int listed = Math.min(n, 8192); // what the driver lays out (the rest: nr_entries says more than follows)
            ByteBuffer e = ByteBuffer.allocate(listed * MEM_ENTRY_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            for (int i = 0; i < listed; i++) {
                long address;
                int length;
                switch (in.below(6)) {
                    case 0, 1, 2 -> {
                        address = in.below((int) (REGION0_SIZE / 4096)) * 4096L;
                        length = 4096 * (1 + in.below(4));
                    }
                    case 3 -> {
                        address = REGION1 - 4096;
                        length = 8192; // across the region 0/1 boundary
                    }
                    case 4 -> {
                        address = in.bool() ? REGION2 + REGION2_SIZE - 4096 : REGION1 + REGION1_SIZE;
                        length = 4096 * (1 + in.below(2)); // off the end, or the hole
                    }
                    default -> {
                        address = in.i64();
                        length = in.i32();
                    }
                }
                e.putLong(i * MEM_ENTRY_SIZE, address).putInt(i * MEM_ENTRY_SIZE + 8, length);
            }
            send(b, listed == 0 ? List.of() : List.of(e.array()));
        }

        /** RESOURCE_CREATE_BLOB: guest memory mostly, entries anywhere, sizes near and beyond what they hold. */
        private void createBlob() {
            int n = in.pick(0, 1, 2, 3, 1 + in.below(64));
            ByteBuffer e = ByteBuffer.allocate(n * MEM_ENTRY_SIZE).order(ByteOrder.LITTLE_ENDIAN);
            long held = 0;
            for (int i = 0; i < n; i++) {
                boolean inside = in.u8() < 200;
                long address = inside ? in.below((int) (REGION0_SIZE / 4096)) * 4096L : in.pick(REGION1 - 4096, REGION2, in.i64());
                int length = inside ? 4096 * (1 + in.below(4)) : in.pick(8192, -1, in.i32());
                e.putLong(i * MEM_ENTRY_SIZE, address).putInt(i * MEM_ENTRY_SIZE + 8, length);
                held += length & 0xffffffffL;
            }
            ByteBuffer b = GpuDriver.command(CMD_RESOURCE_CREATE_BLOB, 32);
            b.putInt(24, id()).putInt(28, in.pick(BLOB_MEM_GUEST, BLOB_MEM_GUEST, BLOB_MEM_HOST3D, BLOB_MEM_HOST3D_GUEST, in.i32()))
                    .putInt(32, in.pick(0, BLOB_FLAG_USE_SHAREABLE, BLOB_FLAG_USE_MAPPABLE, in.i32()))
                    .putInt(36, in.u8() < 16 ? n + 1 + in.below(100) : n).putLong(40, in.i64())
                    .putLong(48, in.pick(held, held - 1, held + 1, 4096L, 0L, -1L, in.i64()));
            send(b, n == 0 ? List.of() : List.of(e.array()));
        }

        /** SET_SCANOUT_BLOB: images, strides and offsets at and beyond the edges of the blob. */
        private void setScanoutBlob() {
            ByteBuffer b = rectCommand(CMD_SET_SCANOUT_BLOB, 72);
            int w = side();
            int h = side();
            b.putInt(40, in.pick(0, 1, 2, in.i32())).putInt(44, id()).putInt(48, w).putInt(52, h)
                    .putInt(56, in.pick(1, 2, 67, 134, 0, in.i32()))
                    .putInt(64, in.pick(w * 4, w * 4 - 4, 0, -4, in.i32())).putInt(80, (int) offset());
            send(b);
        }

        private void cursor() {
            ByteBuffer b = GpuDriver.command(in.pick(CMD_UPDATE_CURSOR, CMD_MOVE_CURSOR), 32);
            b.putInt(24, in.pick(0, 1, 16, in.i32())).putInt(28, in.i32()).putInt(32, in.i32()).putInt(40, id())
                    .putInt(44, in.i32()).putInt(48, in.i32());
            MockDriverQueue q = queues.get(VirtioGpu.CURSORQ);
            List<byte[]> readable = List.of(b.array());
            List<Integer> writable = in.bool() ? List.of() : List.of(in.pick(0, 8, HDR_SIZE, 64));
            if (!q.fits(readable, writable)) {
                return;
            }
            q.addChain(readable, writable);
            kick(VirtioGpu.CURSORQ);
        }

        private void garbageCommand() {
            int type = in.pick(0x0100 + in.below(16), 0x0200 + in.below(16), 0x0300 + in.below(3), in.i32());
            ByteBuffer b = ByteBuffer.allocate(in.pick(0, 4, HDR_SIZE, HDR_SIZE + 4, HDR_SIZE + in.below(64)))
                    .order(ByteOrder.LITTLE_ENDIAN);
            if (b.capacity() >= 4) {
                b.putInt(0, type);
            }
            byte[] rest = in.bytes(b.capacity());
            b.put(Math.min(4, b.capacity()), rest, 0, Math.min(rest.length, Math.max(0, b.capacity() - 4)));
            send(b);
        }

        private void garbageChain() {
            int queue = in.below(2);
            MockDriverQueue q = queues.get(queue);
            int n = 1 + in.below(4);
            if (n > q.freeDescriptorCount()) {
                return;
            }
            int[] d = q.reserveDescriptors(n);
            for (int i = 0; i < n; i++) {
                q.writeDescriptor(d[i], in.pick(0, REGION1 - 4, REGION2, -4096, in.i64()), in.pick(0, 4, 24, 4096, -1, in.i32()),
                        in.below(8) | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0), i + 1 < n ? d[i + 1] : in.below(66));
            }
            q.makeAvailable(in.u8() < 8 ? in.u16() : d[0]);
            gpu.queueNotify(queue);
            q.usedEntries();
        }

        private void send(ByteBuffer request) {
            send(request, List.of());
        }

        /** The request on the control queue, fenced or not, with a response buffer of a chosen size. */
        private void send(ByteBuffer request, List<byte[]> more) {
            if (request.capacity() >= 8 && in.u8() < 64) {
                request.putInt(4, FLAG_FENCE | (in.bool() ? FLAG_INFO_RING_IDX : 0)).putLong(8, in.i64());
            }
            MockDriverQueue q = queues.get(VirtioGpu.CONTROLQ);
            List<byte[]> readable = new ArrayList<>();
            readable.add(request.array());
            readable.addAll(more);
            int respSize = in.pick(HDR_SIZE + 16 * 24, HDR_SIZE + 8 + 1024, HDR_SIZE, 0, 8, HDR_SIZE + 100);
            List<Integer> writable = respSize == 0 ? List.of() : List.of(respSize);
            long bytes = 0;
            for (byte[] r : readable) {
                bytes += r.length;
            }
            if (!q.fits(readable, writable) || !MEMORY.fits(16, bytes + respSize)) {
                return;
            }
            int head = q.addChain(readable, writable);
            gpu.queueNotify(VirtioGpu.CONTROLQ);
            for (MockDriverQueue.Used u : q.usedEntries()) {
                if (u.id() == head && u.len() >= HDR_SIZE) {
                    int type = ByteBuffer.wrap(u.written()).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
                    if (!RESPONSES.contains(type)) {
                        throw new AssertionError("response type 0x" + Integer.toHexString(type));
                    }
                    int flags = ByteBuffer.wrap(u.written()).order(ByteOrder.LITTLE_ENDIAN).getInt(4);
                    int asked = request.capacity() >= 8 ? request.getInt(4) & (FLAG_FENCE | FLAG_INFO_RING_IDX) : 0;
                    if (flags != asked) {
                        throw new AssertionError("response flags " + flags + " for request flags " + asked);
                    }
                }
            }
        }

        private void kick(int queue) {
            gpu.queueNotify(queue);
            queues.get(queue).usedEntries();
        }

        private void keepResources() {
            Gpu2d s = gpu.state();
            if (s != null) {
                seen.addAll(s.resources());
            }
        }

        private void checkFreed(String when) {
            for (Resource r : seen) {
                if (!r.isFreed()) {
                    throw new AssertionError("resource " + r.id + " not freed at " + when);
                }
            }
            seen.clear();
        }

        private void check() {
            Gpu2d s = gpu.state();
            if (s == null) {
                return;
            }
            if (s.hostBytes() > BUDGET) {
                throw new AssertionError("host memory " + s.hostBytes() + " beyond the budget " + BUDGET);
            }
            long resourceBytes = 0;
            for (Resource r : s.resources()) {
                resourceBytes += r.hostBytes();
            }
            if (resourceBytes > s.hostBytes()) {
                throw new AssertionError("resources take " + resourceBytes + " bytes, the device counts " + s.hostBytes());
            }
            if (s.resourceCount() > Gpu2d.MAX_RESOURCES || s.backingEntries() > Gpu2d.MAX_BACKING_ENTRIES_TOTAL
                    || s.backingEntries() < 0) {
                throw new AssertionError(s.resourceCount() + " resources, " + s.backingEntries() + " backing entries");
            }
            for (Scanout sc : gpu.scanouts()) {
                Frame f = sc.frame().orElse(null);
                Rect r = sc.rect();
                if (f != null && (r == null || f.width() != r.width() || f.height() != r.height())) {
                    throw new AssertionError("frame " + f.width() + "x" + f.height() + " on scanout rect " + r);
                }
            }
            // A last notification of every queue, as a driver waiting for its chains would send: a chain made
            // available without one (e.g. a device-writable buffer the guest laid over another queue's avail
            // ring, which the device's answer then overwrote) is served now, or the ring is found broken.
            for (int q = 0; q < deviceQueues.size(); q++) {
                kick(q);
            }
            if (!context.resetReasons().isEmpty()) {
                return; // a queue the driver broke: the device stops serving it
            }
            for (int q = 0; q < deviceQueues.size(); q++) {
                Virtqueue vq = deviceQueues.get(q);
                if (vq.pending(mem) != 0 || vq.nextAvail() != vq.nextUsed()) {
                    throw new AssertionError("queue " + q + ": " + vq.pending(mem) + " chains left, " + vq.nextAvail()
                            + " taken, " + vq.nextUsed() + " returned");
                }
            }
        }
    }
}
