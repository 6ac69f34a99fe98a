package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import org.krun.api.GpuSpec;
import org.krun.device.gpu.internal.GpuCommand.*;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;

/**
 * Executes the 2D command set for one activation (virtio 1.2 §5.7.6.8): the resource table, the host memory
 * its resources take, and the scanouts they are shown on. Every guest value is checked before use and
 * answered with the spec's error where it is wrong; host memory for resources is bounded by
 * {@link GpuSpec#hostMemoryBytes()} together with the scanouts' copies, and the number of resources and of
 * backing entries by fixed caps. Runs on the device's event loop only; {@link #close} frees everything.
 */
final class Gpu2d implements GpuEngine {

    /** The most resources one device holds at once. */
    static final int MAX_RESOURCES = 4096;
    /** The most backing entries all resources of one device hold together. */
    static final int MAX_BACKING_ENTRIES_TOTAL = 1 << 18;
    /** The largest side of a resource (the Linux driver's mode limit is 8192). */
    static final int MAX_RESOURCE_SIDE = 16384;

    /** A response: its type and the bytes that follow the header. */
    record Response(int type, byte[] body) {
        static final byte[] NONE = new byte[0];

        static Response ok() {
            return new Response(RESP_OK_NODATA, NONE);
        }

        static Response error(int type) {
            return new Response(type, NONE);
        }
    }

    private final GpuSpec spec;
    private final List<Scanout> scanouts;
    private final GuestMemory memory;
    private final Consumer<String> guestError;
    private final Consumer<String> hostError;
    private final Map<Integer, Resource> resources = new HashMap<>();
    /** Guest-memory blobs, in the same id space as {@link #resources}. */
    private final Map<Integer, GuestBlob> blobs = new HashMap<>();
    private long resourceBytes;
    private long backingEntries;
    /** Per scanout: the cursor the guest last set (resource 0: none) and where it is. */
    private final int[][] cursors;

    Gpu2d(GpuSpec spec, List<Scanout> scanouts, GuestMemory memory, Consumer<String> guestError,
            Consumer<String> hostError) {
        this.spec = spec;
        this.scanouts = scanouts;
        this.memory = memory;
        this.guestError = guestError;
        this.hostError = hostError;
        this.cursors = new int[scanouts.size()][5];
    }

    /** Host bytes the guest's resources and the scanouts' copies take now. */
    long hostBytes() {
        return resourceBytes + Scanout.hostBytes(scanouts);
    }

    int resourceCount() {
        return resources.size() + blobs.size();
    }

    GuestBlob blob(int id) {
        return blobs.get(id);
    }

    long backingEntries() {
        return backingEntries;
    }

    /** The cursor of scanout {@code s}: resource id, x, y, hot x, hot y. */
    int[] cursor(int s) {
        return cursors[s].clone();
    }

    Resource resource(int id) {
        return resources.get(id);
    }

    /** The resources held now, and the host copies of guest blobs on scanouts (tests). */
    List<Resource> resources() {
        List<Resource> out = new java.util.ArrayList<>(resources.values());
        for (GuestBlob b : blobs.values()) {
            if (b.shadow() != null) {
                out.add(b.shadow());
            }
        }
        return out;
    }

    Response execute(GpuCommand command) {
        return switch (command) {
            case GetDisplayInfo g -> displayInfo(spec, scanouts.size());
            case GetEdid g -> edid(spec, scanouts.size(), g);
            case ResourceCreate2d c -> create(c);
            case ResourceUnref u -> unref(u.resourceId());
            case SetScanout s -> setScanout(s);
            case ResourceFlush f -> flush(f);
            case TransferToHost2d t -> transfer(t);
            case AttachBacking a -> attach(a);
            case DetachBacking d -> detach(d.resourceId());
            case Cursor c -> cursor(c);
            case ResourceCreateBlob b -> createBlob(b);
            case SetScanoutBlob s -> setScanoutBlob(s);
            case MapBlob m -> mapBlob(m.resourceId());
            case UnmapBlob u -> mapBlob(u.resourceId());
            case Unsupported u -> notOffered(u.type());
            case GetCapsetInfo g -> notOffered(CMD_GET_CAPSET_INFO);
            case GetCapset g -> notOffered(CMD_GET_CAPSET);
            case CtxCreate c -> notOffered(CMD_CTX_CREATE);
            case CtxDestroy c -> notOffered(CMD_CTX_DESTROY);
            case CtxResource c -> notOffered(c.attach() ? CMD_CTX_ATTACH_RESOURCE : CMD_CTX_DETACH_RESOURCE);
            case ResourceCreate3d c -> notOffered(CMD_RESOURCE_CREATE_3D);
            case Transfer3d t -> notOffered(t.toHost() ? CMD_TRANSFER_TO_HOST_3D : CMD_TRANSFER_FROM_HOST_3D);
            case Submit3d s -> notOffered(CMD_SUBMIT_3D);
            case Malformed m -> {
                guestError(m.reason());
                yield Response.error(RESP_ERR_UNSPEC);
            }
        };
    }

    private Response notOffered(int type) {
        guestError("command 0x" + Integer.toHexString(type) + " is not offered (2D only)");
        return Response.error(RESP_ERR_UNSPEC);
    }

    private void guestError(String message) {
        guestError.accept(message);
    }

    // ---- §5.7.6.8 commands

    /** struct virtio_gpu_resp_display_info: 16 pmodes {rect r; le32 enabled; le32 flags}. */
    static Response displayInfo(GpuSpec spec, int scanouts) {
        ByteBuffer b = ByteBuffer.allocate(MAX_SCANOUTS * 24).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < scanouts; i++) {
            b.putInt(i * 24 + 8, spec.width()).putInt(i * 24 + 12, spec.height()).putInt(i * 24 + 16, 1);
        }
        return new Response(RESP_OK_DISPLAY_INFO, b.array());
    }

    /** struct virtio_gpu_resp_edid: le32 size, le32 padding, u8 edid[1024]. */
    static Response edid(GpuSpec spec, int scanouts, GetEdid g) {
        if (g.scanoutId() < 0 || g.scanoutId() >= scanouts) {
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        byte[] edid = Edid.of(spec.width(), spec.height(), g.scanoutId() + 1);
        ByteBuffer b = ByteBuffer.allocate(8 + EDID_BLOB_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, edid.length).put(8, edid);
        return new Response(RESP_OK_EDID, b.array());
    }

    private boolean idInUse(int id) {
        return id == 0 || resources.containsKey(id) || blobs.containsKey(id);
    }

    // ---- blobs (VIRTIO_GPU_F_RESOURCE_BLOB): guest memory only in 2D

    private Response createBlob(ResourceCreateBlob b) {
        if (idInUse(b.resourceId())) {
            guestError("create blob: resource id " + Integer.toUnsignedString(b.resourceId()) + (b.resourceId() == 0
                    ? " is reserved" : " is in use"));
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        if (b.blobMem() != BLOB_MEM_GUEST || (b.blobFlags() & BLOB_FLAG_USE_MAPPABLE) != 0) {
            guestError("create blob: blob_mem " + b.blobMem() + " flags 0x" + Integer.toHexString(b.blobFlags())
                    + ": a 2D device has guest memory blobs only, not mappable");
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        String problem = GuestBlob.problem(memory, b.size(), b.addresses(), b.lengths());
        if (problem != null) {
            guestError("create blob " + b.resourceId() + ": " + problem);
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        if (resourceCount() >= MAX_RESOURCES || backingEntries + b.addresses().length > MAX_BACKING_ENTRIES_TOTAL) {
            guestError("create blob: " + resourceCount() + " resources and " + backingEntries + " backing entries in use");
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        blobs.put(b.resourceId(), new GuestBlob(b.resourceId(), b.size(), b.addresses(), b.lengths()));
        backingEntries += b.addresses().length;
        return Response.ok();
    }

    /** §5.7.6.7: MAP_BLOB and UNMAP_BLOB need host-visible memory, which a 2D device does not have. */
    private Response mapBlob(int id) {
        guestError("map/unmap blob " + Integer.toUnsignedString(id) + ": a 2D device has no host-visible memory");
        return Response.error(idInUse(id) && id != 0 ? RESP_ERR_INVALID_PARAMETER : RESP_ERR_INVALID_RESOURCE_ID);
    }

    private Response setScanoutBlob(SetScanoutBlob s) {
        if (!validScanout(s.scanoutId())) {
            guestError("set scanout blob: no scanout " + s.scanoutId());
            return Response.error(RESP_ERR_INVALID_SCANOUT_ID);
        }
        Scanout scanout = scanouts.get(s.scanoutId());
        if (s.resourceId() == 0) {
            scanout.disable();
            return Response.ok();
        }
        GuestBlob blob = blobs.get(s.resourceId());
        if (blob == null) {
            guestError("set scanout blob: no blob " + Integer.toUnsignedString(s.resourceId()));
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        Response r = showBlob(blob, s, scanout, memory, spec, hostBytes(), guestError);
        resourceBytes = resourceBytes(); // the blob's copy may have changed size
        return r;
    }

    /**
     * Shows {@code s} of a guest blob on {@code scanout} (2D and virgl): checks the layout and the host bytes
     * its copy takes against {@code used} of the device's budget, then copies the rectangle from guest RAM.
     */
    static Response showBlob(GuestBlob blob, SetScanoutBlob s, Scanout scanout, GuestMemory memory, GpuSpec spec, long used,
            Consumer<String> guestError) {
        PixelFormat format = PixelFormat.of(s.format());
        String problem = format == null ? "unknown format " + s.format() : blob.layoutProblem(s, MAX_RESOURCE_SIDE);
        if (problem != null) {
            guestError.accept("set scanout blob " + blob.id + ": " + problem);
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        long copy = 4 * s.rect().width() * s.rect().height();
        if (used - blob.hostBytes() - scanout.hostBytes() + GuestBlob.hostBytes(s) + copy > spec.hostMemoryBytes()) {
            guestError.accept("set scanout blob " + blob.id + ": no host memory left for its copy");
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        if (s.rect().isEmpty()) {
            scanout.disable();
            return Response.ok();
        }
        try {
            blob.layout(s, format);
            blob.copy(memory, s.rect());
        } catch (GuestMemoryException e) {
            guestError.accept("set scanout blob " + blob.id + ": its pages are not guest RAM: " + e.getMessage());
            return Response.error(RESP_ERR_UNSPEC);
        } catch (OutOfMemoryError e) {
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        scanout.show(blob.shadow(), s.rect());
        return Response.ok();
    }

    /** RESOURCE_FLUSH of a guest blob: what each scanout showing it shows is read again from guest RAM. */
    static Response flushBlob(GuestBlob blob, Rect flushed, List<Scanout> scanouts, GuestMemory memory,
            Consumer<String> guestError) {
        Resource shadow = blob.shadow();
        if (shadow == null) {
            return Response.ok(); // never on a scanout
        }
        if (!flushed.within(shadow.width, shadow.height)) {
            guestError.accept("flush: " + flushed + " is not inside blob " + blob.id + "'s image");
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        for (Scanout s : scanouts) {
            Rect shown = s.resourceId() == blob.id ? s.rect() : null;
            Rect overlap = shown == null ? null : flushed.intersect(shown);
            if (overlap != null && !overlap.isEmpty()) {
                try {
                    blob.copy(memory, overlap);
                } catch (GuestMemoryException e) {
                    guestError.accept("flush: blob " + blob.id + "'s pages are not guest RAM: " + e.getMessage());
                    return Response.error(RESP_ERR_UNSPEC);
                }
                s.flush(shadow, overlap);
            }
        }
        return Response.ok();
    }

    /** Host bytes of resources and blob copies, counted afresh. */
    private long resourceBytes() {
        long bytes = 0;
        for (Resource r : resources.values()) {
            bytes += r.hostBytes();
        }
        for (GuestBlob b : blobs.values()) {
            bytes += b.hostBytes();
        }
        return bytes;
    }

    private Response create(ResourceCreate2d c) {
        if (idInUse(c.resourceId())) {
            guestError("create: resource id " + c.resourceId() + (c.resourceId() == 0 ? " is reserved" : " is in use"));
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        PixelFormat format = PixelFormat.of(c.format());
        if (format == null) {
            guestError("create: unknown format " + c.format());
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        long w = c.width() & 0xffffffffL;
        long h = c.height() & 0xffffffffL;
        if (w == 0 || h == 0 || w > MAX_RESOURCE_SIDE || h > MAX_RESOURCE_SIDE) {
            guestError("create: size " + w + "x" + h + " out of range");
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        long bytes = Resource.hostBytes(w, h);
        if (resourceCount() >= MAX_RESOURCES || hostBytes() + bytes > spec.hostMemoryBytes()) {
            guestError("create: " + w + "x" + h + " does not fit the device's " + (spec.hostMemoryBytes() >> 20)
                    + " MiB (" + hostBytes() + " bytes and " + resources.size() + " resources in use)");
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        Resource r;
        try {
            r = new Resource(c.resourceId(), format, (int) w, (int) h);
        } catch (OutOfMemoryError e) {
            hostError.accept("no host memory for a " + w + "x" + h + " resource: " + e.getMessage());
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        resources.put(r.id, r);
        resourceBytes += r.hostBytes();
        return Response.ok();
    }

    private Response unref(int id) {
        GuestBlob blob = blobs.remove(id);
        if (blob != null) {
            forget(id);
            backingEntries -= blob.entries();
            resourceBytes -= blob.hostBytes();
            blob.close();
            return Response.ok();
        }
        Resource r = resources.remove(id);
        if (r == null) {
            guestError("unref: no resource " + id);
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        forget(id);
        release(r);
        return Response.ok();
    }

    /** Takes resource {@code id} off the scanouts and cursors (it is going). */
    private void forget(int id) {
        for (Scanout s : scanouts) {
            if (s.resourceId() == id) {
                s.disable();
            }
        }
        for (int[] c : cursors) {
            if (c[0] == id) {
                c[0] = 0;
            }
        }
    }

    private void release(Resource r) {
        resourceBytes -= r.hostBytes();
        backingEntries -= r.backingEntries();
        r.close();
    }

    private Response setScanout(SetScanout s) {
        if (!validScanout(s.scanoutId())) {
            guestError("set scanout: no scanout " + s.scanoutId());
            return Response.error(RESP_ERR_INVALID_SCANOUT_ID);
        }
        Scanout scanout = scanouts.get(s.scanoutId());
        if (s.resourceId() == 0 || s.rect().isEmpty()) {
            scanout.disable(); // §5.7.6.8: resource 0 disables the scanout
            return Response.ok();
        }
        Resource r = resources.get(s.resourceId());
        if (r == null) {
            guestError("set scanout: no resource " + s.resourceId());
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        if (!s.rect().within(r.width, r.height)) {
            guestError("set scanout: " + s.rect() + " is not inside resource " + r.id + " (" + r.width + "x" + r.height + ")");
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        long copy = 4 * s.rect().width() * s.rect().height();
        if (hostBytes() - scanout.hostBytes() + copy > spec.hostMemoryBytes()) {
            guestError("set scanout: no host memory left for its copy");
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        scanout.show(r, s.rect());
        return Response.ok();
    }

    private Response flush(ResourceFlush f) {
        GuestBlob blob = blobs.get(f.resourceId());
        if (blob != null) {
            return flushBlob(blob, f.rect(), scanouts, memory, guestError);
        }
        Resource r = resources.get(f.resourceId());
        if (r == null) {
            guestError("flush: no resource " + f.resourceId());
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        if (!f.rect().within(r.width, r.height)) {
            guestError("flush: " + f.rect() + " is not inside resource " + r.id);
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        for (Scanout s : scanouts) {
            s.flush(r, f.rect());
        }
        return Response.ok();
    }

    /**
     * Copies {@code rect} from the backing: row {@code i} of the rectangle comes from backing offset
     * {@code offset + i * stride} (stride: the resource's width in bytes), as Linux computes
     * {@code offset = y * pitch + x * cpp} for its dumb buffers.
     */
    private Response transfer(TransferToHost2d t) {
        if (blobs.containsKey(t.resourceId())) {
            return Response.ok(); // §5.7.6.7: the host reads a guest blob in place (Linux transfers its dumb blobs anyway)
        }
        Resource r = resources.get(t.resourceId());
        if (r == null || !r.hasBacking()) {
            guestError("transfer: " + (r == null ? "no resource " : "no backing on resource ") + t.resourceId());
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        Rect rect = t.rect();
        if (!rect.within(r.width, r.height)) {
            guestError("transfer: " + rect + " is not inside resource " + r.id + " (" + r.width + "x" + r.height + ")");
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        if (rect.isEmpty()) {
            return Response.ok();
        }
        long rowBytes = rect.width() * PixelFormat.BYTES_PER_PIXEL;
        long offset = t.offset();
        // the last byte read: offset + (height - 1) * stride + rowBytes, with offset unsigned
        long span = (rect.height() - 1) * r.stride() + rowBytes;
        if (offset < 0 || offset > r.backingBytes() || span > r.backingBytes() - offset) {
            guestError("transfer: " + span + " bytes at backing offset " + Long.toUnsignedString(offset)
                    + " exceed resource " + r.id + "'s backing of " + r.backingBytes());
            return Response.error(RESP_ERR_INVALID_PARAMETER);
        }
        try {
            for (long i = 0; i < rect.height(); i++) {
                long to = (rect.y() + i) * r.stride() + rect.x() * PixelFormat.BYTES_PER_PIXEL;
                r.copyFromBacking(memory, offset + i * r.stride(), to, rowBytes);
            }
        } catch (GuestMemoryException e) {
            guestError("transfer: backing of resource " + r.id + " is not guest RAM: " + e.getMessage());
            return Response.error(RESP_ERR_UNSPEC);
        }
        return Response.ok();
    }

    private Response attach(AttachBacking a) {
        Resource r = resources.get(a.resourceId());
        if (r == null) {
            guestError("attach backing: no resource " + a.resourceId());
            return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
        }
        if (r.hasBacking()) {
            guestError("attach backing: resource " + r.id + " has backing already");
            return Response.error(RESP_ERR_UNSPEC);
        }
        if (backingEntries + a.addresses().length > MAX_BACKING_ENTRIES_TOTAL) {
            guestError("attach backing: more than " + MAX_BACKING_ENTRIES_TOTAL + " entries in all");
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
        for (int i = 0; i < a.addresses().length; i++) {
            long length = a.lengths()[i] & 0xffffffffL;
            if (length != 0 && !memory.contains(a.addresses()[i], length)) {
                guestError("attach backing: entry " + i + " (0x" + Long.toHexString(a.addresses()[i]) + ", " + length
                        + " bytes) is not guest RAM");
                return Response.error(RESP_ERR_UNSPEC);
            }
        }
        r.attach(a.addresses(), a.lengths());
        backingEntries += r.backingEntries();
        return Response.ok();
    }

    private Response detach(int id) {
        Resource r = resources.get(id);
        if (r == null || !r.hasBacking()) {
            guestError("detach backing: " + (r == null ? "no resource " : "no backing on resource ") + id);
            return Response.error(r == null ? RESP_ERR_INVALID_RESOURCE_ID : RESP_ERR_UNSPEC);
        }
        backingEntries -= r.backingEntries();
        r.detach();
        return Response.ok();
    }

    /** UPDATE_CURSOR sets the image (a resource, 0 hides it) and position; MOVE_CURSOR only the position. */
    private Response cursor(Cursor c) {
        if (!validScanout(c.scanoutId())) {
            guestError("cursor: no scanout " + c.scanoutId());
            return Response.error(RESP_ERR_INVALID_SCANOUT_ID);
        }
        int[] cur = cursors[c.scanoutId()];
        if (!c.move()) {
            if (c.resourceId() != 0 && !resources.containsKey(c.resourceId()) && !blobs.containsKey(c.resourceId())) {
                guestError("cursor: no resource " + c.resourceId());
                return Response.error(RESP_ERR_INVALID_RESOURCE_ID);
            }
            cur[0] = c.resourceId();
            cur[3] = c.hotX();
            cur[4] = c.hotY();
        }
        cur[1] = c.x();
        cur[2] = c.y();
        return Response.ok();
    }

    private boolean validScanout(int id) {
        return id >= 0 && id < scanouts.size();
    }

    /** Frees every resource and turns the scanouts off (reset, close). */
    @Override
    public void close() {
        for (Scanout s : scanouts) {
            s.disable();
        }
        for (Resource r : resources.values()) {
            release(r);
        }
        resources.clear();
        for (GuestBlob b : blobs.values()) {
            backingEntries -= b.entries();
            resourceBytes -= b.hostBytes();
            b.close();
        }
        blobs.clear();
    }
}
