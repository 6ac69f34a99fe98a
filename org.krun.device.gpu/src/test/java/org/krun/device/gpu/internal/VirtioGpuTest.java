package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.api.Frame;
import org.krun.api.GpuSpec;
import org.krun.spi.virtio.VirtioIds;

/** virtio-gpu 2D against driver-side mock queues, driven as Linux's virtio-gpu DRM driver drives it. */
class VirtioGpuTest {
    private static final int W = 64;
    private static final int H = 48;
    private static final int XRGB = PixelFormat.B8G8R8X8_UNORM.id();

    private GpuDriver driver;

    @AfterEach
    void close() {
        if (driver != null) {
            driver.close();
        }
    }

    private GpuDriver driver(GpuSpec spec) {
        driver = new GpuDriver(new VirtioGpu(spec), 16 << 20);
        return driver;
    }

    private GpuDriver driver() {
        return driver(GpuSpec.twoD().withSize(W, H));
    }

    /** The test pattern: a colour from the pixel's position. */
    private static int pattern(int x, int y, int salt) {
        return ((x * 7 + salt) & 0xff) << 16 | ((y * 5 + salt) & 0xff) << 8 | ((x ^ y) + salt) & 0xff;
    }

    /**
     * A guest framebuffer of {@code w} x {@code h} XRGB pixels in three separate ranges of guest RAM (not
     * page-aligned splits), filled with {@link #pattern}; returns address/length pairs for attach.
     */
    private long[] guestFramebuffer(int w, int h, int salt) {
        int bytes = w * h * 4;
        int[] cuts = {0, bytes / 3 + 4, 2 * bytes / 3 + 12, bytes};
        long[] pairs = new long[6];
        ByteBuffer all = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                all.putInt((y * w + x) * 4, pattern(x, y, salt) | 0x5a000000); // X byte: garbage the host ignores
            }
        }
        for (int i = 0; i < 3; i++) {
            byte[] piece = java.util.Arrays.copyOfRange(all.array(), cuts[i], cuts[i + 1]);
            driver.ram.allocate(4096, 4096); // a gap, so the ranges are not contiguous
            long at = driver.ram.put(piece);
            pairs[2 * i] = at;
            pairs[2 * i + 1] = piece.length;
        }
        return pairs;
    }

    private static void writeGuestPixel(GpuDriver d, long[] pairs, int w, int x, int y, int argb) {
        long offset = ((long) y * w + x) * 4;
        for (int i = 0; i < pairs.length; i += 2) {
            if (offset < pairs[i + 1]) {
                d.ram.memory().setInt(pairs[i] + offset, argb);
                return;
            }
            offset -= pairs[i + 1];
        }
        throw new AssertionError();
    }

    @Test
    void identifiesAsGpuWithControlAndCursorQueuesAndEdid() {
        VirtioGpu gpu = new VirtioGpu(GpuSpec.twoD().withScanouts(2));
        assertEquals(VirtioIds.GPU, gpu.deviceType());
        assertEquals(16, gpu.deviceType(), "virtio 1.2 §5.7.1");
        assertEquals(2, gpu.queueCount());
        assertEquals(F_EDID | F_RESOURCE_BLOB, gpu.deviceFeatures());
        assertEquals(List.of(), gpu.sharedMemoryRegions(), "2D has guest blobs only: no host-visible region");
        byte[] config = new byte[16];
        gpu.readConfig(0, config);
        ByteBuffer c = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0, c.getInt(CONFIG_EVENTS_READ));
        assertEquals(2, c.getInt(CONFIG_NUM_SCANOUTS));
        assertEquals(0, c.getInt(CONFIG_NUM_CAPSETS));
        assertEquals(2, gpu.displays().size());
        gpu.close();
    }

    @Test
    void eventsClearClearsEventsReadAndReadsBackZero() {
        VirtioGpu gpu = new VirtioGpu(GpuSpec.twoD());
        gpu.raiseEvents(EVENT_DISPLAY | 4);
        gpu.writeConfig(CONFIG_EVENTS_CLEAR, new byte[] {EVENT_DISPLAY, 0, 0, 0});
        byte[] config = new byte[16];
        gpu.readConfig(0, config);
        ByteBuffer c = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(4, c.getInt(CONFIG_EVENTS_READ));
        assertEquals(0, c.getInt(CONFIG_EVENTS_CLEAR));
        gpu.writeConfig(CONFIG_NUM_SCANOUTS, new byte[] {9, 0, 0, 0});
        gpu.readConfig(0, config);
        assertEquals(1, ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).getInt(CONFIG_NUM_SCANOUTS), "read-only");
        gpu.close();
    }

    @Test
    void displayInfoReportsEachScanoutEnabledAtTheConfiguredSize() {
        driver(GpuSpec.twoD().withSize(1024, 768).withScanouts(2));
        GpuDriver.Reply r = driver.send(GpuDriver.command(CMD_GET_DISPLAY_INFO, 0), List.of(), HDR_SIZE + 16 * 24);
        assertEquals(RESP_OK_DISPLAY_INFO, r.type());
        for (int i = 0; i < 16; i++) {
            ByteBuffer b = r.body();
            boolean on = i < 2;
            assertEquals(0, b.getInt(i * 24));
            assertEquals(0, b.getInt(i * 24 + 4));
            assertEquals(on ? 1024 : 0, b.getInt(i * 24 + 8));
            assertEquals(on ? 768 : 0, b.getInt(i * 24 + 12));
            assertEquals(on ? 1 : 0, b.getInt(i * 24 + 16), "enabled of scanout " + i);
        }
    }

    @Test
    void edidIsAValidBaseBlockWhosePreferredModeIsTheScanoutSize() {
        driver(GpuSpec.twoD().withSize(1920, 1080));
        GpuDriver.Reply r = driver.send(GpuDriver.command(CMD_GET_EDID, 8).putInt(24, 0), List.of(), HDR_SIZE + 8 + 1024);
        assertEquals(RESP_OK_EDID, r.type());
        assertEquals(128, r.body().getInt(0));
        byte[] e = new byte[128];
        r.body().get(8, e);
        assertArrayEquals(new byte[] {0, -1, -1, -1, -1, -1, -1, 0}, java.util.Arrays.copyOf(e, 8));
        int sum = 0;
        for (byte b : e) {
            sum += b & 0xff;
        }
        assertEquals(0, sum & 0xff, "checksum");
        assertEquals(1, e[18]);
        assertEquals(4, e[19], "EDID 1.4");
        int hActive = (e[56] & 0xff) | ((e[58] & 0xf0) << 4);
        int vActive = (e[59] & 0xff) | ((e[61] & 0xf0) << 4);
        assertEquals(1920, hActive);
        assertEquals(1080, vActive);
        int clock = ((e[54] & 0xff) | (e[55] & 0xff) << 8) * 10_000;
        int hTotal = hActive + ((e[57] & 0xff) | (e[58] & 0x0f) << 8);
        int vTotal = vActive + ((e[60] & 0xff) | (e[61] & 0x0f) << 8);
        assertEquals(60.0, (double) clock / hTotal / vTotal, 0.1, "refresh");

        assertEquals(RESP_ERR_INVALID_PARAMETER,
                driver.send(GpuDriver.command(CMD_GET_EDID, 8).putInt(24, 1), List.of(), HDR_SIZE + 8 + 1024).type());
    }

    @Test
    void edidOfTheLargestSizeStillHasAValidPixelClock() {
        byte[] e = Edid.of(4095, 4095, 1);
        int clock = (e[54] & 0xff) | (e[55] & 0xff) << 8;
        assertTrue(clock > 0 && clock <= 0xffff);
        int sum = 0;
        for (byte b : e) {
            sum += b & 0xff;
        }
        assertEquals(0, sum & 0xff);
    }

    @Test
    void aFlushedScanoutShowsTheGuestFramebufferPixelForPixel() {
        driver();
        long[] fb = guestFramebuffer(W, H, 0);
        assertEquals(RESP_OK_NODATA, driver.create(1, XRGB, W, H));
        assertEquals(RESP_OK_NODATA, driver.attach(1, fb));
        assertEquals(RESP_OK_NODATA, driver.setScanout(0, 1, 0, 0, W, H));
        assertEquals(RESP_OK_NODATA, driver.transfer(1, 0, 0, 0, W, H));
        assertEquals(RESP_OK_NODATA, driver.flush(1, 0, 0, W, H));
        Frame f = driver.gpu.displays().get(0).frame().orElseThrow();
        assertEquals(W, f.width());
        assertEquals(H, f.height());
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                assertEquals(0xff000000 | pattern(x, y, 0), f.pixel(x, y), "pixel " + x + "," + y);
            }
        }
    }

    @Test
    void aPartialTransferAtLinuxsOffsetUpdatesOnlyThatRectangle() {
        driver();
        long[] fb = guestFramebuffer(W, H, 0);
        driver.create(1, XRGB, W, H);
        driver.attach(1, fb);
        driver.transfer(1, 0, 0, 0, W, H);
        driver.setScanout(0, 1, 0, 0, W, H);
        List<Long> changes = new ArrayList<>();
        driver.gpu.displays().get(0).onChange(changes::add);
        // the guest draws a 10x7 rectangle at (20, 30), transfers it (offset y * pitch + x * cpp) and flushes it
        for (int y = 30; y < 37; y++) {
            for (int x = 20; x < 30; x++) {
                writeGuestPixel(driver, fb, W, x, y, 0x00123456);
            }
        }
        writeGuestPixel(driver, fb, W, 0, 0, 0x00abcdef); // drawn but not transferred
        assertEquals(RESP_OK_NODATA, driver.transfer(1, 30L * W * 4 + 20 * 4, 20, 30, 10, 7));
        long before = driver.gpu.displays().get(0).frame().orElseThrow().sequence();
        assertEquals(RESP_OK_NODATA, driver.flush(1, 20, 30, 10, 7));
        Frame f = driver.gpu.displays().get(0).frame().orElseThrow();
        assertTrue(f.sequence() > before);
        assertEquals(List.of(f.sequence()), changes);
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                boolean inside = x >= 20 && x < 30 && y >= 30 && y < 37;
                assertEquals(inside ? 0xff123456 : 0xff000000 | pattern(x, y, 0), f.pixel(x, y), "pixel " + x + "," + y);
            }
        }
    }

    @Test
    void aScanoutShowingPartOfAResourceShowsThatRectangle() {
        driver();
        driver.create(1, XRGB, W, H);
        driver.attach(1, guestFramebuffer(W, H, 3));
        driver.transfer(1, 0, 0, 0, W, H);
        assertEquals(RESP_OK_NODATA, driver.setScanout(0, 1, 8, 4, 16, 12));
        Frame f = driver.gpu.displays().get(0).frame().orElseThrow();
        assertEquals(16, f.width());
        assertEquals(12, f.height());
        assertEquals(0xff000000 | pattern(8 + 5, 4 + 6, 3), f.pixel(5, 6));
    }

    @Test
    void everyFormatIsShownAsArgb() {
        // memory bytes of one pixel per format, and the ARGB it stands for
        int r = 0x11;
        int g = 0x22;
        int b = 0x33;
        int a = 0x44;
        Object[][] cases = {
                {PixelFormat.B8G8R8A8_UNORM, new byte[] {(byte) b, (byte) g, (byte) r, (byte) a}, 0x44112233},
                {PixelFormat.B8G8R8X8_UNORM, new byte[] {(byte) b, (byte) g, (byte) r, (byte) a}, 0xff112233},
                {PixelFormat.A8R8G8B8_UNORM, new byte[] {(byte) a, (byte) r, (byte) g, (byte) b}, 0x44112233},
                {PixelFormat.X8R8G8B8_UNORM, new byte[] {(byte) a, (byte) r, (byte) g, (byte) b}, 0xff112233},
                {PixelFormat.R8G8B8A8_UNORM, new byte[] {(byte) r, (byte) g, (byte) b, (byte) a}, 0x44112233},
                {PixelFormat.R8G8B8X8_UNORM, new byte[] {(byte) r, (byte) g, (byte) b, (byte) a}, 0xff112233},
                {PixelFormat.A8B8G8R8_UNORM, new byte[] {(byte) a, (byte) b, (byte) g, (byte) r}, 0x44112233},
                {PixelFormat.X8B8G8R8_UNORM, new byte[] {(byte) a, (byte) b, (byte) g, (byte) r}, 0xff112233},
        };
        for (Object[] c : cases) {
            int word = ByteBuffer.wrap((byte[]) c[1]).order(ByteOrder.LITTLE_ENDIAN).getInt();
            assertEquals((int) c[2], ((PixelFormat) c[0]).toArgb(word), c[0].toString());
        }
        assertEquals(8, PixelFormat.values().length);
    }

    @Test
    void badCommandsGetTheSpecsErrors() {
        driver();
        long[] fb = guestFramebuffer(W, H, 0);
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.create(0, XRGB, W, H), "id 0 is reserved");
        assertEquals(RESP_OK_NODATA, driver.create(1, XRGB, W, H));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.create(1, XRGB, W, H), "id in use");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.create(2, 99, W, H), "format");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.create(2, XRGB, 0, H), "empty");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.create(2, XRGB, -1, -1), "huge sides");
        assertEquals(RESP_ERR_OUT_OF_MEMORY, driver.create(2, XRGB, 16384, 16384), "beyond the device's host memory");
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.unref(7));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.transfer(1, 0, 0, 0, W, H), "no backing yet");
        assertEquals(RESP_ERR_UNSPEC, driver.attach(1, 15L << 20, 2 << 20), "backing past guest RAM");
        assertEquals(RESP_ERR_UNSPEC, driver.attach(1, -4096, 8192), "backing at a wild address");
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.attach(9, fb));
        assertEquals(RESP_OK_NODATA, driver.attach(1, fb));
        assertEquals(RESP_ERR_UNSPEC, driver.attach(1, fb), "backing twice");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.transfer(1, 0, 1, 0, W, H), "rect past the right edge");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.transfer(1, 0, -1, -1, 2, 2), "rect at 2^32 - 1");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.transfer(1, 4, 0, 0, W, H), "offset: the last row past the backing");
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.transfer(1, -8, 0, 0, 1, 1), "offset near 2^64");
        assertEquals(RESP_ERR_INVALID_SCANOUT_ID, driver.setScanout(1, 1, 0, 0, W, H));
        assertEquals(RESP_ERR_INVALID_SCANOUT_ID, driver.setScanout(-1, 1, 0, 0, W, H));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.setScanout(0, 5, 0, 0, W, H));
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.setScanout(0, 1, 1, 1, W, H));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.flush(5, 0, 0, 1, 1));
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.flush(1, 0, 0, W + 1, 1));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, driver.detach(5));
        assertEquals(RESP_OK_NODATA, driver.detach(1));
        assertEquals(RESP_ERR_UNSPEC, driver.detach(1), "no backing to detach");
        assertEquals(RESP_ERR_UNSPEC, driver.send(GpuDriver.command(0x0777, 0)).type(), "unknown command");
        assertEquals(RESP_ERR_UNSPEC, driver.send(GpuDriver.command(0x0200, 0)).type(), "3D: not offered");
        assertEquals(RESP_ERR_UNSPEC, driver.send(GpuDriver.command(CMD_GET_CAPSET_INFO, 8)).type(), "no capsets");
        assertEquals(RESP_ERR_UNSPEC, driver.send(GpuDriver.command(CMD_RESOURCE_CREATE_2D, 8)).type(), "short command");
        ByteBuffer manyEntries = GpuDriver.command(CMD_RESOURCE_ATTACH_BACKING, 8).putInt(24, 1).putInt(28, -1);
        assertEquals(RESP_ERR_UNSPEC, driver.send(manyEntries).type(), "2^32 - 1 entries in 0 bytes");
        assertEquals(RESP_ERR_UNSPEC, driver.send(GpuDriver.command(CMD_GET_DISPLAY_INFO, 0), List.of(), HDR_SIZE + 10).type(),
                "response buffer too short for the display info");
        assertTrue(driver.context.resetReasons().isEmpty(), "none of it needs a reset");
        assertEquals(Resource.hostBytes(W, H), driver.gpu.state().hostBytes());
    }

    @Test
    void fencedRequestsGetTheirFenceBack() {
        driver();
        ByteBuffer b = GpuDriver.command(CMD_RESOURCE_CREATE_2D, 16);
        b.putInt(4, FLAG_FENCE).putLong(8, 0x1234_5678_9abcL).putInt(24, 1).putInt(28, XRGB).putInt(32, 4).putInt(36, 4);
        GpuDriver.Reply r = driver.send(b);
        assertEquals(RESP_OK_NODATA, r.type());
        assertEquals(FLAG_FENCE, r.flags());
        assertEquals(0x1234_5678_9abcL, r.fenceId());
        GpuDriver.Reply plain = driver.send(GpuDriver.command(CMD_RESOURCE_UNREF, 8).putInt(24, 1).putLong(8, 99));
        assertEquals(0, plain.flags());
        assertEquals(0, plain.fenceId(), "no fence asked, none echoed");
    }

    @Test
    void unrefOfTheShownResourceTurnsTheScanoutOffAndKeepsTheLastFrame() {
        driver();
        driver.create(1, XRGB, W, H);
        driver.attach(1, guestFramebuffer(W, H, 9));
        driver.transfer(1, 0, 0, 0, W, H);
        driver.setScanout(0, 1, 0, 0, W, H);
        Resource r = driver.gpu.state().resource(1);
        assertEquals(RESP_OK_NODATA, driver.unref(1));
        assertTrue(r.isFreed());
        var display = driver.gpu.displays().get(0);
        assertTrue(display.frame().isEmpty());
        assertEquals(0xff000000 | pattern(3, 4, 9), display.lastFrame().orElseThrow().pixel(3, 4));
        assertEquals(0, driver.gpu.state().hostBytes());
    }

    @Test
    void aLastFrameLargerThanTheConfiguredSizeIsNotKept() {
        driver(GpuSpec.twoD().withSize(32, 32));
        driver.create(1, XRGB, W, H); // 64x48: larger than the display the device describes
        driver.setScanout(0, 1, 0, 0, W, H);
        assertTrue(driver.gpu.displays().get(0).frame().isPresent(), "shown while on");
        driver.setScanout(0, 0, 0, 0, 0, 0);
        assertTrue(driver.gpu.displays().get(0).lastFrame().isEmpty(), "not kept past the configured 32x32");
        driver.setScanout(0, 1, 0, 0, 32, 32);
        driver.setScanout(0, 0, 0, 0, 0, 0);
        assertEquals(32, driver.gpu.displays().get(0).lastFrame().orElseThrow().width());
    }

    @Test
    void setScanoutWithResourceZeroDisablesIt() {
        driver();
        driver.create(1, XRGB, W, H);
        driver.setScanout(0, 1, 0, 0, W, H);
        assertTrue(driver.gpu.displays().get(0).frame().isPresent());
        assertEquals(RESP_OK_NODATA, driver.setScanout(0, 0, 0, 0, 0, 0));
        assertTrue(driver.gpu.displays().get(0).frame().isEmpty());
    }

    @Test
    void cursorUpdatesAndMovesWithoutAResponse() {
        driver();
        driver.create(5, PixelFormat.B8G8R8A8_UNORM.id(), 64, 64);
        driver.cursor(false, 0, 10, 20, 5, 3, 4);
        assertArrayEquals(new int[] {5, 10, 20, 3, 4}, driver.gpu.state().cursor(0));
        driver.cursor(true, 0, 11, 22, 0, 0, 0);
        assertArrayEquals(new int[] {5, 11, 22, 3, 4}, driver.gpu.state().cursor(0));
        driver.cursor(false, 0, 11, 22, 77, 0, 0); // no such resource: refused
        assertArrayEquals(new int[] {5, 11, 22, 3, 4}, driver.gpu.state().cursor(0));
        driver.cursor(false, 3, 1, 1, 5, 0, 0); // no such scanout: refused
        driver.unref(5);
        assertEquals(0, driver.gpu.state().cursor(0)[0], "the cursor's resource went");
    }

    @Test
    void aThousandCreateAttachUnrefCyclesLeaveHostMemoryAtBaseline() {
        driver();
        Gpu2d state = driver.gpu.state();
        long baseline = state.hostBytes();
        long[] fb = guestFramebuffer(W, H, 1);
        List<Resource> all = new ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            int id = 1 + i % 7;
            assertEquals(RESP_OK_NODATA, driver.create(id, XRGB, W, H));
            all.add(state.resource(id));
            assertEquals(RESP_OK_NODATA, driver.attach(id, fb));
            assertEquals(RESP_OK_NODATA, driver.transfer(id, 0, 0, 0, W, H));
            if (i % 3 == 0) {
                assertEquals(RESP_OK_NODATA, driver.setScanout(0, id, 0, 0, W, H));
            }
            assertEquals(RESP_OK_NODATA, driver.unref(id));
        }
        assertEquals(baseline, state.hostBytes());
        assertEquals(0, state.resourceCount());
        assertEquals(0, state.backingEntries());
        assertTrue(all.stream().allMatch(Resource::isFreed), "every resource's host memory freed");
    }

    @Test
    void hostMemoryIsBoundedAndResetFreesEverything() {
        driver(GpuSpec.twoD().withSize(W, H).withHostMemoryBytes(1 << 20));
        int side = 256; // 256 KiB each
        for (int id = 1; id <= 4; id++) {
            assertEquals(RESP_OK_NODATA, driver.create(id, XRGB, side, side));
        }
        assertEquals(RESP_ERR_OUT_OF_MEMORY, driver.create(5, XRGB, side, side));
        assertEquals(RESP_ERR_OUT_OF_MEMORY, driver.create(5, XRGB, 1, 1), "full to the byte");
        assertEquals(1 << 20, driver.gpu.state().hostBytes());
        Gpu2d state = driver.gpu.state();
        List<Resource> held = List.of(state.resource(1), state.resource(2), state.resource(3), state.resource(4));
        driver.gpu.reset();
        assertTrue(held.stream().allMatch(Resource::isFreed));
        assertEquals(0, state.hostBytes());
    }

    @Test
    void closeFreesEveryResource() {
        driver();
        driver.create(1, XRGB, W, H);
        driver.attach(1, guestFramebuffer(W, H, 0));
        Resource r = driver.gpu.state().resource(1);
        driver.gpu.close();
        assertTrue(r.isFreed());
        assertFalse(driver.gpu.displays().get(0).frame().isPresent());
    }

    // ---- guest blobs (VIRTIO_GPU_F_RESOURCE_BLOB)

    private static ByteBuffer setScanoutBlob(int scanout, int id, int x, int y, int w, int h, int imageW, int imageH,
            int format, int stride, int offset) {
        ByteBuffer b = GpuDriver.command(CMD_SET_SCANOUT_BLOB, 72);
        b.putInt(24, x).putInt(28, y).putInt(32, w).putInt(36, h).putInt(40, scanout).putInt(44, id).putInt(48, imageW)
                .putInt(52, imageH).putInt(56, format).putInt(64, stride).putInt(80, offset);
        return b;
    }

    private int send(ByteBuffer request) {
        return driver.send(request, List.of(), HDR_SIZE).type();
    }

    /** A guest blob of the whole pattern framebuffer (three ranges), at a stride of W pixels. */
    private long[] blob(int id, int salt) {
        long[] pairs = guestFramebuffer(W, H, salt);
        long[] addresses = {pairs[0], pairs[2], pairs[4]};
        int[] lengths = {(int) pairs[1], (int) pairs[3], (int) pairs[5]};
        assertEquals(RESP_OK_NODATA, send(VirglGpuTest.createBlob(0, id, BLOB_MEM_GUEST, BLOB_FLAG_USE_SHAREABLE, 0,
                (long) W * H * 4, addresses, lengths)));
        return pairs;
    }

    @Test
    void guestBlobOnAScanoutShowsTheGuestPagesAndFlushReadsThemAgain() {
        driver();
        long[] pairs = blob(5, 3);
        assertEquals(RESP_OK_NODATA, send(setScanoutBlob(0, 5, 0, 0, W, H, W, H, XRGB, W * 4, 0)));
        Frame f = driver.gpu.displays().get(0).frame().orElseThrow();
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                assertEquals(0xff000000 | pattern(x, y, 3), f.pixel(x, y), "pixel " + x + "," + y);
            }
        }
        writeGuestPixel(driver, pairs, W, 10, 20, 0x00123456);
        assertEquals(RESP_OK_NODATA, send(GpuDriver.command(CMD_TRANSFER_TO_HOST_2D, 32).putInt(32, W).putInt(36, H)
                .putInt(48, 5)), "a transfer of a guest blob is a no-op");
        assertEquals(RESP_OK_NODATA, send(GpuDriver.command(CMD_RESOURCE_FLUSH, 24).putInt(24, 8).putInt(28, 16)
                .putInt(32, 8).putInt(36, 8).putInt(40, 5)));
        assertEquals(0xff123456, driver.gpu.displays().get(0).frame().orElseThrow().pixel(10, 20));

        // a window of the image at an offset: rows of W pixels, 4 rows and 2 pixels down the blob
        assertEquals(RESP_OK_NODATA, send(setScanoutBlob(0, 5, 0, 0, 16, 8, 16, 8, XRGB, W * 4, (4 * W + 2) * 4)));
        Frame g = driver.gpu.displays().get(0).frame().orElseThrow();
        assertEquals(0xff000000 | pattern(2, 4, 3), g.pixel(0, 0));
        assertEquals(0xff000000 | pattern(17, 11, 3), g.pixel(15, 7));

        assertEquals(RESP_OK_NODATA, send(GpuDriver.command(CMD_RESOURCE_UNREF, 8).putInt(24, 5)));
        assertTrue(driver.gpu.displays().get(0).frame().isEmpty(), "unref takes the blob off the scanout");
        assertEquals(0, driver.gpu.state().resourceCount());
        assertEquals(0, driver.gpu.state().backingEntries());
    }

    @Test
    void blobRequestsOutsideTheBlobOrTheDeviceAreRefused() {
        driver();
        blob(5, 0);
        long size = (long) W * H * 4;
        long page = driver.ram.allocate(4096, 4096);
        // 2D: guest memory only, never mappable; no host-visible region to map into
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(VirglGpuTest.createBlob(0, 6, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, 1,
                4096, new long[0], new int[0])));
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(VirglGpuTest.createBlob(0, 6, BLOB_MEM_GUEST, BLOB_FLAG_USE_MAPPABLE, 0,
                4096, new long[] {page}, new int[] {4096})));
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.send(GpuDriver.command(CMD_RESOURCE_MAP_BLOB, 16).putInt(24, 5),
                List.of(), HDR_SIZE + 8).type());
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, send(GpuDriver.command(CMD_RESOURCE_UNMAP_BLOB, 8).putInt(24, 77)));
        // ids, sizes and pages
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, send(VirglGpuTest.createBlob(0, 5, BLOB_MEM_GUEST, 0, 0, 4096,
                new long[] {page}, new int[] {4096})));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, send(VirglGpuTest.createBlob(0, 0, BLOB_MEM_GUEST, 0, 0, 4096,
                new long[] {page}, new int[] {4096})));
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(VirglGpuTest.createBlob(0, 6, BLOB_MEM_GUEST, 0, 0, 8192,
                new long[] {page}, new int[] {4096})), "pages shorter than the blob");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(VirglGpuTest.createBlob(0, 6, BLOB_MEM_GUEST, 0, 0, 4096,
                new long[] {1L << 40}, new int[] {4096})), "pages outside guest RAM");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(VirglGpuTest.createBlob(0, 6, BLOB_MEM_GUEST, 0, 0, -1,
                new long[] {page}, new int[] {4096})), "size 2^64 - 1");
        // layouts that leave the blob, the image or the device
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 0, 0, W, H, W, H, XRGB, W * 4, 4)), "offset");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 0, 0, W, H, W, H, XRGB, W * 4 - 4, 0)), "stride");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 0, 0, W, H, W, H + 1, XRGB, W * 4, 0)), "height");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 8, 0, W, H, W, H, XRGB, W * 4, 0)), "rect");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 0, 0, W, H, W, H, 999, W * 4, 0)), "format");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 0, 0, 1, 2, 1, 2, XRGB, -4, 0)),
                "stride 2^32 - 4");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(setScanoutBlob(0, 5, 0, 0, 1, 1, 1, 1, XRGB, 4, -1)), "offset 2^32 - 1");
        assertEquals(RESP_ERR_INVALID_SCANOUT_ID, send(setScanoutBlob(3, 5, 0, 0, W, H, W, H, XRGB, W * 4, 0)));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, send(setScanoutBlob(0, 9, 0, 0, W, H, W, H, XRGB, W * 4, 0)));
        assertTrue(driver.gpu.displays().get(0).frame().isEmpty());
        assertEquals(RESP_OK_NODATA, send(setScanoutBlob(0, 5, 0, 0, 1, 1, 1, 1, XRGB, -4, (int) size - 4)),
                "one row, the blob's last pixel: the stride is never used");
        assertEquals(RESP_OK_NODATA, send(setScanoutBlob(0, 5, 0, 0, W, H, W, H, XRGB, W * 4, 0)), "the device goes on");
    }

    @Test
    void blobCopiesCountAgainstTheDevicesHostMemory() {
        driver(GpuSpec.twoD().withSize(W, H).withHostMemoryBytes(1 << 20));
        long page = driver.ram.allocate(1 << 20, 4096);
        assertEquals(RESP_OK_NODATA, send(VirglGpuTest.createBlob(0, 5, BLOB_MEM_GUEST, 0, 0, 1 << 20,
                new long[] {page}, new int[] {1 << 20})));
        // a 512x512 image's copy (1 MiB) plus what the scanout shows exceeds the 1 MiB the device may hold
        assertEquals(RESP_ERR_OUT_OF_MEMORY, send(setScanoutBlob(0, 5, 0, 0, 512, 512, 512, 512, XRGB, 2048, 0)));
        assertEquals(RESP_OK_NODATA, send(setScanoutBlob(0, 5, 0, 0, 64, 64, 64, 64, XRGB, 256, 0)));
        assertTrue(driver.gpu.state().hostBytes() <= 1 << 20);
    }
}
