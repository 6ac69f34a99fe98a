package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
import org.krun.api.GpuSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.TestSharedMemory;

/**
 * virtio-gpu with Venus against the host's real virglrenderer and its render server (Debian's virgl-server),
 * driven through mock queues as Linux's driver and Mesa's Venus driver drive it: the venus capset besides
 * virgl's, VIRTIO_GPU_F_CONTEXT_INIT, a context that names the venus capset, a fence on the context's ring
 * answered through virglrenderer's context fence, the shared memory blob Venus makes first (host3d, blob id
 * 0) mapped into the host-visible region; context_init values that name nothing refused. The render server
 * is a child of this process while the device lives and is gone when it is closed. Skipped, saying so,
 * where virglrenderer, its render server or a Vulkan driver is missing.
 */
class VenusGpuTest {
    private static final int CTX = 3;
    private static final long PAGE = 4096;

    private GpuDriver driver;
    private TestSharedMemory hostVisible;

    @BeforeAll
    static void venusCanRunHere() {
        assumeTrue(Virgl.problem() == null, Virgl.problem());
        assumeTrue(VenusHost.problem() == null, VenusHost.problem());
    }

    @AfterEach
    void close() {
        if (driver != null) {
            driver.close();
        }
    }

    private GpuDriver driver() {
        hostVisible = new TestSharedMemory(SHM_ID_HOST_VISIBLE, 1L << 32, 64 * PAGE, 16);
        driver = new GpuDriver(new VirtioGpu(GpuSpec.venus().withSize(64, 32), VirglRenderer.acquire("VenusGpuTest", true)),
                16 << 20, F_EDID | F_VIRGL | F_RESOURCE_BLOB | F_CONTEXT_INIT, hostVisible);
        return driver;
    }

    private static ByteBuffer command(int type, int bodySize, int ctx) {
        ByteBuffer b = GpuDriver.command(type, bodySize);
        b.putInt(16, ctx);
        return b;
    }

    private GpuDriver.Reply send(ByteBuffer request, int responseSize) {
        return driver.sendAndWait(request, List.of(), responseSize);
    }

    private int ctxCreate(int ctx, int contextInit) {
        ByteBuffer b = command(CMD_CTX_CREATE, 8 + CTX_NAME_SIZE, ctx);
        byte[] name = "venus".getBytes();
        b.putInt(24, name.length).putInt(28, contextInit).put(32, name);
        return send(b, HDR_SIZE).type();
    }

    @Test
    void offersContextInitAndTheVenusCapsetBesidesVirgls() {
        driver();
        assertEquals(F_EDID | F_VIRGL | F_RESOURCE_BLOB | F_CONTEXT_INIT, driver.gpu.deviceFeatures());
        byte[] config = new byte[16];
        driver.gpu.readConfig(0, config);
        assertEquals(3, ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).getInt(CONFIG_NUM_CAPSETS));
        GpuDriver.Reply info = send(GpuDriver.command(CMD_GET_CAPSET_INFO, 8).putInt(24, 2), HDR_SIZE + 16);
        assertEquals(RESP_OK_CAPSET_INFO, info.type());
        assertEquals(CAPSET_VENUS, info.body().getInt(0));
        int version = info.body().getInt(4);
        int size = info.body().getInt(8);
        assertTrue(size >= 16 && size <= 4096, "struct virgl_renderer_capset_venus of " + size + " bytes");
        GpuDriver.Reply caps = send(GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, CAPSET_VENUS).putInt(28, version),
                HDR_SIZE + size);
        assertEquals(RESP_OK_CAPSET, caps.type());
        assertEquals(size, caps.body().remaining());
        assertTrue(caps.body().getInt(4) != 0, "the capset carries the renderer's vk_xml_version");
        assertEquals(driver.gpu.renderer().venusWireFormat(), caps.body().getInt(0), "wire_format_version, as the renderer says");
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(GpuDriver.command(CMD_GET_CAPSET_INFO, 8).putInt(24, 3), HDR_SIZE + 16).type());
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, 5).putInt(28, 0),
                HDR_SIZE + 4096).type(), "capset 5 is not offered");
    }

    @Test
    void aContextNamesItsCapsetAndUnknownContextInitIsRefused() {
        driver();
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX, CAPSET_VENUS));
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX + 1, 0), "0: virgl's default context");
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX + 2, CAPSET_VIRGL2));
        assertEquals(RESP_ERR_INVALID_PARAMETER, ctxCreate(CTX + 3, 3), "capset 3 is not offered");
        assertEquals(RESP_ERR_INVALID_PARAMETER, ctxCreate(CTX + 3, 0x100 | CAPSET_VENUS), "bits beyond the capset id");
        assertEquals(RESP_ERR_INVALID_PARAMETER, ctxCreate(CTX + 3, 0xff));
        assertEquals(RESP_ERR_INVALID_CONTEXT_ID, ctxCreate(CTX, CAPSET_VENUS), "in use");
        assertEquals(3, driver.gpu.state3d().contextCount());
        assertEquals(RESP_OK_NODATA, send(command(CMD_CTX_DESTROY, 0, CTX), HDR_SIZE).type());
        assertEquals(2, driver.gpu.state3d().contextCount());

        // each Venus context is a render server worker with the host's driver loaded: at most 16
        for (int i = 0; i < Gpu3d.MAX_VENUS_CONTEXTS; i++) {
            assertEquals(RESP_OK_NODATA, ctxCreate(100 + i, CAPSET_VENUS));
        }
        assertEquals(RESP_ERR_OUT_OF_MEMORY, ctxCreate(200, CAPSET_VENUS));
        assertEquals(RESP_OK_NODATA, ctxCreate(200, CAPSET_VIRGL2), "other contexts are not counted with them");
        assertEquals(RESP_OK_NODATA, send(command(CMD_CTX_DESTROY, 0, 100), HDR_SIZE).type());
        assertEquals(RESP_OK_NODATA, ctxCreate(201, CAPSET_VENUS), "a destroyed one makes room");
    }

    @Test
    void aFenceOnTheContextsRingIsAnsweredByTheContextsFenceWithItsRing() {
        driver();
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX, CAPSET_VENUS));
        long signalled = driver.gpu.renderer().fencesSignalled();
        ByteBuffer b = command(CMD_SUBMIT_3D, 8, CTX);
        b.putInt(4, FLAG_FENCE | FLAG_INFO_RING_IDX).putLong(8, 41).put(20, (byte) 1).putInt(24, 0);
        GpuDriver.Reply done = send(b, HDR_SIZE);
        assertEquals(RESP_OK_NODATA, done.type());
        assertEquals(FLAG_FENCE | FLAG_INFO_RING_IDX, done.flags());
        assertEquals(41, done.fenceId());
        assertEquals(signalled + 1, driver.gpu.renderer().fencesSignalled(), "answered by write_context_fence");
        assertEquals(0, driver.gpu.renderer().call(() -> driver.gpu.renderer().fencesOutstanding()));
    }

    @Test
    void theVenusSharedMemoryBlobIsMappedIntoTheHostVisibleRegion() {
        driver();
        assertEquals(RESP_OK_NODATA, ctxCreate(CTX, CAPSET_VENUS));
        // Mesa's Venus makes its shared memory (ring, replies) as a host3d blob with blob id 0
        assertEquals(RESP_OK_NODATA, send(VirglGpuTest.createBlob(CTX, 30, BLOB_MEM_HOST3D, BLOB_FLAG_USE_MAPPABLE, 0,
                4 * PAGE, new long[0], new int[0]), HDR_SIZE).type());
        GpuDriver.Reply mapped = send(command(CMD_RESOURCE_MAP_BLOB, 16, 0).putInt(24, 30).putLong(32, 4 * PAGE), HDR_SIZE + 8);
        assertEquals(RESP_OK_MAP_INFO, mapped.type());
        assertEquals(1, hostVisible.mappings());
        var memory = hostVisible.mappedAt(4 * PAGE);
        assertTrue(memory.byteSize() >= 4 * PAGE);
        memory.set(java.lang.foreign.ValueLayout.JAVA_INT, 0, 0x12345678);
        assertEquals(0x12345678, memory.get(java.lang.foreign.ValueLayout.JAVA_INT, 0), "the guest's view is read-write");
        assertEquals(RESP_OK_NODATA, send(command(CMD_RESOURCE_UNREF, 8, 0).putInt(24, 30), HDR_SIZE).type());
        assertEquals(0, hostVisible.mappings(), "unref took it out of the guest");
    }

    @Test
    void theRenderServerLivesWithTheDeviceAndASecondVenusOrVirglIsRefused() {
        long before = VenusLinuxGuestTest.renderServers();
        driver();
        assertTrue(VenusLinuxGuestTest.renderServers() > before, "virglrenderer started its render server");
        VmConfigException e = assertThrows(VmConfigException.class, () -> VirglRenderer.acquire("another", true));
        assertTrue(e.getMessage().startsWith("--gpu venus: virglrenderer is in use by another VM"), e.getMessage());
        driver.close();
        driver = null;
        assertEquals(before, VenusLinuxGuestTest.renderServers(), "the render server ended with the device");
    }

    @Test
    void aVirglDeviceRefusesContextInit() {
        driver = new GpuDriver(new VirtioGpu(GpuSpec.virgl().withSize(64, 32), VirglRenderer.acquire("VenusGpuTest")), 16 << 20,
                F_EDID | F_VIRGL);
        assertEquals(F_EDID | F_VIRGL | F_RESOURCE_BLOB, driver.gpu.deviceFeatures());
        assertEquals(RESP_ERR_INVALID_PARAMETER, ctxCreate(CTX, CAPSET_VENUS));
        assertEquals(RESP_ERR_INVALID_PARAMETER, send(GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, CAPSET_VENUS).putInt(28, 0),
                HDR_SIZE + 4096).type());
    }
}
