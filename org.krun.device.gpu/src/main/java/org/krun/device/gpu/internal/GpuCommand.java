package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.krun.spi.virtio.ChainReader;

/**
 * One request of the control or cursor queue (virtio 1.2 §5.7.6.7-8), decoded from the driver-readable
 * part of its chain and nothing else: {@link #parse} is pure, the device executes. A request that is too
 * short for its type, or of a type this device does not serve, becomes {@link Malformed} or
 * {@link Unsupported}, answered with VIRTIO_GPU_RESP_ERR_UNSPEC.
 */
sealed interface GpuCommand {

    /** The most backing entries one RESOURCE_ATTACH_BACKING may name (a 256 MiB resource in 4 KiB pages). */
    int MAX_BACKING_ENTRIES = 1 << 16;
    /**
     * The largest SUBMIT_3D command buffer read (Mesa's virgl driver sends at most 64 Ki dwords, 256 KiB, per
     * submission); a larger one is malformed, so a guest cannot make the device hold more.
     */
    int MAX_SUBMIT_BYTES = 1 << 20;

    /** struct virtio_gpu_ctrl_hdr, as the request carried it. */
    record Header(int type, int flags, long fenceId, int ctxId, int ringIdx) {
        static final Header NONE = new Header(0, 0, 0, 0, 0);
    }

    record GetDisplayInfo() implements GpuCommand {
    }

    record GetEdid(int scanoutId) implements GpuCommand {
    }

    record ResourceCreate2d(int resourceId, int format, int width, int height) implements GpuCommand {
    }

    record ResourceUnref(int resourceId) implements GpuCommand {
    }

    record SetScanout(Rect rect, int scanoutId, int resourceId) implements GpuCommand {
    }

    record ResourceFlush(Rect rect, int resourceId) implements GpuCommand {
    }

    record TransferToHost2d(Rect rect, long offset, int resourceId) implements GpuCommand {
    }

    /** The guest pages behind a resource: {@code addresses[i]} for {@code lengths[i]} bytes. */
    record AttachBacking(int resourceId, long[] addresses, int[] lengths) implements GpuCommand {
    }

    record DetachBacking(int resourceId) implements GpuCommand {
    }

    /** UPDATE_CURSOR and MOVE_CURSOR: struct virtio_gpu_update_cursor (MOVE ignores the resource and hot spot). */
    record Cursor(boolean move, int scanoutId, int x, int y, int resourceId, int hotX, int hotY) implements GpuCommand {
    }

    /** GET_CAPSET_INFO: struct virtio_gpu_get_capset_info (le32 capset_index, le32 padding). */
    record GetCapsetInfo(int index) implements GpuCommand {
    }

    /** GET_CAPSET: struct virtio_gpu_get_capset (le32 capset_id, le32 capset_version). */
    record GetCapset(int capsetId, int version) implements GpuCommand {
    }

    /**
     * CTX_CREATE: struct virtio_gpu_ctx_create (le32 nlen, le32 context_init, char debug_name[64]); the
     * context's id is the header's ctx_id. {@code name} holds the first {@code min(nlen, 64)} bytes.
     */
    record CtxCreate(int nameLength, int contextInit, byte[] name) implements GpuCommand {
    }

    /** CTX_DESTROY: the header's context. */
    record CtxDestroy() implements GpuCommand {
    }

    /** CTX_ATTACH_RESOURCE and CTX_DETACH_RESOURCE: struct virtio_gpu_ctx_resource. */
    record CtxResource(boolean attach, int resourceId) implements GpuCommand {
    }

    /** RESOURCE_CREATE_3D: struct virtio_gpu_resource_create_3d (the gallium pipe_resource fields). */
    record ResourceCreate3d(int resourceId, int target, int format, int bind, int width, int height, int depth,
            int arraySize, int lastLevel, int samples, int flags) implements GpuCommand {
    }

    /** struct virtio_gpu_box: le32 x, y, z, w, h, d (unsigned). */
    record Box(int x, int y, int z, int w, int h, int d) {
    }

    /**
     * TRANSFER_TO_HOST_3D ({@code toHost}) and TRANSFER_FROM_HOST_3D: struct virtio_gpu_transfer_host_3d (a
     * box, le64 offset into the backing, le32 resource_id, level, stride, layer_stride); the header's context.
     */
    record Transfer3d(boolean toHost, Box box, long offset, int resourceId, int level, int stride, int layerStride)
            implements GpuCommand {
    }

    /** SUBMIT_3D: struct virtio_gpu_cmd_submit (le32 size, le32 padding), then size bytes of virgl commands. */
    record Submit3d(byte[] commands) implements GpuCommand {
    }

    /**
     * RESOURCE_CREATE_BLOB: struct virtio_gpu_resource_create_blob (le32 resource_id, blob_mem, blob_flags,
     * nr_entries, le64 blob_id, size), then nr_entries struct virtio_gpu_mem_entry (the guest pages of a
     * guest blob); the header's context.
     */
    record ResourceCreateBlob(int resourceId, int blobMem, int blobFlags, long blobId, long size, long[] addresses,
            int[] lengths) implements GpuCommand {
    }

    /**
     * SET_SCANOUT_BLOB: struct virtio_gpu_set_scanout_blob (rect, le32 scanout_id, resource_id, width,
     * height, format, padding, strides[4], offsets[4]); only plane 0 is shown.
     */
    record SetScanoutBlob(Rect rect, int scanoutId, int resourceId, int width, int height, int format, int[] strides,
            int[] offsets) implements GpuCommand {
    }

    /** RESOURCE_MAP_BLOB: struct virtio_gpu_resource_map_blob (le32 resource_id, padding, le64 offset). */
    record MapBlob(int resourceId, long offset) implements GpuCommand {
    }

    /** RESOURCE_UNMAP_BLOB: struct virtio_gpu_resource_unmap_blob (le32 resource_id, padding). */
    record UnmapBlob(int resourceId) implements GpuCommand {
    }

    /** A request whose type this device knows of but does not serve (UUIDs). */
    record Unsupported(int type) implements GpuCommand {
    }

    /** A request too short for its type, or of a type nobody defines. */
    record Malformed(String reason) implements GpuCommand {
    }

    /** A decoded request: its header and what it asks. */
    record Request(Header header, GpuCommand command) {
    }

    /** Decodes one request from the driver-readable bytes of its chain. */
    static Request parse(ChainReader reader) {
        if (reader.remaining() < HDR_SIZE) {
            return new Request(Header.NONE, new Malformed("request of " + reader.remaining() + " bytes has no header"));
        }
        ByteBuffer h = le(reader.readBytes(HDR_SIZE));
        Header header = new Header(h.getInt(0), h.getInt(4), h.getLong(8), h.getInt(16), h.get(20) & 0xff);
        return new Request(header, body(header.type(), reader));
    }

    private static GpuCommand body(int type, ChainReader reader) {
        return switch (type) {
            case CMD_GET_DISPLAY_INFO -> new GetDisplayInfo();
            case CMD_GET_EDID -> withBody(reader, 8, type, b -> new GetEdid(b.getInt(0)));
            case CMD_RESOURCE_CREATE_2D -> withBody(reader, 16, type,
                    b -> new ResourceCreate2d(b.getInt(0), b.getInt(4), b.getInt(8), b.getInt(12)));
            case CMD_RESOURCE_UNREF -> withBody(reader, 8, type, b -> new ResourceUnref(b.getInt(0)));
            case CMD_SET_SCANOUT -> withBody(reader, 24, type, b -> new SetScanout(rect(b), b.getInt(16), b.getInt(20)));
            case CMD_RESOURCE_FLUSH -> withBody(reader, 24, type, b -> new ResourceFlush(rect(b), b.getInt(16)));
            case CMD_TRANSFER_TO_HOST_2D -> withBody(reader, 32, type,
                    b -> new TransferToHost2d(rect(b), b.getLong(16), b.getInt(24)));
            case CMD_RESOURCE_ATTACH_BACKING -> attachBacking(reader);
            case CMD_RESOURCE_DETACH_BACKING -> withBody(reader, 8, type, b -> new DetachBacking(b.getInt(0)));
            case CMD_UPDATE_CURSOR, CMD_MOVE_CURSOR -> withBody(reader, 32, type, b -> new Cursor(type == CMD_MOVE_CURSOR,
                    b.getInt(0), b.getInt(4), b.getInt(8), b.getInt(16), b.getInt(20), b.getInt(24)));
            case CMD_GET_CAPSET_INFO -> withBody(reader, 8, type, b -> new GetCapsetInfo(b.getInt(0)));
            case CMD_GET_CAPSET -> withBody(reader, 8, type, b -> new GetCapset(b.getInt(0), b.getInt(4)));
            case CMD_CTX_CREATE -> withBody(reader, 8 + CTX_NAME_SIZE, type, b -> {
                int nlen = b.getInt(0);
                byte[] name = new byte[(int) Math.min(nlen & 0xffffffffL, CTX_NAME_SIZE)];
                b.get(8, name);
                return new CtxCreate(nlen, b.getInt(4), name);
            });
            case CMD_CTX_DESTROY -> new CtxDestroy();
            case CMD_CTX_ATTACH_RESOURCE, CMD_CTX_DETACH_RESOURCE -> withBody(reader, 8, type,
                    b -> new CtxResource(type == CMD_CTX_ATTACH_RESOURCE, b.getInt(0)));
            case CMD_RESOURCE_CREATE_3D -> withBody(reader, 48, type, b -> new ResourceCreate3d(b.getInt(0), b.getInt(4),
                    b.getInt(8), b.getInt(12), b.getInt(16), b.getInt(20), b.getInt(24), b.getInt(28), b.getInt(32),
                    b.getInt(36), b.getInt(40)));
            case CMD_TRANSFER_TO_HOST_3D, CMD_TRANSFER_FROM_HOST_3D -> withBody(reader, 48, type, b -> new Transfer3d(
                    type == CMD_TRANSFER_TO_HOST_3D, new Box(b.getInt(0), b.getInt(4), b.getInt(8), b.getInt(12), b.getInt(16),
                            b.getInt(20)), b.getLong(24), b.getInt(32), b.getInt(36), b.getInt(40), b.getInt(44)));
            case CMD_SUBMIT_3D -> submit(reader);
            case CMD_RESOURCE_CREATE_BLOB -> createBlob(reader);
            case CMD_SET_SCANOUT_BLOB -> withBody(reader, 72, type, b -> {
                int[] strides = new int[4];
                int[] offsets = new int[4];
                for (int i = 0; i < 4; i++) {
                    strides[i] = b.getInt(40 + 4 * i);
                    offsets[i] = b.getInt(56 + 4 * i);
                }
                return new SetScanoutBlob(rect(b), b.getInt(16), b.getInt(20), b.getInt(24), b.getInt(28), b.getInt(32),
                        strides, offsets);
            });
            case CMD_RESOURCE_MAP_BLOB -> withBody(reader, 16, type, b -> new MapBlob(b.getInt(0), b.getLong(8)));
            case CMD_RESOURCE_UNMAP_BLOB -> withBody(reader, 8, type, b -> new UnmapBlob(b.getInt(0)));
            // UUIDs, and the rest of the 3D range (0x0200-0x02ff)
            case CMD_RESOURCE_ASSIGN_UUID -> new Unsupported(type);
            default -> (type & 0xffffff00) == 0x0200 ? new Unsupported(type)
                    : new Malformed("unknown command type 0x" + Integer.toHexString(type));
        };
    }

    /** struct virtio_gpu_cmd_submit, then its command buffer (whole dwords, at most {@link #MAX_SUBMIT_BYTES}). */
    private static GpuCommand submit(ChainReader reader) {
        if (reader.remaining() < 8) {
            return short_(CMD_SUBMIT_3D, 8, reader);
        }
        long size = le(reader.readBytes(8)).getInt(0) & 0xffffffffL;
        if (size > MAX_SUBMIT_BYTES || size % 4 != 0) {
            return new Malformed("submit 3d of " + size + " bytes (whole dwords, at most " + MAX_SUBMIT_BYTES + ")");
        }
        if (reader.remaining() < size) {
            return new Malformed("submit 3d names " + size + " bytes, the request has " + reader.remaining());
        }
        return new Submit3d(reader.readBytes((int) size));
    }

    /** struct virtio_gpu_resource_create_blob, then nr_entries struct virtio_gpu_mem_entry. */
    private static GpuCommand createBlob(ChainReader reader) {
        if (reader.remaining() < 32) {
            return short_(CMD_RESOURCE_CREATE_BLOB, 32, reader);
        }
        ByteBuffer b = le(reader.readBytes(32));
        long entries = b.getInt(12) & 0xffffffffL;
        String problem = entriesProblem("create blob", entries, reader);
        if (problem != null) {
            return new Malformed(problem);
        }
        long[] addresses = new long[(int) entries];
        int[] lengths = new int[(int) entries];
        readEntries(reader, addresses, lengths);
        return new ResourceCreateBlob(b.getInt(0), b.getInt(4), b.getInt(8), b.getLong(16), b.getLong(24), addresses, lengths);
    }

    /** Why {@code entries} memory entries cannot be read (too many, or not in the request), or null. */
    private static String entriesProblem(String what, long entries, ChainReader reader) {
        if (entries > MAX_BACKING_ENTRIES) {
            return what + " with " + entries + " entries (at most " + MAX_BACKING_ENTRIES + ")";
        }
        if (reader.remaining() < entries * MEM_ENTRY_SIZE) {
            return what + " names " + entries + " entries in " + reader.remaining() + " bytes";
        }
        return null;
    }

    /** struct virtio_gpu_resource_attach_backing, then nr_entries struct virtio_gpu_mem_entry. */
    private static GpuCommand attachBacking(ChainReader reader) {
        if (reader.remaining() < 8) {
            return short_(CMD_RESOURCE_ATTACH_BACKING, 8, reader);
        }
        ByteBuffer b = le(reader.readBytes(8));
        int resourceId = b.getInt(0);
        long entries = b.getInt(4) & 0xffffffffL;
        String problem = entriesProblem("attach backing", entries, reader);
        if (problem != null) {
            return new Malformed(problem);
        }
        long[] addresses = new long[(int) entries];
        int[] lengths = new int[(int) entries];
        readEntries(reader, addresses, lengths);
        return new AttachBacking(resourceId, addresses, lengths);
    }

    /** Reads {@code addresses.length} struct virtio_gpu_mem_entry (the caller checked they are there). */
    private static void readEntries(ChainReader reader, long[] addresses, int[] lengths) {
        int entries = addresses.length;
        byte[] chunk = new byte[MEM_ENTRY_SIZE * 256];
        for (int done = 0; done < entries;) {
            int n = Math.min(256, entries - done);
            ByteBuffer e = le(chunk);
            reader.read(chunk, 0, n * MEM_ENTRY_SIZE);
            for (int i = 0; i < n; i++) {
                addresses[done + i] = e.getLong(i * MEM_ENTRY_SIZE);
                lengths[done + i] = e.getInt(i * MEM_ENTRY_SIZE + 8);
            }
            done += n;
        }
    }

    private static Rect rect(ByteBuffer b) {
        return Rect.of(b.getInt(0), b.getInt(4), b.getInt(8), b.getInt(12));
    }

    private static GpuCommand withBody(ChainReader reader, int size, int type, java.util.function.Function<ByteBuffer, GpuCommand> decode) {
        if (reader.remaining() < size) {
            return short_(type, size, reader);
        }
        return decode.apply(le(reader.readBytes(size)));
    }

    private static GpuCommand short_(int type, int size, ChainReader reader) {
        return new Malformed("command 0x" + Integer.toHexString(type) + " needs " + size + " bytes after its header, has "
                + reader.remaining());
    }

    private static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }
}
