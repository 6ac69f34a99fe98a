package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Timeout;
import org.krun.api.GpuSpec;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.TestSharedMemory;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of what a hostile driver can say to a Venus device around the command streams:
 * CTX_CREATE with any context id and context_init, CTX_DESTROY, capset info and capsets of any index, id and
 * version, fenced empty submissions with any flags, ring index and context, host3d blobs with blob id 0 (the
 * render server's shared memory) of any size and flags, maps at any offset, unmaps, unrefs, resets. Runs
 * against the real virglrenderer and its render server (one device for the run, reset before each input,
 * closed after it);
 * the command streams themselves are Venus's own parser's, in the render server, and are not fuzzed here.
 *
 * <p>Asserted: every request is answered with a response type of the spec; no fence is left outstanding
 * once its request is answered; the device holds at most {@link Gpu3d#MAX_CONTEXTS} contexts; the blobs the
 * device counts as mapped are the region's mappings; after a reset nothing is mapped and no context or
 * resource is left.
 */
class VenusControlFuzzTest {

    private static final long PAGE = 4096;
    private static final int MAX_STEPS = 32;
    private static final Set<Integer> RESPONSES = Set.of(RESP_OK_NODATA, RESP_OK_CAPSET_INFO, RESP_OK_CAPSET,
            RESP_OK_MAP_INFO, RESP_ERR_UNSPEC, RESP_ERR_OUT_OF_MEMORY, RESP_ERR_INVALID_RESOURCE_ID,
            RESP_ERR_INVALID_CONTEXT_ID, RESP_ERR_INVALID_PARAMETER);
    private static final long FEATURES = F_EDID | F_VIRGL | F_RESOURCE_BLOB | F_CONTEXT_INIT;

    static {
        FuzzBounds.quietLogs("org.krun.device.gpu");
    }

    private static VirtioGpu gpu;
    private static TestGuestMemory ram;
    private static TestSharedMemory hostVisible;

    private static synchronized VirtioGpu device() {
        if (gpu == null) {
            Assumptions.assumeTrue(Virgl.problem() == null, Virgl.problem());
            Assumptions.assumeTrue(VenusHost.problem() == null, VenusHost.problem());
            // the process's renderer for the whole run: its render server is started once
            gpu = new VirtioGpu(GpuSpec.venus().withSize(64, 32).withHostMemoryBytes(4L << 20),
                    VirglRenderer.acquire("VenusControlFuzzTest", true));
            ram = TestGuestMemory.create(4 << 20);
            hostVisible = new TestSharedMemory(SHM_ID_HOST_VISIBLE, 1L << 32, 256 * PAGE, 8);
        }
        return gpu;
    }

    /** Gives the process's renderer back (its render server ends) for the tests that run after this one. */
    @AfterAll
    static synchronized void closeDevice() {
        if (gpu != null) {
            gpu.close();
            ram.close();
            gpu = null;
        }
    }

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 120, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void hostileContextCapsetFenceAndBlobRequestsAreAnsweredAndLeaveNothing(byte[] input) {
        VirtioGpu g = device();
        g.reset();
        check(hostVisible.mappings() == 0, "a reset left " + hostVisible.mappings() + " blobs mapped");
        GpuDriver driver = new GpuDriver(g, ram, FEATURES, hostVisible);
        FuzzInput in = new FuzzInput(input);
        for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
            ByteBuffer request = switch (in.below(9)) {
                case 0, 1 -> ctxCreate(in);
                case 2 -> command(CMD_CTX_DESTROY, 0, ctx(in));
                case 3 -> GpuDriver.command(CMD_GET_CAPSET_INFO, 8).putInt(24, in.pick(0, 1, 2, 3, in.i32()));
                case 4 -> GpuDriver.command(CMD_GET_CAPSET, 8).putInt(24, in.pick(1, 2, 4, 3, 5, in.i32()))
                        .putInt(28, in.pick(0, 1, 2, in.i32()));
                case 5 -> submit(in);
                case 6 -> blob(in);
                case 7 -> command(in.pick(CMD_RESOURCE_MAP_BLOB, CMD_RESOURCE_UNMAP_BLOB, CMD_RESOURCE_UNREF), 16, 0)
                        .putInt(24, in.pick(1, 2, 3, in.i32())).putLong(32, in.pick(0L, PAGE, 255 * PAGE, 256 * PAGE, 100L, in.i64()));
                default -> null;
            };
            if (request == null) {
                g.reset();
                check(hostVisible.mappings() == 0, "a reset left blobs mapped");
                driver = new GpuDriver(g, ram, FEATURES, hostVisible);
                continue;
            }
            GpuDriver.Reply reply = driver.sendAndWait(request, List.of(), HDR_SIZE + 4096);
            check(RESPONSES.contains(reply.type()), "response type 0x" + Integer.toHexString(reply.type()));
            Gpu3d state = g.state3d();
            VirglRenderer r = g.renderer();
            int outstanding = r.call(r::fencesOutstanding);
            check(outstanding == 0, outstanding + " fences outstanding after their request was answered");
            int[] counts = r.call(() -> new int[] {state.contextCount(), state.mappedBlobs()});
            check(counts[0] <= Gpu3d.MAX_CONTEXTS, counts[0] + " contexts");
            check(counts[1] == hostVisible.mappings(), counts[1] + " blobs mapped, the region has " + hostVisible.mappings());
        }
        g.reset();
        check(hostVisible.mappings() == 0, "a reset left blobs mapped");
    }

    private static void check(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }

    private static int ctx(FuzzInput in) {
        return in.pick(1, 2, 3, 0, in.i32());
    }

    private static ByteBuffer command(int type, int bodySize, int ctx) {
        return GpuDriver.command(type, bodySize).putInt(16, ctx);
    }

    private static ByteBuffer ctxCreate(FuzzInput in) {
        ByteBuffer b = command(CMD_CTX_CREATE, 8 + CTX_NAME_SIZE, ctx(in));
        return b.putInt(24, in.pick(0, 5, CTX_NAME_SIZE, in.i32())).putInt(28, in.pick(0, 1, 2, 3, 4, 5, 0x104, 0xff, in.i32()));
    }

    private static ByteBuffer submit(FuzzInput in) {
        ByteBuffer b = command(CMD_SUBMIT_3D, 8, ctx(in));
        return b.putInt(4, in.pick(FLAG_FENCE, FLAG_FENCE | FLAG_INFO_RING_IDX, FLAG_INFO_RING_IDX, 0, in.i32()))
                .putLong(8, in.i64()).put(20, (byte) in.pick(0, 1, 63, 64, 255)).putInt(24, 0);
    }

    private static ByteBuffer blob(FuzzInput in) {
        return VirglGpuTest.createBlob(ctx(in), in.pick(1, 2, 3, in.i32()), in.pick(BLOB_MEM_HOST3D, BLOB_MEM_GUEST, 4, in.i32()),
                in.pick(BLOB_FLAG_USE_MAPPABLE, BLOB_FLAG_USE_MAPPABLE | BLOB_FLAG_USE_SHAREABLE, 0, in.i32()),
                in.pick(0L, 1L, in.i64()), in.pick(PAGE, 4 * PAGE, 100L, 0L, 4L << 20, 1L << 40, in.i64()), new long[0], new int[0]);
    }
}
