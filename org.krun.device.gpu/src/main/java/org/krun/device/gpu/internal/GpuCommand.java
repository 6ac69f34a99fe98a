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

    /** A request whose type this device knows of but does not serve (3D, blobs, capsets). */
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
            // 2D commands this device does not offer, the 3D range (0x0200-0x02ff), blobs and UUIDs
            case CMD_GET_CAPSET_INFO, CMD_GET_CAPSET, 0x010b, 0x010c, 0x010d -> new Unsupported(type);
            default -> (type & 0xffffff00) == 0x0200 ? new Unsupported(type)
                    : new Malformed("unknown command type 0x" + Integer.toHexString(type));
        };
    }

    /** struct virtio_gpu_resource_attach_backing, then nr_entries struct virtio_gpu_mem_entry. */
    private static GpuCommand attachBacking(ChainReader reader) {
        if (reader.remaining() < 8) {
            return short_(CMD_RESOURCE_ATTACH_BACKING, 8, reader);
        }
        ByteBuffer b = le(reader.readBytes(8));
        int resourceId = b.getInt(0);
        long entries = b.getInt(4) & 0xffffffffL;
        if (entries > MAX_BACKING_ENTRIES) {
            return new Malformed("attach backing with " + entries + " entries (at most " + MAX_BACKING_ENTRIES + ")");
        }
        if (reader.remaining() < entries * MEM_ENTRY_SIZE) {
            return new Malformed("attach backing names " + entries + " entries in " + reader.remaining() + " bytes");
        }
        long[] addresses = new long[(int) entries];
        int[] lengths = new int[(int) entries];
        byte[] chunk = new byte[MEM_ENTRY_SIZE * 256];
        for (int done = 0; done < entries;) {
            int n = (int) Math.min(256, entries - done);
            ByteBuffer e = le(chunk);
            reader.read(chunk, 0, n * MEM_ENTRY_SIZE);
            for (int i = 0; i < n; i++) {
                addresses[done + i] = e.getLong(i * MEM_ENTRY_SIZE);
                lengths[done + i] = e.getInt(i * MEM_ENTRY_SIZE + 8);
            }
            done += n;
        }
        return new AttachBacking(resourceId, addresses, lengths);
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
