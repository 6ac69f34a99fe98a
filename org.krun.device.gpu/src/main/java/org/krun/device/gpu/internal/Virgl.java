package org.krun.device.gpu.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * virglrenderer (Debian's {@code libvirglrenderer1}, 0.10) through FFM: the calls of
 * {@code virgl/virglrenderer.h} this device makes, linked once when the class loads. The library is looked
 * up by its soname; when it is absent {@link #problem()} says so in one line naming the Debian package and
 * every handle is null, so a 2D device never needs it.
 *
 * <p>virglrenderer keeps one global state per process and makes its GL contexts current on the calling
 * thread: only {@link VirglRenderer}'s thread calls these. None of these functions sets errno; they return
 * 0 or an error number.
 */
final class Virgl {

    static final String LIBRARY = "libvirglrenderer.so.1";
    static final String DEBIAN_PACKAGE = "libvirglrenderer1";

    // virgl_renderer_init flags
    static final int USE_EGL = 1;
    static final int USE_SURFACELESS = 1 << 3;
    /** VIRGL_RENDERER_VENUS: the Venus (Vulkan) renderer besides virgl's. */
    static final int VENUS = 1 << 6;
    /**
     * VIRGL_RENDERER_RENDER_SERVER: Venus runs in virglrenderer's render server, a process it starts itself
     * (fork and exec of {@link #RENDER_SERVER_PATH}) and ends in virgl_renderer_cleanup.
     */
    static final int RENDER_SERVER = 1 << 9;
    /** Where Debian's libvirglrenderer1 0.10 execs its render server from (built in; package virgl-server). */
    static final String RENDER_SERVER_PATH = "/usr/libexec/virgl_render_server";
    static final String RENDER_SERVER_PACKAGE = "virgl-server";
    /** VIRGL_RENDERER_CONTEXT_FLAG_CAPSET_ID_MASK: the capset a context speaks, in its ctx_flags. */
    static final int CONTEXT_FLAG_CAPSET_ID_MASK = 0xff;

    // gallium's enum pipe_texture_target, as RESOURCE_CREATE_3D carries it
    static final int TARGET_BUFFER = 0;
    static final int TARGET_TEXTURE_1D = 1;
    static final int TARGET_TEXTURE_2D = 2;
    static final int TARGET_TEXTURE_3D = 3;
    static final int TARGET_TEXTURE_CUBE = 4;
    static final int TARGET_TEXTURE_RECT = 5;
    static final int TARGET_TEXTURE_1D_ARRAY = 6;
    static final int TARGET_TEXTURE_2D_ARRAY = 7;
    static final int TARGET_TEXTURE_CUBE_ARRAY = 8;
    /** VIRGL_RES_BIND_RENDER_TARGET: what a 2D resource is created with (QEMU's virtio-gpu-gl does the same). */
    static final int BIND_RENDER_TARGET = 1 << 1;
    /** VIRTIO_GPU_RESOURCE_FLAG_Y_0_TOP: rows are top to bottom, as the guest's 2D buffers are. */
    static final int FLAG_Y_0_TOP = 1;

    /** struct iovec: void *iov_base, size_t iov_len. */
    static final StructLayout IOVEC = MemoryLayout.structLayout(ADDRESS.withName("base"), JAVA_LONG.withName("len"));
    /** struct virgl_box: uint32_t x, y, z, w, h, d. */
    static final StructLayout BOX = MemoryLayout.structLayout(JAVA_INT.withName("x"), JAVA_INT.withName("y"),
            JAVA_INT.withName("z"), JAVA_INT.withName("w"), JAVA_INT.withName("h"), JAVA_INT.withName("d"));
    /**
     * struct virgl_renderer_resource_create_args: uint32_t handle, target, format, bind, width, height, depth,
     * array_size, last_level, nr_samples, flags.
     */
    static final StructLayout CREATE_ARGS = MemoryLayout.structLayout(JAVA_INT.withName("handle"),
            JAVA_INT.withName("target"), JAVA_INT.withName("format"), JAVA_INT.withName("bind"), JAVA_INT.withName("width"),
            JAVA_INT.withName("height"), JAVA_INT.withName("depth"), JAVA_INT.withName("array_size"),
            JAVA_INT.withName("last_level"), JAVA_INT.withName("nr_samples"), JAVA_INT.withName("flags"));
    /**
     * struct virgl_renderer_callbacks, version 3 (the unstable header's): int version, then write_fence,
     * create_gl_context, destroy_gl_context, make_current, get_drm_fd (v2), write_context_fence and
     * get_server_fd (v3). With USE_EGL virglrenderer makes its own GL contexts, and without get_server_fd it
     * starts its render server itself, so only the two fence callbacks are set.
     */
    static final StructLayout CALLBACKS = MemoryLayout.structLayout(JAVA_INT.withName("version"),
            MemoryLayout.paddingLayout(4), ADDRESS.withName("write_fence"), ADDRESS.withName("create_gl_context"),
            ADDRESS.withName("destroy_gl_context"), ADDRESS.withName("make_current"), ADDRESS.withName("get_drm_fd"),
            ADDRESS.withName("write_context_fence"), ADDRESS.withName("get_server_fd"));
    static final int CALLBACKS_VERSION = 3;
    /** write_fence: void (*)(void *cookie, uint32_t fence). */
    static final FunctionDescriptor WRITE_FENCE = FunctionDescriptor.ofVoid(ADDRESS, JAVA_INT);
    /** write_context_fence: void (*)(void *cookie, uint32_t ctx_id, uint32_t ring_idx, uint64_t fence_id). */
    static final FunctionDescriptor WRITE_CONTEXT_FENCE = FunctionDescriptor.ofVoid(ADDRESS, JAVA_INT, JAVA_INT, JAVA_LONG);

    // virgl_renderer_resource_create_blob's blob_mem (VIRGL_RENDERER_BLOB_MEM_*), as the guest's
    static final int BLOB_MEM_GUEST = 1;
    static final int BLOB_MEM_HOST3D = 2;
    static final int BLOB_MEM_HOST3D_GUEST = 3;
    /** VIRGL_RENDERER_MAP_CACHE_CACHED: what a blob whose map_info virglrenderer cannot tell is mapped as. */
    static final int MAP_CACHE_CACHED = 1;
    /**
     * struct virgl_renderer_resource_create_blob_args: uint32_t res_handle, ctx_id, blob_mem, blob_flags;
     * uint64_t blob_id, size; const struct iovec *iovecs; uint32_t num_iovs.
     */
    static final StructLayout CREATE_BLOB_ARGS = MemoryLayout.structLayout(JAVA_INT.withName("res_handle"),
            JAVA_INT.withName("ctx_id"), JAVA_INT.withName("blob_mem"), JAVA_INT.withName("blob_flags"),
            JAVA_LONG.withName("blob_id"), JAVA_LONG.withName("size"), ADDRESS.withName("iovecs"),
            JAVA_INT.withName("num_iovs"), MemoryLayout.paddingLayout(4));

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LOOKUP;
    private static final String PROBLEM;

    static {
        SymbolLookup lookup = null;
        String problem = null;
        try {
            lookup = SymbolLookup.libraryLookup(LIBRARY, Arena.global());
        } catch (IllegalArgumentException e) {
            problem = "--gpu virgl needs virglrenderer (" + LIBRARY + "), which is not installed: apt-get install "
                    + DEBIAN_PACKAGE;
        }
        LOOKUP = lookup;
        PROBLEM = problem;
    }

    static final MethodHandle INIT = link("virgl_renderer_init", FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS));
    static final MethodHandle CLEANUP = link("virgl_renderer_cleanup", FunctionDescriptor.ofVoid(ADDRESS));
    static final MethodHandle POLL = link("virgl_renderer_poll", FunctionDescriptor.ofVoid());
    static final MethodHandle GET_CAP_SET = link("virgl_renderer_get_cap_set",
            FunctionDescriptor.ofVoid(JAVA_INT, ADDRESS, ADDRESS));
    static final MethodHandle FILL_CAPS = link("virgl_renderer_fill_caps", FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT, ADDRESS));
    static final MethodHandle CONTEXT_CREATE = link("virgl_renderer_context_create",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    /** virgl_renderer_context_create_with_flags(uint32_t ctx_id, uint32_t ctx_flags, uint32_t nlen, const char *name). */
    static final MethodHandle CONTEXT_CREATE_WITH_FLAGS = link("virgl_renderer_context_create_with_flags",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    /** virgl_renderer_context_create_fence(uint32_t ctx_id, uint32_t flags, uint32_t ring_idx, uint64_t fence_id). */
    static final MethodHandle CONTEXT_CREATE_FENCE = link("virgl_renderer_context_create_fence",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_LONG));
    /** virgl_renderer_context_poll(uint32_t ctx_id): retires the context's fences that are done. */
    static final MethodHandle CONTEXT_POLL = link("virgl_renderer_context_poll", FunctionDescriptor.ofVoid(JAVA_INT));
    static final MethodHandle CONTEXT_DESTROY = link("virgl_renderer_context_destroy", FunctionDescriptor.ofVoid(JAVA_INT));
    static final MethodHandle SUBMIT_CMD = link("virgl_renderer_submit_cmd",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    static final MethodHandle RESOURCE_CREATE = link("virgl_renderer_resource_create",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    static final MethodHandle RESOURCE_UNREF = link("virgl_renderer_resource_unref", FunctionDescriptor.ofVoid(JAVA_INT));
    static final MethodHandle ATTACH_IOV = link("virgl_renderer_resource_attach_iov",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    static final MethodHandle DETACH_IOV = link("virgl_renderer_resource_detach_iov",
            FunctionDescriptor.ofVoid(JAVA_INT, ADDRESS, ADDRESS));
    static final MethodHandle CTX_ATTACH_RESOURCE = link("virgl_renderer_ctx_attach_resource",
            FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT));
    static final MethodHandle CTX_DETACH_RESOURCE = link("virgl_renderer_ctx_detach_resource",
            FunctionDescriptor.ofVoid(JAVA_INT, JAVA_INT));
    /** (handle, ctx_id, level, stride, layer_stride, box, offset, iov, iovec_cnt). */
    static final MethodHandle TRANSFER_READ_IOV = link("virgl_renderer_transfer_read_iov", FunctionDescriptor.of(JAVA_INT,
            JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT));
    static final MethodHandle TRANSFER_WRITE_IOV = link("virgl_renderer_transfer_write_iov", FunctionDescriptor.of(JAVA_INT,
            JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, JAVA_INT));
    /** virgl_set_debug_callback(void (*)(const char *fmt, va_list ap)): where virglrenderer's messages go. */
    static final MethodHandle SET_DEBUG_CALLBACK = link("virgl_set_debug_callback", FunctionDescriptor.of(ADDRESS, ADDRESS));
    /** The debug callback: (const char *fmt, va_list ap); on x86_64 a va_list argument is a pointer. */
    static final FunctionDescriptor DEBUG_CALLBACK = FunctionDescriptor.ofVoid(ADDRESS, ADDRESS);
    /** virgl_renderer_resource_create_blob(const struct virgl_renderer_resource_create_blob_args *). */
    static final MethodHandle RESOURCE_CREATE_BLOB = link("virgl_renderer_resource_create_blob",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    /** virgl_renderer_resource_map(uint32_t res_handle, void **map, uint64_t *out_size). */
    static final MethodHandle RESOURCE_MAP = link("virgl_renderer_resource_map",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    static final MethodHandle RESOURCE_UNMAP = link("virgl_renderer_resource_unmap", FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    /** virgl_renderer_resource_get_map_info(uint32_t res_handle, uint32_t *map_info): VIRGL_RENDERER_MAP_CACHE_*. */
    static final MethodHandle RESOURCE_GET_MAP_INFO = link("virgl_renderer_resource_get_map_info",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    /**
     * virgl_renderer_resource_get_info(int res_handle, struct virgl_renderer_resource_info *): uint32_t handle,
     * virgl_format, width, height, depth, flags, tex_id, stride; int drm_fourcc.
     */
    static final MethodHandle RESOURCE_GET_INFO = link("virgl_renderer_resource_get_info",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    static final long RESOURCE_INFO_SIZE = 36;
    static final MethodHandle CREATE_FENCE = link("virgl_renderer_create_fence", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));

    private Virgl() {
    }

    /** Why virglrenderer cannot be used here (one line), or null when it can be loaded. */
    static String problem() {
        return PROBLEM;
    }

    /** An upcall stub for {@code target}, alive for the process (virglrenderer keeps the pointer). */
    static MemorySegment upcall(MethodHandle target, FunctionDescriptor function) {
        return LINKER.upcallStub(target, function, Arena.global());
    }

    private static MethodHandle link(String name, FunctionDescriptor function) {
        return LOOKUP == null ? null : LINKER.downcallHandle(LOOKUP.findOrThrow(name), function);
    }

    /** What a handle threw through {@code invokeExact}, unchecked. */
    static RuntimeException unchecked(Throwable t) {
        if (t instanceof RuntimeException r) {
            return r;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new IllegalStateException(t);
    }
}
