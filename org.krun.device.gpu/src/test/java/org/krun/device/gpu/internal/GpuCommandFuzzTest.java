package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.device.gpu.internal.GpuCommand.*;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of the request decoder ({@link GpuCommand#parse}) with the 3D commands a virgl
 * device hands to virglrenderer, and every other: requests of each type with bodies short, exact and long,
 * size and name-length fields anywhere (submit sizes beyond the body, not whole dwords, beyond the cap),
 * split over one to three descriptors. Runs without virglrenderer: the decoder is pure, and random
 * command streams into virglrenderer's own C parser could end the fuzzing JVM rather than find a bug of
 * ours.
 *
 * <p>Asserted, besides the bounds of {@link FuzzBounds}: the decoded command says what its bytes say (every
 * field of the 3D commands, the submitted command buffer byte for byte, the context name cut at 64 bytes);
 * a request shorter than its type's body is {@link Malformed}; a submission that is not whole dwords, larger
 * than {@link GpuCommand#MAX_SUBMIT_BYTES} or than what follows is refused; the header round-trips.
 */
class GpuCommandFuzzTest {

    private static final TestGuestMemory MEMORY = TestGuestMemory.create(4 << 20);
    /** The body size of each fixed-size request type. */
    private static final Map<Integer, Integer> BODY = Map.ofEntries(Map.entry(CMD_GET_DISPLAY_INFO, 0),
            Map.entry(CMD_GET_EDID, 8), Map.entry(CMD_RESOURCE_CREATE_2D, 16), Map.entry(CMD_RESOURCE_UNREF, 8),
            Map.entry(CMD_SET_SCANOUT, 24), Map.entry(CMD_RESOURCE_FLUSH, 24), Map.entry(CMD_TRANSFER_TO_HOST_2D, 32),
            Map.entry(CMD_RESOURCE_DETACH_BACKING, 8), Map.entry(CMD_GET_CAPSET_INFO, 8), Map.entry(CMD_GET_CAPSET, 8),
            Map.entry(CMD_CTX_CREATE, 8 + CTX_NAME_SIZE), Map.entry(CMD_CTX_DESTROY, 0), Map.entry(CMD_CTX_ATTACH_RESOURCE, 8),
            Map.entry(CMD_CTX_DETACH_RESOURCE, 8), Map.entry(CMD_RESOURCE_CREATE_3D, 48), Map.entry(CMD_TRANSFER_TO_HOST_3D, 48),
            Map.entry(CMD_TRANSFER_FROM_HOST_3D, 48), Map.entry(CMD_UPDATE_CURSOR, 32), Map.entry(CMD_MOVE_CURSOR, 32),
            Map.entry(CMD_RESOURCE_MAP_BLOB, 16), Map.entry(CMD_RESOURCE_UNMAP_BLOB, 8), Map.entry(CMD_SET_SCANOUT_BLOB, 72));
    private static final int[] TYPES = {CMD_GET_DISPLAY_INFO, CMD_GET_EDID, CMD_RESOURCE_CREATE_2D, CMD_RESOURCE_UNREF,
        CMD_SET_SCANOUT, CMD_RESOURCE_FLUSH, CMD_TRANSFER_TO_HOST_2D, CMD_RESOURCE_ATTACH_BACKING, CMD_RESOURCE_DETACH_BACKING,
        CMD_GET_CAPSET_INFO, CMD_GET_CAPSET, CMD_CTX_CREATE, CMD_CTX_DESTROY, CMD_CTX_ATTACH_RESOURCE, CMD_CTX_DETACH_RESOURCE,
        CMD_RESOURCE_CREATE_3D, CMD_TRANSFER_TO_HOST_3D, CMD_TRANSFER_FROM_HOST_3D, CMD_SUBMIT_3D, CMD_RESOURCE_MAP_BLOB,
        CMD_RESOURCE_CREATE_BLOB, CMD_RESOURCE_UNMAP_BLOB, CMD_SET_SCANOUT_BLOB, CMD_UPDATE_CURSOR, CMD_MOVE_CURSOR};

    static {
        FuzzBounds.quietLogs("org.krun.device.gpu");
    }

    /** Per input: one request of at most a little over the submit cap, laid out and read once. */
    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-gpu decoder",
            FuzzBounds.Limits.defaults().withAllocatedPerInput(16L << 20), input -> decode(new FuzzInput(input)));

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void everyRequestDecodesToWhatItsBytesSay(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    private static void decode(FuzzInput in) {
        MEMORY.clear();
        int type = in.u8() < 240 ? TYPES[in.below(TYPES.length)] : in.pick(0x0200 + in.below(256), in.i32());
        int bodyLength = in.pick(0, 4, 7, 8, 16, 24, 32, 47, 48, 71, 72, 80, in.below(512), in.below(70_000));
        ByteBuffer b = ByteBuffer.allocate(HDR_SIZE + bodyLength).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, type).putInt(4, in.i32()).putLong(8, in.i64()).putInt(16, in.i32()).put(20, (byte) in.u8());
        byte[] fill = in.bytes(bodyLength);
        b.put(HDR_SIZE, fill);
        if (type == CMD_SUBMIT_3D && bodyLength >= 8) {
            b.putInt(HDR_SIZE, in.pick(0, 4, bodyLength - 8, bodyLength - 7, bodyLength - 4, bodyLength,
                    GpuCommand.MAX_SUBMIT_BYTES, GpuCommand.MAX_SUBMIT_BYTES + 4, in.i32()));
        } else if (type == CMD_RESOURCE_CREATE_BLOB && bodyLength >= 32) {
            int room = (bodyLength - 32) / MEM_ENTRY_SIZE;
            b.putInt(HDR_SIZE + 12, in.pick(0, 1, room, room + 1, GpuCommand.MAX_BACKING_ENTRIES,
                    GpuCommand.MAX_BACKING_ENTRIES + 1, in.i32()));
        } else if (type == CMD_CTX_CREATE && bodyLength >= 4) {
            b.putInt(HDR_SIZE, in.pick(0, 1, 63, 64, 65, -1, in.i32()));
        }
        byte[] request = b.array();

        // one to three readable descriptors, split anywhere
        List<byte[]> pieces = new ArrayList<>();
        int at = 0;
        for (int n = 1 + in.below(3); n > 1 && at < request.length; n--) {
            int cut = at + in.below(request.length - at + 1);
            pieces.add(Arrays.copyOfRange(request, at, cut));
            at = cut;
        }
        pieces.add(Arrays.copyOfRange(request, at, request.length));
        pieces.removeIf(p -> p.length == 0);
        if (pieces.isEmpty()) {
            pieces.add(new byte[0]);
        }
        MockDriverQueue q = new MockDriverQueue(MEMORY, 16);
        q.addChain(pieces, List.of(HDR_SIZE));
        DescriptorChain chain = q.configuredQueue().pop(MEMORY.memory());
        GpuCommand.Request r = GpuCommand.parse(chain.reader(MEMORY.memory()));
        check(type, request, r);
    }

    private static void check(int type, byte[] request, GpuCommand.Request r) {
        ByteBuffer b = ByteBuffer.wrap(request).order(ByteOrder.LITTLE_ENDIAN);
        GpuCommand.Header h = r.header();
        expect(h.type() == type && h.flags() == b.getInt(4) && h.fenceId() == b.getLong(8) && h.ctxId() == b.getInt(16)
                && h.ringIdx() == (b.get(20) & 0xff), "header " + h);
        int body = request.length - HDR_SIZE;
        Integer needed = BODY.get(type);
        GpuCommand c = r.command();
        if (needed != null && body < needed) {
            expect(c instanceof Malformed, "a " + body + "-byte body of 0x" + Integer.toHexString(type) + " became " + c);
            return;
        }
        switch (c) {
            case CtxCreate cc -> {
                int nlen = b.getInt(HDR_SIZE);
                int kept = (int) Math.min(nlen & 0xffffffffL, CTX_NAME_SIZE);
                expect(cc.nameLength() == nlen && cc.contextInit() == b.getInt(HDR_SIZE + 4)
                        && Arrays.equals(cc.name(), Arrays.copyOfRange(request, HDR_SIZE + 8, HDR_SIZE + 8 + kept)), "ctx create");
            }
            case CtxResource cr -> expect(cr.attach() == (type == CMD_CTX_ATTACH_RESOURCE) && cr.resourceId() == b.getInt(HDR_SIZE),
                    "ctx resource");
            case ResourceCreate3d c3 -> {
                int[] f = {c3.resourceId(), c3.target(), c3.format(), c3.bind(), c3.width(), c3.height(), c3.depth(),
                    c3.arraySize(), c3.lastLevel(), c3.samples(), c3.flags()};
                for (int i = 0; i < f.length; i++) {
                    expect(f[i] == b.getInt(HDR_SIZE + 4 * i), "create 3d field " + i);
                }
            }
            case Transfer3d t -> {
                GpuCommand.Box x = t.box();
                int[] f = {x.x(), x.y(), x.z(), x.w(), x.h(), x.d()};
                for (int i = 0; i < f.length; i++) {
                    expect(f[i] == b.getInt(HDR_SIZE + 4 * i), "transfer box field " + i);
                }
                expect(t.toHost() == (type == CMD_TRANSFER_TO_HOST_3D) && t.offset() == b.getLong(HDR_SIZE + 24)
                        && t.resourceId() == b.getInt(HDR_SIZE + 32) && t.level() == b.getInt(HDR_SIZE + 36)
                        && t.stride() == b.getInt(HDR_SIZE + 40) && t.layerStride() == b.getInt(HDR_SIZE + 44), "transfer 3d");
            }
            case Submit3d s -> {
                long size = b.getInt(HDR_SIZE) & 0xffffffffL;
                expect(type == CMD_SUBMIT_3D && size % 4 == 0 && size <= GpuCommand.MAX_SUBMIT_BYTES && size <= body - 8
                        && Arrays.equals(s.commands(), Arrays.copyOfRange(request, HDR_SIZE + 8, HDR_SIZE + 8 + (int) size)),
                        "submit of " + size + " bytes in a " + body + "-byte body");
            }
            case ResourceCreateBlob cb -> {
                long entries = b.getInt(HDR_SIZE + 12) & 0xffffffffL;
                expect(type == CMD_RESOURCE_CREATE_BLOB && cb.resourceId() == b.getInt(HDR_SIZE) && cb.blobMem() == b.getInt(HDR_SIZE + 4)
                        && cb.blobFlags() == b.getInt(HDR_SIZE + 8) && cb.blobId() == b.getLong(HDR_SIZE + 16)
                        && cb.size() == b.getLong(HDR_SIZE + 24) && entries <= GpuCommand.MAX_BACKING_ENTRIES
                        && entries * MEM_ENTRY_SIZE <= body - 32 && cb.addresses().length == entries
                        && cb.lengths().length == entries, "create blob with " + entries + " entries in a " + body + "-byte body");
                for (int i = 0; i < entries; i++) {
                    expect(cb.addresses()[i] == b.getLong(HDR_SIZE + 32 + MEM_ENTRY_SIZE * i)
                            && cb.lengths()[i] == b.getInt(HDR_SIZE + 40 + MEM_ENTRY_SIZE * i), "create blob entry " + i);
                }
            }
            case SetScanoutBlob sb -> {
                expect(sb.rect().equals(Rect.of(b.getInt(HDR_SIZE), b.getInt(HDR_SIZE + 4), b.getInt(HDR_SIZE + 8),
                        b.getInt(HDR_SIZE + 12))) && sb.scanoutId() == b.getInt(HDR_SIZE + 16) && sb.resourceId() == b.getInt(HDR_SIZE + 20)
                        && sb.width() == b.getInt(HDR_SIZE + 24) && sb.height() == b.getInt(HDR_SIZE + 28)
                        && sb.format() == b.getInt(HDR_SIZE + 32), "set scanout blob");
                for (int i = 0; i < 4; i++) {
                    expect(sb.strides()[i] == b.getInt(HDR_SIZE + 40 + 4 * i) && sb.offsets()[i] == b.getInt(HDR_SIZE + 56 + 4 * i),
                            "set scanout blob plane " + i);
                }
            }
            case MapBlob m -> expect(type == CMD_RESOURCE_MAP_BLOB && m.resourceId() == b.getInt(HDR_SIZE)
                    && m.offset() == b.getLong(HDR_SIZE + 8), "map blob");
            case UnmapBlob u -> expect(type == CMD_RESOURCE_UNMAP_BLOB && u.resourceId() == b.getInt(HDR_SIZE), "unmap blob");
            case GetCapsetInfo g -> expect(g.index() == b.getInt(HDR_SIZE), "capset info");
            case GetCapset g -> expect(g.capsetId() == b.getInt(HDR_SIZE) && g.version() == b.getInt(HDR_SIZE + 4), "capset");
            case CtxDestroy d -> expect(type == CMD_CTX_DESTROY, "ctx destroy");
            case Malformed m -> {
                if (type == CMD_RESOURCE_CREATE_BLOB) {
                    long entries = body < 32 ? 0 : b.getInt(HDR_SIZE + 12) & 0xffffffffL;
                    expect(body < 32 || entries > GpuCommand.MAX_BACKING_ENTRIES || entries * MEM_ENTRY_SIZE > body - 32,
                            "create blob refused: " + m);
                } else if (type == CMD_SUBMIT_3D && body >= 8) {
                    long size = b.getInt(HDR_SIZE) & 0xffffffffL;
                    expect(size % 4 != 0 || size > GpuCommand.MAX_SUBMIT_BYTES || size > body - 8, "submit refused: " + m);
                } else {
                    expect(needed == null, "a " + body + "-byte body of 0x" + Integer.toHexString(type) + " refused: " + m);
                }
            }
            case Unsupported u -> expect(u.type() == type && ((type & 0xffffff00) == 0x0200 || type == CMD_RESOURCE_ASSIGN_UUID),
                    "unsupported 0x" + Integer.toHexString(type));
            default -> expect(needed != null || type == CMD_RESOURCE_ATTACH_BACKING, "0x" + Integer.toHexString(type) + " became " + c);
        }
    }

    private static void expect(boolean ok, String what) {
        if (!ok) {
            throw new AssertionError(what);
        }
    }
}
