package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;
import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.krun.api.Frame;
import org.krun.api.GpuSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.TestSharedMemory;

/**
 * virtio-gpu with virgl against the host's real virglrenderer (surfaceless EGL: llvmpipe without a GPU),
 * driven through mock queues as Linux's driver and Mesa's virgl driver drive it: capsets, a context, a 3D
 * render target with guest backing, a virgl command stream that clears it to a known colour with a fence,
 * the pixels transferred back into guest memory and shown on the scanout; 2D resources through the renderer;
 * hostile requests refused before they reach virglrenderer. Needs Debian's libvirglrenderer1 (skipped,
 * saying so, where it is missing).
 */
class VirglGpuTest {
    private static final int W = 32;
    private static final int H = 16;
    private static final int XRGB = PixelFormat.B8G8R8X8_UNORM.id();
    private static final int CTX = 1;

    // virgl_protocol.h: a command's header dword is cmd | object << 8 | length << 16
    private static final int CCMD_CREATE_OBJECT = 1;
    private static final int CCMD_SET_FRAMEBUFFER_STATE = 5;
    private static final int CCMD_CLEAR = 7;
    private static final int OBJECT_SURFACE = 8;
    private static final int PIPE_CLEAR_COLOR0 = 1 << 2;

    private GpuDriver driver;

    @BeforeAll
    static void virglrendererIsInstalled() {
        assumeTrue(Virgl.problem() == null, Virgl.problem());
    }

    @AfterEach
    void close() {
        if (driver != null) {
            driver.close();
        }
    }

    private GpuDriver driver() {
        GpuSpec spec = GpuSpec.virgl().withSize(W, H);
        driver = new GpuDriver(new VirtioGpu(spec, VirglRenderer.acquire("VirglGpuTest")), 16 << 20, F_EDID | F_VIRGL);
        return driver;
    }

    private GpuDriver.Reply send(ByteBuffer request) {
        return driver.sendAndWait(request, List.of(), HDR_SIZE);
    }

    private static ByteBuffer command(int type, int bodySize, int ctx) {
        ByteBuffer b = GpuDriver.command(type, bodySize);
        b.putInt(16, ctx);
        return b;
    }

    private int ctxCreate(int ctx) {
        ByteBuffer b = command(CMD_CTX_CREATE, 8 + CTX_NAME_SIZE, ctx);
        byte[] name = "test".getBytes();
        b.putInt(24, name.length).put(32, name);
        return send(b).type();
    }

    private int create3d(int id, int target, int format, int bind, int w, int h) {
        ByteBuffer b = command(CMD_RESOURCE_CREATE_3D, 48, 0);
        b.putInt(24, id).putInt(28, target).putInt(32, format).putInt(36, bind).putInt(40, w).putInt(44, h)
                .putInt(48, 1).putInt(52, 1);
        return send(b).type();
    }

    private int ctxAttach(int ctx, int id) {
        return send(command(CMD_CTX_ATTACH_RESOURCE, 8, ctx).putInt(24, id)).type();
    }

    private static ByteBuffer transfer3d(int type, int ctx, int id, int x, int y, int w, int h, long offset, int stride) {
        ByteBuffer b = command(type, 48, ctx);
        b.putInt(24, x).putInt(28, y).putInt(32, 0).putInt(36, w).putInt(40, h).putInt(44, 1)
                .putLong(48, offset).putInt(56, id).putInt(60, 0).putInt(64, stride).putInt(68, 0);
        return b;
    }

    /** A virgl command stream: a surface of {@code resource}, bound as the only colour buffer, cleared to rgba. */
    private static int[] clearStream(int resource, int surface, float r, float g, float b, float a) {
        long depth = Double.doubleToLongBits(1.0);
        return new int[] {
            CCMD_CREATE_OBJECT | OBJECT_SURFACE << 8 | 5 << 16, surface, resource, XRGB, 0, 0,
            CCMD_SET_FRAMEBUFFER_STATE | 3 << 16, 1, 0, surface,
            CCMD_CLEAR | 8 << 16, PIPE_CLEAR_COLOR0, Float.floatToIntBits(r), Float.floatToIntBits(g),
            Float.floatToIntBits(b), Float.floatToIntBits(a), (int) depth, (int) (depth >>> 32), 0,
        };
    }

    private static ByteBuffer submit(int ctx, int[] dwords, int flags, long fence) {
        ByteBuffer b = command(CMD_SUBMIT_3D, 8 + 4 * dwords.length, ctx);
        b.putInt(4, flags).putLong(8, fence).putInt(24, 4 * dwords.length);
        for (int i = 0; i < dwords.length; i++) {
            b.putInt(32 + 4 * i, dwords[i]);
        }
        return b;
    }

    /** Guest pages for a W x H XRGB resource, attached as its backing; returns their address. */
    private long attachBacking(int id) {
        long at = driver.ram.allocate(W * H * 4, 4096);
        assertEquals(RESP_OK_NODATA, driver.sendAndWait(GpuDriver.command(CMD_RESOURCE_ATTACH_BACKING, 8).putInt(24, id).putInt(28, 1),
                List.of(ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, at).putInt(8, W * H * 4).array()),
                HDR_SIZE).type());
        return at;
    }

    private int setScanout(int id) {
        ByteBuffer b = GpuDriver.command(CMD_SET_SCANOUT, 24);
        b.putInt(32, W).putInt(36, H).putInt(40, 0).putInt(44, id);
        return send(b).type();
    }

    @Test
    void offersVirglWithTheVirglAndVirgl2Capsets() {
        driver();
        assertEquals(F_EDID | F_VIRGL | F_RESOURCE_BLOB, driver.gpu.deviceFeatures());
        assertEquals(List.of(new org.krun.spi.virtio.SharedMemoryRegion(SHM_ID_HOST_VISIBLE, VirtioGpu.HOST_VISIBLE_BYTES)),
                driver.gpu.sharedMemoryRegions(), "the host-visible region for host3d blobs");
        byte[] config = new byte[16];
        driver.gpu.readConfig(0, config);
        assertEquals(2, ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).getInt(CONFIG_NUM_CAPSETS));
        for (int i = 0; i < 2; i++) {
            GpuDriver.Reply info = driver.sendAndWait(GpuDriver.command(CMD_GET_CAPSET_INFO, 8).putInt(24, i), List.of(), HDR_SIZE + 16);
            assertEquals(RESP_OK_CAPSET_INFO, info.type());
            int id = info.body().getInt(0);
            int version = info.body().getInt(4);
            int size = info.body().getInt(8);
            assertEquals(i == 0 ? CAPSET_VIRGL : CAPSET_VIRGL2, id);
            assertEquals(i + 1, version, "virglrenderer 0.10: virgl v1, virgl2 v2");
            assertTrue(size > 100, "capset size " + size);
            GpuDriver.Reply caps = driver.sendAndWait(GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, id).putInt(28, version),
                    List.of(), HDR_SIZE + size);
            assertEquals(RESP_OK_CAPSET, caps.type());
            assertEquals(size, caps.body().remaining());
            assertEquals(version, caps.body().getInt(0), "union virgl_caps starts with max_version");
        }
        assertEquals(RESP_ERR_INVALID_PARAMETER,
                driver.sendAndWait(GpuDriver.command(CMD_GET_CAPSET_INFO, 8).putInt(24, 2), List.of(), HDR_SIZE + 16).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.sendAndWait(GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, CAPSET_VIRGL2)
                .putInt(28, 3), List.of(), HDR_SIZE + 4096).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, driver.sendAndWait(GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, 4)
                .putInt(28, 0), List.of(), HDR_SIZE + 4096).type(), "venus is not offered");
    }

    @Test
    void aCommandStreamClearsARenderTargetThatIsReadBackAndShown() {
        driver();
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        assertEquals(RESP_OK_NODATA, create3d(5, Virgl.TARGET_TEXTURE_2D, XRGB, Virgl.BIND_RENDER_TARGET | 1 << 18, W, H));
        long backing = attachBacking(5);
        assertEquals(RESP_OK_NODATA, ctxAttach(CTX, 5));

        // fenced: answered when virglrenderer signals the fence, echoing it
        long signalled = driver.gpu.renderer().fencesSignalled();
        GpuDriver.Reply done = send(submit(CTX, clearStream(5, 7, 1.0f, 0.5f, 0.25f, 1.0f), FLAG_FENCE, 77));
        assertEquals(RESP_OK_NODATA, done.type());
        assertEquals(FLAG_FENCE, done.flags());
        assertEquals(77, done.fenceId());
        assertEquals(signalled + 1, driver.gpu.renderer().fencesSignalled(), "answered by virglrenderer's write_fence");

        assertEquals(RESP_OK_NODATA, send(transfer3d(CMD_TRANSFER_FROM_HOST_3D, CTX, 5, 0, 0, W, H, 0, W * 4)).type());
        for (int i = 0; i < W * H; i++) {
            assertEquals(0xffff8040, driver.ram.memory().getInt(backing + 4L * i),
                    "pixel " + i + ": B8G8R8X8 of (1.0, 0.5, 0.25)");
        }

        assertEquals(RESP_OK_NODATA, setScanout(5));
        Frame f = driver.gpu.displays().get(0).frame().orElseThrow();
        assertEquals(W, f.width());
        assertEquals(H, f.height());
        for (int p : f.argb()) {
            assertEquals(0xffff8040, p);
        }

        // a second clear, then a flush of part of it: the frame follows
        assertEquals(RESP_OK_NODATA, send(submit(CTX, clearStream(5, 8, 0.0f, 1.0f, 0.0f, 1.0f), FLAG_FENCE, 78)).type());
        ByteBuffer flush = GpuDriver.command(CMD_RESOURCE_FLUSH, 24);
        flush.putInt(24, 0).putInt(28, 0).putInt(32, W / 2).putInt(36, H).putInt(40, 5);
        assertEquals(RESP_OK_NODATA, send(flush).type());
        Frame g = driver.gpu.displays().get(0).frame().orElseThrow();
        assertTrue(g.sequence() > f.sequence());
        for (int y = 0; y < H; y++) {
            for (int x = 0; x < W; x++) {
                assertEquals(x < W / 2 ? 0xff00ff00 : 0xffff8040, g.argb()[y * W + x], "(" + x + ", " + y + ")");
            }
        }
        assertEquals(0, driver.context.resetReasons().size());
    }

    @Test
    void twoDResourcesGoThroughTheRendererToTheScanout() {
        driver();
        assertEquals(RESP_OK_NODATA, send(GpuDriver.command(CMD_RESOURCE_CREATE_2D, 16).putInt(24, 3).putInt(28, XRGB).putInt(32, W)
                .putInt(36, H)).type());
        long backing = attachBacking(3);
        for (int i = 0; i < W * H; i++) {
            driver.ram.memory().setInt(backing + 4L * i, 0x5a000000 | i * 7919 & 0xffffff);
        }
        ByteBuffer t = GpuDriver.command(CMD_TRANSFER_TO_HOST_2D, 32);
        t.putInt(32, W).putInt(36, H).putInt(48, 3);
        assertEquals(RESP_OK_NODATA, send(t).type());
        assertEquals(RESP_OK_NODATA, setScanout(3));
        int[] expected = new int[W * H];
        for (int i = 0; i < expected.length; i++) {
            expected[i] = 0xff000000 | i * 7919 & 0xffffff;
        }
        assertArrayEquals(expected, driver.gpu.displays().get(0).frame().orElseThrow().argb());
    }

    @Test
    void hostileRequestsAreRefusedBeforeTheyReachVirglrenderer() {
        driver();
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, send(submit(9, clearStream(5, 7, 1, 1, 1, 1), 0, 0)).type(), "no context 9");
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, ctxCreate(0));
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, ctxCreate(CTX), "in use");
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, create3d(0, Virgl.TARGET_TEXTURE_2D, XRGB, Virgl.BIND_RENDER_TARGET, W, H));
        assertEquals(RESP_ERR_INVALID_PARAMETER, create3d(6, 99, XRGB, Virgl.BIND_RENDER_TARGET, W, H), "target");
        assertEquals(RESP_ERR_INVALID_PARAMETER, create3d(6, Virgl.TARGET_TEXTURE_2D, XRGB, 0, 1 << 20, H), "width");
        assertEquals(RESP_ERR_OUT_OF_MEMORY, create3d(6, Virgl.TARGET_TEXTURE_2D, XRGB, 0, 16384, 16384), "budget");
        assertEquals(RESP_OK_NODATA, create3d(5, Virgl.TARGET_TEXTURE_2D, XRGB, Virgl.BIND_RENDER_TARGET, W, H));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, create3d(5, Virgl.TARGET_TEXTURE_2D, XRGB, 0, W, H), "in use");
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, send(transfer3d(CMD_TRANSFER_FROM_HOST_3D, CTX, 5, 0, 0, W, H, 0, W * 4)).type(),
                "no backing yet");
        ByteBuffer outside = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40).putInt(8, 4096);
        assertEquals(RESP_ERR_UNSPEC, driver.sendAndWait(GpuDriver.command(CMD_RESOURCE_ATTACH_BACKING, 8).putInt(24, 5).putInt(28, 1),
                List.of(outside.array()), HDR_SIZE).type(), "backing outside guest RAM");
        attachBacking(5);
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(transfer3d(CMD_TRANSFER_FROM_HOST_3D, CTX, 5, 1, 0, W, H, 0, W * 4)).type(),
                "box beyond the width");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(transfer3d(CMD_TRANSFER_FROM_HOST_3D, CTX, 5, 0, 0, W, H, W * H * 4, W * 4))
                .type(), "offset beyond the backing");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(transfer3d(CMD_TRANSFER_FROM_HOST_3D, CTX, 5, 0, 0, W, H, 4, W * 4)).type(),
                "virglrenderer's own iovec bounds: the box does not fit the backing from offset 4");
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, send(transfer3d(CMD_TRANSFER_TO_HOST_3D, 4, 5, 0, 0, W, H, 0, W * 4)).type());
        ByteBuffer odd = command(CMD_SUBMIT_3D, 12, CTX).putInt(24, 3);
        assertEquals(RESP_ERR_UNSPEC, send(odd).type(), "not whole dwords");
        ByteBuffer longer = command(CMD_SUBMIT_3D, 8, CTX).putInt(24, 64);
        assertEquals(RESP_ERR_UNSPEC, send(longer).type(), "names more bytes than it carries");

        // garbage in the command stream reaches virglrenderer, which puts the context in error; the device goes on
        int[] garbage = new int[64];
        for (int i = 0; i < garbage.length; i++) {
            garbage[i] = 0x9e3779b9 * (i + 1);
        }
        int type = send(submit(CTX, garbage, FLAG_FENCE, 5)).type();
        assertTrue(type == RESP_OK_NODATA || type == RESP_ERR_UNSPEC, Integer.toHexString(type));
        assertEquals(RESP_OK_NODATA, send(command(CMD_CTX_DESTROY, 0, CTX)).type());
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, send(command(CMD_CTX_DESTROY, 0, CTX)).type());
        assertEquals(RESP_OK_NODATA, send(command(CMD_RESOURCE_UNREF, 8, 0).putInt(24, 5)).type());
        assertEquals(0, driver.context.resetReasons().size());
    }

    @Test
    void resetDropsEveryContextAndResourceAndTheRendererIsLentToOneDeviceAtATime() {
        driver();
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        assertEquals(RESP_OK_NODATA, create3d(5, Virgl.TARGET_TEXTURE_2D, XRGB, Virgl.BIND_RENDER_TARGET, W, H));
        attachBacking(5);
        Gpu3d g = driver.gpu.state3d();
        assertEquals(1, g.resourceCount());
        assertEquals(1, g.contextCount());

        VmConfigException busy = assertThrows(VmConfigException.class, () -> VirglRenderer.acquire("second"));
        assertFalse(busy.getMessage().contains("\n"));
        assertTrue(busy.getMessage().contains("in use by another VM"), busy.getMessage());

        driver.gpu.reset();
        assertEquals(0, g.resourceCount());
        assertEquals(0, g.contextCount());
        driver.close();
        driver = null;
        // given back at close: the next device takes it, and may use the same ids again
        driver();
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        assertEquals(RESP_OK_NODATA, create3d(5, Virgl.TARGET_TEXTURE_2D, XRGB, Virgl.BIND_RENDER_TARGET, W, H));
    }

    @Test
    void aThousandCreateDestroyCyclesLeaveFileDescriptorsAndTheDevicesCountsAtBaseline() throws Exception {
        driver();
        long backing = driver.ram.allocate(W * H * 4, 4096);
        byte[] entry = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(0, backing).putInt(8, W * H * 4).array();
        Runnable cycle = () -> {
            assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
            assertEquals(RESP_OK_NODATA, create3d(5, Virgl.TARGET_TEXTURE_2D, XRGB, Virgl.BIND_RENDER_TARGET, W, H));
            assertEquals(RESP_OK_NODATA, driver.sendAndWait(GpuDriver.command(CMD_RESOURCE_ATTACH_BACKING, 8).putInt(24, 5)
                    .putInt(28, 1), List.of(entry), HDR_SIZE).type());
            assertEquals(RESP_OK_NODATA, ctxAttach(CTX, 5));
            assertEquals(RESP_OK_NODATA, send(submit(CTX, clearStream(5, 7, 0.5f, 0.5f, 0.5f, 1), FLAG_FENCE, 1)).type());
            assertEquals(RESP_OK_NODATA, send(command(CMD_RESOURCE_UNREF, 8, 0).putInt(24, 5)).type());
            assertEquals(RESP_OK_NODATA, send(command(CMD_CTX_DESTROY, 0, CTX)).type());
        };
        for (int i = 0; i < 20; i++) { // warm up: llvmpipe starts its threads, the JIT settles
            cycle.run();
        }
        long fds = openFds();
        for (int i = 0; i < 1000; i++) {
            cycle.run();
        }
        Gpu3d g = driver.gpu.state3d();
        assertEquals(0, g.resourceCount());
        assertEquals(0, g.contextCount());
        assertEquals(0, g.hostBytes());
        assertEquals(fds, openFds(), "open file descriptors after 1,000 cycles");
    }

    private static long openFds() throws java.io.IOException {
        try (var s = java.nio.file.Files.list(java.nio.file.Path.of("/proc/self/fd"))) {
            return s.count();
        }
    }

    // ---- blobs

    /** virgl_protocol.h: VIRGL_CCMD_PIPE_RESOURCE_CREATE and its 11 dwords; virgl_hw.h's persistent and coherent flags. */
    private static final int CCMD_PIPE_RESOURCE_CREATE = 48;
    private static final int RESOURCE_FLAG_MAP_PERSISTENT = 1 << 1;
    private static final int RESOURCE_FLAG_MAP_COHERENT = 1 << 2;
    private static final int BIND_VERTEX_BUFFER = 1 << 4;
    private static final int FORMAT_R8_UNORM = 64;
    private static final long PAGE = 4096;

    private TestSharedMemory hostVisible;

    private GpuDriver blobDriver(int maxMappings) {
        return blobDriver(maxMappings, 64);
    }

    private GpuDriver blobDriver(int maxMappings, long pages) {
        hostVisible = new TestSharedMemory(SHM_ID_HOST_VISIBLE, 1L << 32, pages * PAGE, maxMappings);
        GpuSpec spec = GpuSpec.virgl().withSize(W, H);
        driver = new GpuDriver(new VirtioGpu(spec, VirglRenderer.acquire("VirglGpuTest")), 16 << 20,
                F_EDID | F_VIRGL | F_RESOURCE_BLOB, hostVisible);
        return driver;
    }

    /** What Mesa's virgl driver sends for a persistently mapped buffer: the pipe resource, then the blob naming it. */
    private int host3dBlob(int ctx, int id, long blobId, long size) {
        int[] cmd = new int[12];
        cmd[0] = CCMD_PIPE_RESOURCE_CREATE | 11 << 16;
        cmd[1] = Virgl.TARGET_BUFFER;
        cmd[2] = FORMAT_R8_UNORM;
        cmd[3] = BIND_VERTEX_BUFFER;
        cmd[4] = (int) size;
        cmd[5] = 1;
        cmd[6] = 1;
        cmd[7] = 1;
        cmd[10] = RESOURCE_FLAG_MAP_PERSISTENT | RESOURCE_FLAG_MAP_COHERENT;
        cmd[11] = (int) blobId;
        assertEquals(RESP_OK_NODATA, send(submit(ctx, cmd, 0, 0)).type(), "pipe resource create");
        return send(createBlob(ctx, id, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, blobId, size, new long[0], new int[0])).type();
    }

    static ByteBuffer createBlob(int ctx, int id, int mem, int flags, long blobId, long size, long[] addresses, int[] lengths) {
        ByteBuffer b = command(CMD_RESOURCE_CREATE_BLOB, 32 + MEM_ENTRY_SIZE * addresses.length, ctx);
        b.putInt(24, id).putInt(28, mem).putInt(32, flags).putInt(36, addresses.length).putLong(40, blobId).putLong(48, size);
        for (int i = 0; i < addresses.length; i++) {
            b.putLong(56 + MEM_ENTRY_SIZE * i, addresses[i]).putInt(64 + MEM_ENTRY_SIZE * i, lengths[i]);
        }
        return b;
    }

    private GpuDriver.Reply map(int id, long offset) {
        return driver.sendAndWait(command(CMD_RESOURCE_MAP_BLOB, 16, 0).putInt(24, id).putLong(32, offset), List.of(), HDR_SIZE + 8);
    }

    private int unmap(int id) {
        return send(command(CMD_RESOURCE_UNMAP_BLOB, 8, 0).putInt(24, id)).type();
    }

    @Test
    void host3dBlobIsMappedIntoTheHostVisibleRegionAndOut() {
        blobDriver(64);
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        assertEquals(RESP_OK_NODATA, host3dBlob(CTX, 10, 1, 4 * PAGE));
        GpuDriver.Reply mapped = map(10, 8 * PAGE);
        assertEquals(RESP_OK_MAP_INFO, mapped.type());
        int info = mapped.body().getInt(0);
        assertTrue(info >= 1 && info <= 3, "map_info is a VIRTIO_GPU_MAP_CACHE_* value: " + info);
        assertEquals(1, hostVisible.mappings());
        assertTrue(hostVisible.mappedAt(8 * PAGE).byteSize() >= 4 * PAGE);
        assertEquals(1, driver.gpu.state3d().mappedBlobs());

        assertEquals(RESP_ERR_INVALID_PARAMETER, map(10, 16 * PAGE).type(), "mapped twice");
        assertEquals(RESP_OK_NODATA, unmap(10));
        assertEquals(0, hostVisible.mappings());
        assertEquals(RESP_ERR_INVALID_PARAMETER, unmap(10), "unmapping what is not mapped");
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, unmap(99));
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, map(99, 0).type());

        // out of the region, not a page, overlapping, too big for the end of the region
        assertEquals(RESP_ERR_INVALID_PARAMETER, map(10, 64 * PAGE).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, map(10, -PAGE).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, map(10, 100).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, map(10, 62 * PAGE).type());
        assertEquals(RESP_OK_NODATA, host3dBlob(CTX, 11, 2, PAGE));
        assertEquals(RESP_OK_MAP_INFO, map(11, 2 * PAGE).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, map(10, 0).type(), "over blob 11");
        assertEquals(RESP_OK_MAP_INFO, map(10, 3 * PAGE).type(), "right after blob 11");
        assertEquals(2, hostVisible.mappings());

        // unref and reset take mapped blobs out of the guest first
        assertEquals(RESP_OK_NODATA, send(command(CMD_RESOURCE_UNREF, 8, 0).putInt(24, 11)).type());
        assertEquals(1, hostVisible.mappings());
        driver.gpu.reset();
        assertEquals(0, hostVisible.mappings());
    }

    @Test
    void guestBlobsAreNotMappableAndBlobRequestsAreChecked() {
        blobDriver(64);
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        long pages = driver.ram.allocate(2 * PAGE, PAGE);
        assertEquals(RESP_OK_NODATA, send(createBlob(0, 20, BLOB_MEM_GUEST, BLOB_FLAG_USE_SHAREABLE, 0, 2 * PAGE,
                new long[] {pages}, new int[] {(int) (2 * PAGE)})).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, map(20, 0).type(), "a guest blob has no host memory to map");
        assertEquals(RESP_ERR_INVALID_RESOURCE_ID, send(createBlob(0, 20, BLOB_MEM_GUEST, 0, 0, PAGE,
                new long[] {pages}, new int[] {(int) PAGE})).type(), "id in use");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(createBlob(0, 21, BLOB_MEM_GUEST, 0, 0, 4 * PAGE,
                new long[] {pages}, new int[] {(int) (2 * PAGE)})).type(), "entries shorter than the blob");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(createBlob(0, 21, BLOB_MEM_GUEST, 0, 0, PAGE,
                new long[] {1L << 40}, new int[] {(int) PAGE})).type(), "entries outside guest RAM");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(createBlob(0, 21, 7, 0, 0, PAGE, new long[0], new int[0])).type(),
                "unknown blob_mem");
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, send(createBlob(5, 21, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, 1, PAGE,
                new long[0], new int[0])).type(), "host3d in no context");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(createBlob(CTX, 21, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, 77, PAGE,
                new long[0], new int[0])).type(), "a blob_id the context never made");
        assertEquals(RESP_ERR_OUT_OF_MEMORY, send(createBlob(CTX, 21, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, 1, 1L << 40,
                new long[0], new int[0])).type(), "more than the device's host memory");
    }

    @Test
    void thousandsOfMapsAreCappedAndTheDeviceGoesOn() {
        blobDriver(Integer.MAX_VALUE, 1024);
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        int blobs = Gpu3d.MAX_MAPPED_BLOBS + 44;
        for (int i = 0; i < blobs; i++) {
            assertEquals(RESP_OK_NODATA, host3dBlob(CTX, 100 + i, 100 + i, PAGE));
        }
        int mapped = 0;
        int overlapping = 0;
        for (int round = 0; round < 10; round++) {
            for (int i = 0; i < blobs; i++) {
                int type = map(100 + i, 0).type(); // every one at offset 0: one fits, the rest overlap it
                if (type == RESP_OK_MAP_INFO) {
                    mapped++;
                } else if (type == RESP_ERR_INVALID_PARAMETER) {
                    overlapping++;
                }
            }
        }
        assertEquals(1, mapped);
        assertEquals(10 * blobs - 1, overlapping);
        assertEquals(RESP_OK_NODATA, unmap(100));
        int outOfMemory = 0;
        for (int i = 0; i < blobs; i++) {
            int type = map(100 + i, i * PAGE).type();
            if (type == RESP_ERR_OUT_OF_MEMORY) {
                outOfMemory++;
            }
        }
        assertEquals(Gpu3d.MAX_MAPPED_BLOBS, driver.gpu.state3d().mappedBlobs());
        assertEquals(Gpu3d.MAX_MAPPED_BLOBS, hostVisible.mappings());
        assertEquals(44, outOfMemory, "past the cap, each map is refused");
        assertEquals(RESP_OK_NODATA, ctxCreate(2), "the device still serves");
        driver.gpu.reset();
        assertEquals(0, hostVisible.mappings());
    }

    @Test
    void host3dImageBlobIsShownThroughSetScanoutBlobAndReadBack() {
        blobDriver(64);
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX));
        int[] cmd = new int[12];
        cmd[0] = CCMD_PIPE_RESOURCE_CREATE | 11 << 16;
        cmd[1] = Virgl.TARGET_TEXTURE_2D;
        cmd[2] = XRGB;
        cmd[3] = Virgl.BIND_RENDER_TARGET;
        cmd[4] = W;
        cmd[5] = H;
        cmd[6] = 1;
        cmd[7] = 1;
        cmd[11] = 9;
        assertEquals(RESP_OK_NODATA, send(submit(CTX, cmd, 0, 0)).type());
        assertEquals(RESP_OK_NODATA, send(createBlob(CTX, 30, BLOB_MEM_HOST3D, BLOB_FLAG_USE_SHAREABLE, 9, W * H * 4L,
                new long[0], new int[0])).type());
        assertEquals(RESP_OK_NODATA, ctxAttach(CTX, 30));
        assertEquals(RESP_OK_NODATA, send(submit(CTX, clearStream(30, 7, 1.0f, 0.5f, 0.25f, 1.0f), FLAG_FENCE, 5)).type());

        ByteBuffer b = GpuDriver.command(CMD_SET_SCANOUT_BLOB, 72);
        b.putInt(32, W).putInt(36, H).putInt(40, 0).putInt(44, 30).putInt(48, W).putInt(52, H).putInt(56, XRGB).putInt(64, W * 4);
        assertEquals(RESP_OK_NODATA, send(b).type());
        Frame f = driver.gpu.displays().get(0).frame().orElseThrow();
        assertEquals(W * H, f.argb().length);
        for (int p : f.argb()) {
            assertEquals(0xffff8040, p);
        }
        assertTrue(driver.gpu.state3d().images(W * H).stream().anyMatch(i -> i.resourceId() == 30),
                "the host reads a host3d image back like a 3D resource");
    }
}
