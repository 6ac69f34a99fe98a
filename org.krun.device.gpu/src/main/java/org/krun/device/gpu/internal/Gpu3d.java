package org.krun.device.gpu.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.BiConsumer;
import java.util.function.Consumer;
import java.util.function.Supplier;

import org.krun.api.GpuSpec;
import org.krun.device.gpu.internal.GpuCommand.*;
import org.krun.device.gpu.internal.Gpu2d.Response;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.SharedMemory;
import org.krun.spi.virtio.SharedMemoryRegion;

/**
 * Executes the 2D and virgl command sets for one activation through virglrenderer (virtio 1.2 §5.7.6.8-9):
 * every resource, 2D ones included, lives in the renderer, as in QEMU's virtio-gpu-gl, so the guest's ids
 * are one namespace. Everything the guest says is checked here before it reaches virglrenderer: context and
 * resource ids (known, not reused, within caps), sizes and levels of resources, boxes of transfers within
 * their resource, backing ranges within guest RAM, command buffers within {@link GpuCommand#MAX_SUBMIT_BYTES}
 * and whole dwords; virglrenderer checks its own command stream and the iovec bounds of each transfer.
 *
 * <p>Threads: {@link #submit} is called on the VM's event loop and hands the chain to the renderer's
 * thread, where the request is decoded and run (so the requests waiting hold no memory of their own beyond
 * their chains, bounded by the queues); its response goes back through {@code done} at once, or, for a
 * request with VIRTIO_GPU_FLAG_FENCE, when virglrenderer signals the fence created after it. Scanouts are read back from
 * the renderer into host copies on set-scanout and flush. {@link #close} waits until the renderer thread has
 * dropped every context, resource and backing of this activation, so nothing of the guest's RAM is touched
 * after it returns.
 */
final class Gpu3d implements GpuEngine {

    /** The most contexts one device holds (Mesa makes one per GL context). */
    static final int MAX_CONTEXTS = 256;
    /**
     * The most Venus contexts one device holds (Mesa makes one per VkInstance): each is a worker process of
     * the render server with the host's Vulkan driver loaded.
     */
    static final int MAX_VENUS_CONTEXTS = 16;
    /** The largest side, depth and array size of a 3D resource, and its most mip levels and samples. */
    static final int MAX_SIDE = 16384;
    static final int MAX_DEPTH = 2048;
    static final int MAX_LEVELS = 15;
    static final int MAX_SAMPLES = 32;
    /** The host bytes counted per texel of a 3D resource: an estimate (virglrenderer allocates in GL). */
    static final int BYTES_PER_TEXEL = 4;
    /** The most blobs mapped into the host-visible region at once (each takes a hypervisor memory slot). */
    static final int MAX_MAPPED_BLOBS = 256;
    /** The blob_flags this device knows (VIRTIO_GPU_BLOB_FLAG_USE_*). */
    static final int BLOB_FLAGS = BLOB_FLAG_USE_MAPPABLE | BLOB_FLAG_USE_SHAREABLE | BLOB_FLAG_USE_CROSS_DEVICE;

    private final GpuSpec spec;
    private final List<Scanout> scanouts;
    private final GuestMemory memory;
    private final VirglRenderer renderer;
    private final Consumer<String> guestError;
    private final Consumer<String> hostError;
    /** The host-visible shared memory region host3d blobs are mapped into, or null when the VMM offers none. */
    private final SharedMemory hostVisible;
    // renderer thread only, from here on
    private final Map<Integer, Res> resources = new HashMap<>();
    private final Map<Integer, Set<Integer>> contexts = new HashMap<>();
    /** The contexts that speak the venus capset (a subset of {@link #contexts}). */
    private final Set<Integer> venusContexts = new HashSet<>();
    private final int[][] cursors;
    private long resourceBytes;
    private long backingEntries;
    private int mappedBlobs;
    private boolean closed;

    /** One resource of the renderer's: what the guest created it with, its backing, its host copy for scanouts. */
    private static final class Res {
        final int id;
        final int target;
        final int format;
        final int width;
        final int height;
        final int depth;
        final int arraySize;
        final int lastLevel;
        final long hostBytes;
        /** The iovecs given to virglrenderer for the backing, and what owns them; null while detached. */
        Arena backingArena;
        long backingBytes;
        int backingEntries;
        /** The host copy scanouts show, made on the first set-scanout. */
        Resource shadow;
        /** A blob resource (RESOURCE_CREATE_BLOB): its blob_mem, 0 for the others. */
        int blobMem;
        /** A guest-memory blob's pages and scanout copy; null for the others. */
        GuestBlob guestBlob;
        /** Where a host3d blob is mapped into the host-visible region; null while unmapped. */
        SharedMemory.Mapping mapping;

        Res(int id, int target, int format, int width, int height, int depth, int arraySize, int lastLevel, long hostBytes) {
            this.id = id;
            this.target = target;
            this.format = format;
            this.width = width;
            this.height = height;
            this.depth = depth;
            this.arraySize = arraySize;
            this.lastLevel = lastLevel;
            this.hostBytes = hostBytes;
        }
    }

    Gpu3d(GpuSpec spec, List<Scanout> scanouts, GuestMemory memory, VirglRenderer renderer, Consumer<String> guestError,
            Consumer<String> hostError) {
        this(spec, scanouts, memory, renderer, null, guestError, hostError);
    }

    /** With {@code hostVisible}, host3d blobs can be mapped into the guest (RESOURCE_MAP_BLOB). */
    Gpu3d(GpuSpec spec, List<Scanout> scanouts, GuestMemory memory, VirglRenderer renderer, SharedMemory hostVisible,
            Consumer<String> guestError, Consumer<String> hostError) {
        this.hostVisible = hostVisible;
        this.spec = spec;
        this.scanouts = scanouts;
        this.memory = memory;
        this.renderer = renderer;
        this.guestError = guestError;
        this.hostError = hostError;
        this.cursors = new int[scanouts.size()][5];
    }

    /**
     * Reads a request with {@code read} and runs it, both on the renderer thread; {@code done} gets the
     * request's header and its response there, at once or, for a fenced request that succeeded, when
     * virglrenderer signals the fence. Nothing runs, and nothing is called back, after close.
     */
    void submit(Supplier<GpuCommand.Request> read, BiConsumer<GpuCommand.Header, Response> done) {
        renderer.execute(() -> {
            if (closed) {
                return;
            }
            GpuCommand.Request request = read.get();
            GpuCommand.Header header = request.header();
            Response r = execute(header, request.command());
            Runnable answer = () -> {
                if (!closed) {
                    done.accept(header, r);
                }
            };
            if ((header.flags() & FLAG_FENCE) != 0 && r.type() < RESP_ERR_UNSPEC && fence(header, answer)) {
                return;
            }
            done.accept(header, r);
        });
    }

    /**
     * A fence after the request (renderer thread): on the context's ring when the request names one
     * (VIRTIO_GPU_FLAG_INFO_RING_IDX, a context of this device), else on the global timeline.
     */
    private boolean fence(GpuCommand.Header header, Runnable answer) {
        if ((header.flags() & FLAG_INFO_RING_IDX) != 0 && contexts.containsKey(header.ctxId())) {
            return renderer.contextFence(header.ctxId(), header.ringIdx(), answer);
        }
        return renderer.fence(answer);
    }

    /** Executes one command (renderer thread). */
    Response execute(GpuCommand.Header h, GpuCommand command) {
        try {
            return switch (command) {
                case GetDisplayInfo g -> Gpu2d.displayInfo(spec, scanouts.size());
                case GetEdid g -> Gpu2d.edid(spec, scanouts.size(), g);
                case GetCapsetInfo g -> capsetInfo(g.index());
                case GetCapset g -> capset(g);
                case CtxCreate c -> ctxCreate(h.ctxId(), c);
                case CtxDestroy c -> ctxDestroy(h.ctxId());
                case CtxResource c -> ctxResource(h.ctxId(), c);
                case ResourceCreate2d c -> create2d(c);
                case ResourceCreate3d c -> create3d(c);
                case ResourceUnref u -> unref(u.resourceId());
                case AttachBacking a -> attach(a);
                case DetachBacking d -> detach(d.resourceId());
                case TransferToHost2d t -> transfer2d(t);
                case Transfer3d t -> transfer3d(h.ctxId(), t);
                case Submit3d s -> submit3d(h.ctxId(), s);
                case SetScanout s -> setScanout(s);
                case ResourceFlush f -> flush(f);
                case Cursor c -> cursor(c);
                case ResourceCreateBlob b -> createBlob(h.ctxId(), b);
                case SetScanoutBlob s -> setScanoutBlob(s);
                case MapBlob m -> mapBlob(m);
                case UnmapBlob u -> unmapBlob(u.resourceId());
                case Unsupported u -> error(RESP_ERR_UNSPEC, "command 0x" + Integer.toHexString(u.type()) + " is not offered");
                case Malformed m -> error(RESP_ERR_UNSPEC, m.reason());
            };
        } catch (OutOfMemoryError e) {
            hostError.accept("no host memory for command " + command.getClass().getSimpleName() + ": " + e.getMessage());
            return Response.error(RESP_ERR_OUT_OF_MEMORY);
        }
    }

    private Response error(int type, String message) {
        guestError.accept(message);
        return Response.error(type);
    }

    // ---- capsets

    /** The capsets a virgl device offers, by index: virgl and virgl2 (CONFIG_NUM_CAPSETS of them). */
    static final int[] CAPSETS = {CAPSET_VIRGL, CAPSET_VIRGL2};
    /** The capsets a Venus device offers: virgl's and venus. */
    static final int[] CAPSETS_VENUS = {CAPSET_VIRGL, CAPSET_VIRGL2, CAPSET_VENUS};

    /** The capsets of a device whose renderer runs Venus or not. */
    static int[] capsets(boolean venus) {
        return venus ? CAPSETS_VENUS : CAPSETS;
    }

    private boolean offered(int capset) {
        for (int c : capsets(renderer.venus())) {
            if (c == capset) {
                return true;
            }
        }
        return false;
    }

    /** struct virtio_gpu_resp_capset_info: le32 capset_id, capset_max_version, capset_max_size, padding. */
    private Response capsetInfo(int index) {
        int[] capsets = capsets(renderer.venus());
        if (index < 0 || index >= capsets.length) {
            return error(RESP_ERR_INVALID_PARAMETER, "capset info: no capset " + Integer.toUnsignedString(index));
        }
        int[] vs = capsetVersionAndSize(capsets[index]);
        ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, capsets[index]).putInt(4, vs[0]).putInt(8, vs[1]);
        return new Response(RESP_OK_CAPSET_INFO, b.array());
    }

    /** struct virtio_gpu_resp_capset: u8 capset_data[], as long as the capset's max size. */
    private Response capset(GetCapset g) {
        if (!offered(g.capsetId())) {
            return error(RESP_ERR_INVALID_PARAMETER, "capset: no capset " + Integer.toUnsignedString(g.capsetId()));
        }
        int[] vs = capsetVersionAndSize(g.capsetId());
        if (g.version() < 0 || g.version() > vs[0] || vs[1] <= 0 || vs[1] > 1 << 16) {
            return error(RESP_ERR_INVALID_PARAMETER, "capset " + g.capsetId() + ": no version " + g.version());
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment caps = arena.allocate(vs[1], 8);
            Virgl.FILL_CAPS.invokeExact(g.capsetId(), g.version(), caps);
            return new Response(RESP_OK_CAPSET, caps.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    /** virgl_renderer_get_cap_set: {max version, max size}. */
    static int[] capsetVersionAndSize(int capset) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment v = arena.allocate(JAVA_INT);
            MemorySegment s = arena.allocate(JAVA_INT);
            Virgl.GET_CAP_SET.invokeExact(capset, v, s);
            return new int[] {v.get(JAVA_INT, 0), s.get(JAVA_INT, 0)};
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    // ---- contexts

    private Response ctxCreate(int ctx, CtxCreate c) {
        if (ctx == 0 || contexts.containsKey(ctx)) {
            return error(RESP_ERR_INVALID_CONTEXT_ID, "context create: id " + Integer.toUnsignedString(ctx)
                    + (ctx == 0 ? " is reserved" : " is in use"));
        }
        // context_init: the capset the context speaks in its low byte (VIRTIO_GPU_F_CONTEXT_INIT, Venus devices
        // only), 0 for virgl's default; no other bits are defined
        int capset = c.contextInit() & Virgl.CONTEXT_FLAG_CAPSET_ID_MASK;
        if (c.contextInit() != 0 && (!renderer.venus() || capset != c.contextInit() || !offered(capset))) {
            return error(RESP_ERR_INVALID_PARAMETER, "context create: context_init 0x" + Integer.toHexString(c.contextInit())
                    + (renderer.venus() ? " names no capset of this device" : " without VIRTIO_GPU_F_CONTEXT_INIT"));
        }
        if (contexts.size() >= MAX_CONTEXTS || capset == CAPSET_VENUS && venusContexts.size() >= MAX_VENUS_CONTEXTS) {
            return error(RESP_ERR_OUT_OF_MEMORY, "context create: " + (capset == CAPSET_VENUS ? MAX_VENUS_CONTEXTS
                    + " Venus" : MAX_CONTEXTS) + " contexts in use");
        }
        int r;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment name = arena.allocate(c.name().length + 1L);
            name.copyFrom(MemorySegment.ofArray(c.name()));
            r = capset == 0 ? (int) Virgl.CONTEXT_CREATE.invokeExact(ctx, c.name().length, name)
                    : (int) Virgl.CONTEXT_CREATE_WITH_FLAGS.invokeExact(ctx, capset, c.name().length, name);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (r != 0) {
            return error(RESP_ERR_UNSPEC, "context create: virglrenderer refused context " + Integer.toUnsignedString(ctx)
                    + " (" + r + ")");
        }
        contexts.put(ctx, new HashSet<>());
        if (capset == CAPSET_VENUS) {
            venusContexts.add(ctx);
        }
        return Response.ok();
    }

    private Response ctxDestroy(int ctx) {
        if (contexts.remove(ctx) == null) {
            return error(RESP_ERR_INVALID_CONTEXT_ID, "context destroy: no context " + Integer.toUnsignedString(ctx));
        }
        venusContexts.remove(ctx);
        destroyContext(ctx);
        renderer.contextGone(ctx); // its ring fences: the work they waited for went with it
        return Response.ok();
    }

    private static void destroyContext(int ctx) {
        try {
            Virgl.CONTEXT_DESTROY.invokeExact(ctx);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    private Response ctxResource(int ctx, CtxResource c) {
        Set<Integer> attached = contexts.get(ctx);
        if (attached == null) {
            return error(RESP_ERR_INVALID_CONTEXT_ID, "context attach/detach: no context " + Integer.toUnsignedString(ctx));
        }
        if (!resources.containsKey(c.resourceId())) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "context attach/detach: no resource " + Integer.toUnsignedString(c.resourceId()));
        }
        try {
            if (c.attach()) {
                if (attached.add(c.resourceId())) {
                    Virgl.CTX_ATTACH_RESOURCE.invokeExact(ctx, c.resourceId());
                }
            } else if (attached.remove(c.resourceId())) {
                Virgl.CTX_DETACH_RESOURCE.invokeExact(ctx, c.resourceId());
            }
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        return Response.ok();
    }

    // ---- resources

    private Response create2d(ResourceCreate2d c) {
        if (PixelFormat.of(c.format()) == null) {
            return error(RESP_ERR_INVALID_PARAMETER, "create: unknown format " + c.format());
        }
        return create(c.resourceId(), Virgl.TARGET_TEXTURE_2D, c.format(), Virgl.BIND_RENDER_TARGET, c.width(), c.height(),
                1, 1, 0, 0, Virgl.FLAG_Y_0_TOP);
    }

    private Response create3d(ResourceCreate3d c) {
        if (c.target() < Virgl.TARGET_BUFFER || c.target() > Virgl.TARGET_TEXTURE_CUBE_ARRAY) {
            return error(RESP_ERR_INVALID_PARAMETER, "create 3d: unknown target " + c.target());
        }
        return create(c.resourceId(), c.target(), c.format(), c.bind(), c.width(), c.height(), c.depth(), c.arraySize(),
                c.lastLevel(), c.samples(), c.flags());
    }

    private Response create(int id, int target, int format, int bind, int width, int height, int depth, int arraySize,
            int lastLevel, int samples, int flags) {
        if (id == 0 || resources.containsKey(id)) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "create: resource id " + Integer.toUnsignedString(id)
                    + (id == 0 ? " is reserved" : " is in use"));
        }
        // unsigned, as the guest sends them; a buffer's width is its size in bytes
        long w = width & 0xffffffffL;
        long h = height & 0xffffffffL;
        long d = depth & 0xffffffffL;
        long layers = arraySize & 0xffffffffL;
        long maxWidth = target == Virgl.TARGET_BUFFER ? spec.hostMemoryBytes() : MAX_SIDE;
        if (w == 0 || h == 0 || d == 0 || layers == 0 || w > maxWidth || h > MAX_SIDE || d > MAX_DEPTH || layers > MAX_DEPTH
                || (lastLevel & 0xffffffffL) >= MAX_LEVELS || (samples & 0xffffffffL) > MAX_SAMPLES) {
            return error(RESP_ERR_INVALID_PARAMETER, "create: " + w + "x" + h + "x" + d + ", " + layers + " layers, "
                    + Integer.toUnsignedString(lastLevel) + " levels, " + Integer.toUnsignedString(samples)
                    + " samples: out of range");
        }
        long texels = target == Virgl.TARGET_BUFFER ? w : w * h * d * layers * BYTES_PER_TEXEL * Math.max(1, samples);
        long bytes = lastLevel > 0 ? texels + texels / 3 : texels; // a mip chain adds a third
        if (bytes > spec.hostMemoryBytes() || resources.size() >= Gpu2d.MAX_RESOURCES
                || hostBytes() + bytes > spec.hostMemoryBytes()) {
            return error(RESP_ERR_OUT_OF_MEMORY, "create: " + w + "x" + h + "x" + d + " does not fit the device's "
                    + (spec.hostMemoryBytes() >> 20) + " MiB (" + hostBytes() + " bytes and " + resources.size()
                    + " resources in use)");
        }
        int r;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment args = arena.allocate(Virgl.CREATE_ARGS);
            int[] values = {id, target, format, bind, width, height, depth, arraySize, lastLevel, samples, flags};
            for (int i = 0; i < values.length; i++) {
                args.set(JAVA_INT, 4L * i, values[i]);
            }
            r = (int) Virgl.RESOURCE_CREATE.invokeExact(args, MemorySegment.NULL, 0);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (r != 0) {
            return error(RESP_ERR_INVALID_PARAMETER, "create: virglrenderer refused resource " + Integer.toUnsignedString(id)
                    + " (format " + format + ", target " + target + ", bind 0x" + Integer.toHexString(bind) + "): " + r);
        }
        resources.put(id, new Res(id, target, format, width, height, depth, arraySize, lastLevel, bytes));
        resourceBytes += bytes;
        return Response.ok();
    }

    /** Host bytes the guest's resources (estimated) and the scanouts' copies take now. */
    long hostBytes() {
        return resourceBytes + Scanout.hostBytes(scanouts);
    }

    int resourceCount() {
        return resources.size();
    }

    int contextCount() {
        return contexts.size();
    }

    private Response unref(int id) {
        Res r = resources.remove(id);
        if (r == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "unref: no resource " + Integer.toUnsignedString(id));
        }
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
        for (Map.Entry<Integer, Set<Integer>> c : contexts.entrySet()) {
            if (c.getValue().remove(id)) {
                ctxDetach(c.getKey(), id);
            }
        }
        release(r);
        return Response.ok();
    }

    private static void ctxDetach(int ctx, int id) {
        try {
            Virgl.CTX_DETACH_RESOURCE.invokeExact(ctx, id);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    /** Drops the resource from the renderer (its backing first) and frees what the device held for it. */
    private void release(Res r) {
        if (r.mapping != null) {
            unmap(r);
        }
        if (r.guestBlob != null) {
            resourceBytes -= r.guestBlob.hostBytes();
            r.guestBlob.close();
        }
        detachBacking(r);
        try {
            Virgl.RESOURCE_UNREF.invokeExact(r.id);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        resourceBytes -= r.hostBytes;
        if (r.shadow != null) {
            resourceBytes -= r.shadow.hostBytes();
            r.shadow.close();
            r.shadow = null;
        }
    }

    private Response attach(AttachBacking a) {
        Res r = resources.get(a.resourceId());
        if (r == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "attach backing: no resource " + Integer.toUnsignedString(a.resourceId()));
        }
        if (r.backingArena != null) {
            return error(RESP_ERR_UNSPEC, "attach backing: resource " + r.id + " has backing already");
        }
        if (backingEntries + a.addresses().length > Gpu2d.MAX_BACKING_ENTRIES_TOTAL) {
            return error(RESP_ERR_OUT_OF_MEMORY, "attach backing: more than " + Gpu2d.MAX_BACKING_ENTRIES_TOTAL + " entries in all");
        }
        List<MemorySegment> pieces = new ArrayList<>();
        long total = 0;
        for (int i = 0; i < a.addresses().length; i++) {
            long length = a.lengths()[i] & 0xffffffffL;
            if (length == 0) {
                continue;
            }
            if (!memory.contains(a.addresses()[i], length)) {
                return error(RESP_ERR_UNSPEC, "attach backing: entry " + i + " (0x" + Long.toHexString(a.addresses()[i]) + ", "
                        + length + " bytes) is not guest RAM");
            }
            pieces.addAll(memory.slices(a.addresses()[i], length));
            total += length;
        }
        // virglrenderer keeps the iovec array until detach: it lives in the resource's own arena
        Arena arena = Arena.ofShared();
        MemorySegment iov = arena.allocate(Virgl.IOVEC, Math.max(1, pieces.size()));
        for (int i = 0; i < pieces.size(); i++) {
            iov.set(ADDRESS, i * Virgl.IOVEC.byteSize(), pieces.get(i));
            iov.set(JAVA_LONG, i * Virgl.IOVEC.byteSize() + 8, pieces.get(i).byteSize());
        }
        int result;
        try {
            result = (int) Virgl.ATTACH_IOV.invokeExact(r.id, iov, pieces.size());
        } catch (Throwable t) {
            arena.close();
            throw Virgl.unchecked(t);
        }
        if (result != 0) {
            arena.close();
            return error(RESP_ERR_UNSPEC, "attach backing: virglrenderer refused resource " + r.id + "'s backing: " + result);
        }
        r.backingArena = arena;
        r.backingBytes = total;
        r.backingEntries = a.addresses().length;
        backingEntries += r.backingEntries;
        return Response.ok();
    }

    private Response detach(int id) {
        Res r = resources.get(id);
        if (r == null || r.backingArena == null) {
            return error(r == null ? RESP_ERR_INVALID_RESOURCE_ID : RESP_ERR_UNSPEC, "detach backing: "
                    + (r == null ? "no resource " : "no backing on resource ") + Integer.toUnsignedString(id));
        }
        detachBacking(r);
        return Response.ok();
    }

    private void detachBacking(Res r) {
        if (r.backingArena == null) {
            return;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment iov = arena.allocate(ADDRESS);
            MemorySegment count = arena.allocate(JAVA_INT);
            Virgl.DETACH_IOV.invokeExact(r.id, iov, count);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        r.backingArena.close();
        r.backingArena = null;
        r.backingBytes = 0;
        backingEntries -= r.backingEntries;
        r.backingEntries = 0;
    }

    // ---- blobs (VIRTIO_GPU_F_RESOURCE_BLOB)

    /**
     * RESOURCE_CREATE_BLOB: a guest blob's pages are checked against guest RAM and given to virglrenderer as
     * iovecs (contexts may use it); a host3d blob is the one context {@code ctx}'s command stream made with
     * its blob_id (virglrenderer finds it), counted at its size against the device's host memory.
     */
    private Response createBlob(int ctx, ResourceCreateBlob b) {
        int id = b.resourceId();
        if (id == 0 || resources.containsKey(id)) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "create blob: resource id " + Integer.toUnsignedString(id)
                    + (id == 0 ? " is reserved" : " is in use"));
        }
        boolean guestPages = b.blobMem() == BLOB_MEM_GUEST || b.blobMem() == BLOB_MEM_HOST3D_GUEST;
        if ((b.blobMem() != BLOB_MEM_GUEST && b.blobMem() != BLOB_MEM_HOST3D && b.blobMem() != BLOB_MEM_HOST3D_GUEST)
                || (b.blobFlags() & ~BLOB_FLAGS) != 0 || (!guestPages && b.addresses().length > 0)) {
            return error(RESP_ERR_INVALID_PARAMETER, "create blob " + Integer.toUnsignedString(id) + ": blob_mem " + b.blobMem()
                    + ", flags 0x" + Integer.toHexString(b.blobFlags()) + ", " + b.addresses().length + " entries");
        }
        if (b.blobMem() != BLOB_MEM_GUEST && !contexts.containsKey(ctx)) {
            return error(RESP_ERR_INVALID_CONTEXT_ID, "create blob: no context " + Integer.toUnsignedString(ctx));
        }
        long hostBytes = guestPages ? 0 : b.size();
        if (b.size() <= 0 || (guestPages && b.size() > GuestBlob.MAX_SIZE) || resources.size() >= Gpu2d.MAX_RESOURCES
                || hostBytes > spec.hostMemoryBytes() - hostBytes()
                || backingEntries + b.addresses().length > Gpu2d.MAX_BACKING_ENTRIES_TOTAL) {
            return error(b.size() <= 0 ? RESP_ERR_INVALID_PARAMETER : RESP_ERR_OUT_OF_MEMORY, "create blob "
                    + Integer.toUnsignedString(id) + " of " + Long.toUnsignedString(b.size()) + " bytes: does not fit ("
                    + hostBytes() + " host bytes and " + resources.size() + " resources in use)");
        }
        List<MemorySegment> pieces = new ArrayList<>();
        if (guestPages) {
            String problem = GuestBlob.problem(memory, b.size(), b.addresses(), b.lengths());
            if (problem != null) {
                return error(RESP_ERR_INVALID_PARAMETER, "create blob " + Integer.toUnsignedString(id) + ": " + problem);
            }
            for (int i = 0; i < b.addresses().length; i++) {
                long length = b.lengths()[i] & 0xffffffffL;
                if (length != 0) {
                    pieces.addAll(memory.slices(b.addresses()[i], length));
                }
            }
        }
        // virglrenderer keeps the iovec array for the resource's life: it lives in the resource's own arena
        Arena arena = Arena.ofShared();
        int result;
        try {
            MemorySegment iov = arena.allocate(Virgl.IOVEC, Math.max(1, pieces.size()));
            for (int i = 0; i < pieces.size(); i++) {
                iov.set(ADDRESS, i * Virgl.IOVEC.byteSize(), pieces.get(i));
                iov.set(JAVA_LONG, i * Virgl.IOVEC.byteSize() + 8, pieces.get(i).byteSize());
            }
            MemorySegment args = arena.allocate(Virgl.CREATE_BLOB_ARGS);
            args.set(JAVA_INT, 0, id);
            args.set(JAVA_INT, 4, ctx);
            args.set(JAVA_INT, 8, b.blobMem());
            args.set(JAVA_INT, 12, b.blobFlags());
            args.set(JAVA_LONG, 16, b.blobId());
            args.set(JAVA_LONG, 24, b.size());
            args.set(ADDRESS, 32, pieces.isEmpty() ? MemorySegment.NULL : iov);
            args.set(JAVA_INT, 40, pieces.size());
            result = (int) Virgl.RESOURCE_CREATE_BLOB.invokeExact(args);
        } catch (Throwable t) {
            arena.close();
            throw Virgl.unchecked(t);
        }
        if (result != 0) {
            arena.close();
            return error(RESP_ERR_INVALID_PARAMETER, "create blob: virglrenderer refused blob " + Integer.toUnsignedString(id)
                    + " (blob_mem " + b.blobMem() + ", blob_id " + Long.toUnsignedString(b.blobId()) + ", "
                    + Long.toUnsignedString(b.size()) + " bytes): " + result);
        }
        Res r = guestPages && b.blobMem() == BLOB_MEM_GUEST ? new Res(id, -1, 0, 0, 0, 0, 0, 0, hostBytes) : host3d(id, hostBytes);
        r.blobMem = b.blobMem();
        if (pieces.isEmpty()) {
            arena.close();
        } else {
            r.backingArena = arena;
            r.backingBytes = b.size();
            r.backingEntries = b.addresses().length;
            backingEntries += r.backingEntries;
        }
        if (b.blobMem() == BLOB_MEM_GUEST) {
            r.guestBlob = new GuestBlob(id, b.size(), b.addresses(), b.lengths());
        }
        resources.put(id, r);
        resourceBytes += hostBytes;
        return Response.ok();
    }

    /**
     * A host3d blob as virglrenderer made it from the context's pipe resource: a 2D image of a format scanouts
     * know (Mesa's textures and framebuffers) can be shown and read back like a 3D resource; anything else
     * (buffers) only mapped.
     */
    private static Res host3d(int id, long hostBytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment info = arena.allocate(Virgl.RESOURCE_INFO_SIZE, 4);
            int result = (int) Virgl.RESOURCE_GET_INFO.invokeExact(id, info);
            int format = info.get(JAVA_INT, 4);
            int width = info.get(JAVA_INT, 8);
            int height = info.get(JAVA_INT, 12);
            int depth = info.get(JAVA_INT, 16);
            if (result == 0 && PixelFormat.of(format) != null && width > 0 && width <= MAX_SIDE && height > 0
                    && height <= MAX_SIDE && depth <= 1) {
                return new Res(id, Virgl.TARGET_TEXTURE_2D, format, width, height, 1, 1, 0, hostBytes);
            }
            return new Res(id, -1, 0, 0, 0, 0, 0, 0, hostBytes);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    /**
     * RESOURCE_MAP_BLOB: virglrenderer maps the blob's host memory here, and that memory goes into the
     * host-visible region at the guest's offset (whole pages, inside the region, not over another mapping);
     * answered with the blob's map_info (struct virtio_gpu_resp_map_info: le32 map_info, le32 padding).
     */
    private Response mapBlob(MapBlob m) {
        Res r = resources.get(m.resourceId());
        if (r == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "map blob: no resource " + Integer.toUnsignedString(m.resourceId()));
        }
        if (r.blobMem != BLOB_MEM_HOST3D && r.blobMem != BLOB_MEM_HOST3D_GUEST || hostVisible == null) {
            return error(RESP_ERR_INVALID_PARAMETER, "map blob: resource " + r.id + (hostVisible == null
                    ? ": the device has no host-visible memory" : " is not a host3d blob"));
        }
        if (r.mapping != null) {
            return error(RESP_ERR_INVALID_PARAMETER, "map blob: resource " + r.id + " is mapped already at offset 0x"
                    + Long.toHexString(r.mapping.offset()));
        }
        if (mappedBlobs >= MAX_MAPPED_BLOBS) {
            return error(RESP_ERR_OUT_OF_MEMORY, "map blob: " + MAX_MAPPED_BLOBS + " blobs are mapped");
        }
        long offset = m.offset();
        if (offset < 0 || offset >= hostVisible.size() || offset % SharedMemoryRegion.PAGE_SIZE != 0) {
            return error(RESP_ERR_INVALID_PARAMETER, "map blob " + r.id + ": offset 0x" + Long.toHexString(offset)
                    + " is not a page of the host-visible region (" + hostVisible.size() + " bytes)");
        }
        MemorySegment host;
        int info;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment pointer = arena.allocate(ADDRESS);
            MemorySegment size = arena.allocate(JAVA_LONG);
            int result = (int) Virgl.RESOURCE_MAP.invokeExact(r.id, pointer, size);
            if (result != 0) {
                return error(RESP_ERR_UNSPEC, "map blob: virglrenderer cannot map resource " + r.id + ": " + result);
            }
            host = pointer.get(ADDRESS, 0).reinterpret(size.get(JAVA_LONG, 0));
            MemorySegment mapInfo = arena.allocate(JAVA_INT);
            info = (int) Virgl.RESOURCE_GET_MAP_INFO.invokeExact(r.id, mapInfo) == 0 ? mapInfo.get(JAVA_INT, 0) & MAP_CACHE_MASK
                    : Virgl.MAP_CACHE_CACHED;
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        try {
            r.mapping = hostVisible.map(offset, host);
        } catch (IllegalArgumentException | IllegalStateException | UnsupportedOperationException e) {
            virglUnmap(r.id);
            // out of range or overlapping is the guest's doing; an unaligned map from the renderer or no slot left is not
            return error(e instanceof IllegalArgumentException && host.address() % SharedMemoryRegion.PAGE_SIZE == 0
                    ? RESP_ERR_INVALID_PARAMETER : RESP_ERR_OUT_OF_MEMORY, "map blob " + r.id + ": " + e.getMessage());
        }
        mappedBlobs++;
        ByteBuffer b = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(0, info);
        return new Response(RESP_OK_MAP_INFO, b.array());
    }

    private Response unmapBlob(int id) {
        Res r = resources.get(id);
        if (r == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "unmap blob: no resource " + Integer.toUnsignedString(id));
        }
        if (r.mapping == null) {
            return error(RESP_ERR_INVALID_PARAMETER, "unmap blob: resource " + r.id + " is not mapped");
        }
        unmap(r);
        return Response.ok();
    }

    /** Takes the blob out of the guest first, then lets virglrenderer unmap its memory. */
    private void unmap(Res r) {
        try {
            r.mapping.close();
        } finally {
            r.mapping = null;
            mappedBlobs--;
        }
        virglUnmap(r.id);
    }

    private static void virglUnmap(int id) {
        try {
            int ignored = (int) Virgl.RESOURCE_UNMAP.invokeExact(id);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    /** Blobs mapped into the host-visible region now (tests). */
    int mappedBlobs() {
        return mappedBlobs;
    }

    private Response setScanoutBlob(SetScanoutBlob s) {
        if (s.scanoutId() < 0 || s.scanoutId() >= scanouts.size()) {
            return error(RESP_ERR_INVALID_SCANOUT_ID, "set scanout blob: no scanout " + s.scanoutId());
        }
        Scanout scanout = scanouts.get(s.scanoutId());
        if (s.resourceId() == 0) {
            scanout.disable();
            return Response.ok();
        }
        Res r = resources.get(s.resourceId());
        if (r != null && r.guestBlob == null && r.target == Virgl.TARGET_TEXTURE_2D) {
            // a host3d image (Linux shows GL framebuffers that are blobs this way): read back as SET_SCANOUT does
            return setScanout(new SetScanout(s.rect(), s.scanoutId(), s.resourceId()));
        }
        if (r == null || r.guestBlob == null) {
            return error(r == null ? RESP_ERR_INVALID_RESOURCE_ID : RESP_ERR_INVALID_PARAMETER, "set scanout blob: "
                    + (r == null ? "no resource " : "only guest blobs are shown, not resource ") + Integer.toUnsignedString(s.resourceId()));
        }
        long before = r.guestBlob.hostBytes();
        Response out = Gpu2d.showBlob(r.guestBlob, s, scanout, memory, spec, hostBytes(), guestError);
        resourceBytes += r.guestBlob.hostBytes() - before;
        return out;
    }

    // ---- transfers and submission

    private Response transfer2d(TransferToHost2d t) {
        Res r = resources.get(t.resourceId());
        if (r != null && r.guestBlob != null) {
            return Response.ok(); // the host reads a guest blob in place (Linux transfers its dumb blobs anyway)
        }
        if (r == null || r.backingArena == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "transfer: " + (r == null ? "no resource " : "no backing on resource ")
                    + Integer.toUnsignedString(t.resourceId()));
        }
        if (r.target != Virgl.TARGET_TEXTURE_2D || !t.rect().within(r.width & 0xffffffffL, r.height & 0xffffffffL)) {
            return error(RESP_ERR_INVALID_PARAMETER, "transfer: " + t.rect() + " is not inside 2D resource " + r.id);
        }
        if (t.offset() < 0 || t.offset() >= r.backingBytes) {
            return error(RESP_ERR_INVALID_PARAMETER, "transfer: offset " + Long.toUnsignedString(t.offset())
                    + " is beyond resource " + r.id + "'s backing of " + r.backingBytes);
        }
        Rect rect = t.rect();
        return transfer(true, r, 0, 0, 0, 0, (int) rect.x(), (int) rect.y(), 0, (int) rect.width(), (int) rect.height(), 1,
                t.offset());
    }

    private Response transfer3d(int ctx, Transfer3d t) {
        if (ctx != 0 && !contexts.containsKey(ctx)) {
            return error(RESP_ERR_INVALID_CONTEXT_ID, "transfer 3d: no context " + Integer.toUnsignedString(ctx));
        }
        Res r = resources.get(t.resourceId());
        if (r != null && r.blobMem != 0) {
            // a blob's layout is virglrenderer's (a pipe resource of the context's): it checks the box and iovecs
            GpuCommand.Box b = t.box();
            return transfer(t.toHost(), r, ctx, t.level(), t.stride(), t.layerStride(), b.x(), b.y(), b.z(), b.w(), b.h(), b.d(),
                    t.offset());
        }
        if (r == null || r.backingArena == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "transfer 3d: " + (r == null ? "no resource " : "no backing on resource ")
                    + Integer.toUnsignedString(t.resourceId()));
        }
        GpuCommand.Box b = t.box();
        long level = t.level() & 0xffffffffL;
        if (level > r.lastLevel || !inside(b.x(), b.w(), levelSize(r.width, level, r.target == Virgl.TARGET_BUFFER))
                || !inside(b.y(), b.h(), r.target == Virgl.TARGET_TEXTURE_1D_ARRAY ? r.arraySize & 0xffffffffL
                        : levelSize(r.height, level, false))
                || !inside(b.z(), b.d(), r.target == Virgl.TARGET_TEXTURE_3D ? levelSize(r.depth, level, false)
                        : Math.max(r.arraySize & 0xffffffffL, 6))) {
            return error(RESP_ERR_INVALID_PARAMETER, "transfer 3d: " + b + " at level " + level + " is not inside resource "
                    + r.id);
        }
        if (t.offset() < 0 || t.offset() >= r.backingBytes) {
            return error(RESP_ERR_INVALID_PARAMETER, "transfer 3d: offset " + Long.toUnsignedString(t.offset())
                    + " is beyond resource " + r.id + "'s backing of " + r.backingBytes);
        }
        // virglrenderer checks that the box at this stride fits the backing from the offset (check_iov_bounds)
        return transfer(t.toHost(), r, ctx, (int) level, t.stride(), t.layerStride(), b.x(), b.y(), b.z(), b.w(), b.h(), b.d(),
                t.offset());
    }

    private static long levelSize(int size, long level, boolean buffer) {
        long s = size & 0xffffffffL;
        return buffer ? s : Math.max(1, s >> level);
    }

    /** Whether [at, at + length) lies in [0, size), all unsigned. */
    private static boolean inside(int at, int length, long size) {
        long a = at & 0xffffffffL;
        long l = length & 0xffffffffL;
        return a <= size && l <= size - a;
    }

    private Response transfer(boolean toHost, Res r, int ctx, int level, int stride, int layerStride, int x, int y, int z,
            int w, int h, int d, long offset) {
        int result;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment box = box(arena, x, y, z, w, h, d);
            result = toHost
                    ? (int) Virgl.TRANSFER_WRITE_IOV.invokeExact(r.id, ctx, level, stride, layerStride, box, offset,
                            MemorySegment.NULL, 0)
                    : (int) Virgl.TRANSFER_READ_IOV.invokeExact(r.id, ctx, level, stride, layerStride, box, offset,
                            MemorySegment.NULL, 0);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (result != 0) {
            return error(RESP_ERR_INVALID_PARAMETER, "transfer " + (toHost ? "to" : "from") + " host: virglrenderer refused"
                    + " resource " + r.id + ": " + result);
        }
        return Response.ok();
    }

    private static MemorySegment box(Arena arena, int x, int y, int z, int w, int h, int d) {
        MemorySegment box = arena.allocate(Virgl.BOX);
        int[] v = {x, y, z, w, h, d};
        for (int i = 0; i < v.length; i++) {
            box.set(JAVA_INT, 4L * i, v[i]);
        }
        return box;
    }

    private Response submit3d(int ctx, Submit3d s) {
        if (!contexts.containsKey(ctx)) {
            return error(RESP_ERR_INVALID_CONTEXT_ID, "submit 3d: no context " + Integer.toUnsignedString(ctx));
        }
        int result;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(Math.max(4, s.commands().length), 4);
            buffer.copyFrom(MemorySegment.ofArray(s.commands()));
            result = (int) Virgl.SUBMIT_CMD.invokeExact(buffer, ctx, s.commands().length / 4);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (result != 0) {
            return error(RESP_ERR_UNSPEC, "submit 3d: virglrenderer refused " + s.commands().length + " bytes on context "
                    + Integer.toUnsignedString(ctx) + ": " + result);
        }
        return Response.ok();
    }

    // ---- scanouts

    private Response setScanout(SetScanout s) {
        if (s.scanoutId() < 0 || s.scanoutId() >= scanouts.size()) {
            return error(RESP_ERR_INVALID_SCANOUT_ID, "set scanout: no scanout " + s.scanoutId());
        }
        Scanout scanout = scanouts.get(s.scanoutId());
        if (s.resourceId() == 0 || s.rect().isEmpty()) {
            scanout.disable();
            return Response.ok();
        }
        Res r = resources.get(s.resourceId());
        if (r == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "set scanout: no resource " + Integer.toUnsignedString(s.resourceId()));
        }
        PixelFormat format = PixelFormat.of(r.format);
        if (format == null || r.target != Virgl.TARGET_TEXTURE_2D || !s.rect().within(r.width, r.height)) {
            return error(RESP_ERR_INVALID_PARAMETER, "set scanout: " + s.rect() + " of resource " + r.id + " (format "
                    + r.format + ", target " + r.target + ", " + r.width + "x" + r.height + ") cannot be shown");
        }
        if (r.shadow == null) {
            long copy = Resource.hostBytes(r.width, r.height) + 4 * s.rect().width() * s.rect().height();
            if (hostBytes() - scanout.hostBytes() + copy > spec.hostMemoryBytes()) {
                return error(RESP_ERR_OUT_OF_MEMORY, "set scanout: no host memory left for its copy");
            }
            r.shadow = new Resource(r.id, format, r.width, r.height);
            resourceBytes += r.shadow.hostBytes();
        }
        if (!readBack(r, s.rect())) {
            return Response.error(RESP_ERR_UNSPEC);
        }
        scanout.show(r.shadow, s.rect());
        return Response.ok();
    }

    private Response flush(ResourceFlush f) {
        Res r = resources.get(f.resourceId());
        if (r == null) {
            return error(RESP_ERR_INVALID_RESOURCE_ID, "flush: no resource " + Integer.toUnsignedString(f.resourceId()));
        }
        if (r.guestBlob != null) {
            return Gpu2d.flushBlob(r.guestBlob, f.rect(), scanouts, memory, guestError);
        }
        if (!f.rect().within(r.width & 0xffffffffL, r.height & 0xffffffffL)) {
            return error(RESP_ERR_INVALID_PARAMETER, "flush: " + f.rect() + " is not inside resource " + r.id);
        }
        if (r.shadow == null) {
            return Response.ok(); // never on a scanout
        }
        for (Scanout s : scanouts) {
            Rect shown = s.resourceId() == r.id ? s.rect() : null;
            if (shown != null) {
                Rect overlap = f.rect().intersect(shown);
                if (!overlap.isEmpty() && readBack(r, overlap)) {
                    s.flush(r.shadow, overlap);
                }
            }
        }
        return Response.ok();
    }

    /** Reads {@code rect} of the resource from the renderer into its host copy, at the same place. */
    private boolean readBack(Res r, Rect rect) {
        long stride = r.shadow.stride();
        long offset = rect.y() * stride + rect.x() * PixelFormat.BYTES_PER_PIXEL;
        int result;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment box = box(arena, (int) rect.x(), (int) rect.y(), 0, (int) rect.width(), (int) rect.height(), 1);
            MemorySegment iov = arena.allocate(Virgl.IOVEC);
            iov.set(ADDRESS, 0, r.shadow.pixels());
            iov.set(JAVA_LONG, 8, r.shadow.pixels().byteSize());
            result = (int) Virgl.TRANSFER_READ_IOV.invokeExact(r.id, 0, 0, (int) stride, 0, box, offset, iov, 1);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (result != 0) {
            hostError.accept("reading resource " + r.id + " back from virglrenderer failed: " + result);
            return false;
        }
        return true;
    }

    private Response cursor(Cursor c) {
        if (c.scanoutId() < 0 || c.scanoutId() >= scanouts.size()) {
            return error(RESP_ERR_INVALID_SCANOUT_ID, "cursor: no scanout " + c.scanoutId());
        }
        int[] cur = cursors[c.scanoutId()];
        if (!c.move()) {
            if (c.resourceId() != 0 && !resources.containsKey(c.resourceId())) {
                return error(RESP_ERR_INVALID_RESOURCE_ID, "cursor: no resource " + Integer.toUnsignedString(c.resourceId()));
            }
            cur[0] = c.resourceId();
            cur[3] = c.hotX();
            cur[4] = c.hotY();
        }
        cur[1] = c.x();
        cur[2] = c.y();
        return Response.ok();
    }

    /** A 2D resource's pixels as the renderer holds them: rows of {@code width} 4-byte pixels in {@code format}. */
    record Image(int resourceId, PixelFormat format, int width, int height, byte[] pixels) {
    }

    /**
     * Reads every 2D resource of a 4-byte pixel format up to {@code maxPixels} back from the renderer (tests
     * that look for what a guest rendered; safe from any thread).
     */
    List<Image> images(long maxPixels) {
        return renderer.call(() -> {
            List<Image> out = new ArrayList<>();
            for (Res r : resources.values()) {
                PixelFormat format = PixelFormat.of(r.format);
                if (closed || format == null || r.target != Virgl.TARGET_TEXTURE_2D || (long) r.width * r.height > maxPixels) {
                    continue;
                }
                try (Arena arena = Arena.ofConfined()) {
                    MemorySegment pixels = arena.allocate(4L * r.width * r.height);
                    MemorySegment box = box(arena, 0, 0, 0, r.width, r.height, 1);
                    MemorySegment iov = arena.allocate(Virgl.IOVEC);
                    iov.set(ADDRESS, 0, pixels);
                    iov.set(JAVA_LONG, 8, pixels.byteSize());
                    int result = (int) Virgl.TRANSFER_READ_IOV.invokeExact(r.id, 0, 0, 4 * r.width, 0, box, 0L, iov, 1);
                    if (result == 0) {
                        out.add(new Image(r.id, format, r.width, r.height, pixels.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE)));
                    }
                } catch (Throwable t) {
                    throw Virgl.unchecked(t);
                }
            }
            return out;
        });
    }

    /**
     * Drops every context and resource of this activation from the renderer and frees their backing and
     * copies, on the renderer thread, and waits for it: after this returns virglrenderer holds nothing of
     * the guest's RAM. Pending fences are dropped (their chains go back with the reset). Idempotent.
     */
    @Override
    public void close() {
        renderer.call(() -> {
            if (closed) {
                return null;
            }
            closed = true;
            renderer.dropFences();
            for (Scanout s : scanouts) {
                s.disable();
            }
            for (int ctx : contexts.keySet()) {
                destroyContext(ctx);
            }
            contexts.clear();
            venusContexts.clear();
            for (Res r : resources.values()) {
                release(r);
            }
            resources.clear();
            return null;
        });
    }
}
