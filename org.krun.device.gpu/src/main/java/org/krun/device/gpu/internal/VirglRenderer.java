package org.krun.device.gpu.internal;

import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.krun.api.VmConfigException;

/**
 * The process's virglrenderer, lent to one VM at a time. virglrenderer is one global state per process
 * (its resource and context ids are global, and a guest's command streams name resources by those ids), so
 * two VMs could only share it if every id inside every command stream were translated, which would mean
 * parsing virgl's whole protocol on the way in. Instead the first virgl VM of a process takes the renderer
 * and another one is refused with one line until it is given back ({@link #acquire}).
 *
 * <p>The renderer runs on its own thread, started with the lease and ended with it: virglrenderer makes its
 * EGL context current on the thread that calls it, so every call goes through {@link #execute} or
 * {@link #call}, in order. While fences are outstanding the thread polls virglrenderer every millisecond;
 * a fence's action runs on the thread when virglrenderer reports it (write_fence, an upcall). Fences on a
 * context's ring (VIRTIO_GPU_FLAG_INFO_RING_IDX, Venus) are the context's own timeline: created with
 * virgl_renderer_context_create_fence, polled per context, reported through write_context_fence.
 *
 * <p>With Venus ({@link #acquire(String, boolean)}) virglrenderer starts its render server, a child process
 * that runs the guest's Vulkan calls on the host's driver, during init and ends it (waiting for it) in
 * virgl_renderer_cleanup, which {@link #release} runs: the server lives exactly as long as the lease.
 */
final class VirglRenderer {

    /** How long the holder waits for the renderer thread to start, stop or finish a call. */
    static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);
    /** The most fences outstanding at once; the guest's driver waits for its fences long before. */
    static final int MAX_FENCES = 4096;

    private static final System.Logger LOG = System.getLogger(VirglRenderer.class.getName());
    private static final Object LOCK = new Object();
    /** The renderer lent out now, or null. */
    private static VirglRenderer current;
    /** The write_fence upcall and the callbacks struct: made once, alive for the process. */
    private static MemorySegment callbacks;
    /**
     * virglrenderer's error messages (a guest's bad command stream makes one each), logged with a rate limit
     * and without their arguments (a va_list is not readable from Java); otherwise they go to stderr
     * unbounded. Its other messages (the GL version at start) are debug.
     */
    private static final org.krun.spi.virtio.RateLimitedLog MESSAGES = new org.krun.spi.virtio.RateLimitedLog(
            m -> LOG.log(Level.WARNING, "virglrenderer: " + m), Duration.ofSeconds(10));

    private final String holder;
    private final BlockingQueue<Runnable> tasks = new LinkedBlockingQueue<>();
    private final Thread thread;
    /** Fences created and not yet signalled, oldest first (renderer thread only). */
    private final ArrayDeque<Fence> fences = new ArrayDeque<>();
    /** Context fences not yet signalled, per context and ring ({@link #ring}), oldest first (renderer thread only). */
    private final java.util.Map<Long, ArrayDeque<Fence>> contextFences = new java.util.HashMap<>();
    private int contextFencesOutstanding;
    private long contextFenceSequence;
    private int fenceSequence;
    /** Whether virglrenderer was started with Venus and its render server. */
    private final boolean venus;
    private volatile long fencesSignalled;
    private volatile boolean stopping;

    private record Fence(long id, Runnable signalled) {
    }

    private VirglRenderer(String holder, boolean venus) {
        this.holder = holder;
        this.venus = venus;
        this.thread = Thread.ofPlatform().daemon(true).name("krun-virgl").unstarted(this::loop);
    }

    /**
     * Takes the process's renderer for {@code holder} (how errors name the VM's device), starting it.
     *
     * @throws VmConfigException (one line) when virglrenderer is not installed, cannot start on this host's
     *         EGL, or another VM of this process has it
     */
    static VirglRenderer acquire(String holder) {
        return acquire(holder, false);
    }

    /**
     * Takes the process's renderer for {@code holder}; with {@code venus} virglrenderer also runs Venus, in
     * its render server.
     *
     * @throws VmConfigException (one line) as {@link #acquire(String)}, and with {@code venus} when the host
     *         lacks the render server or a Vulkan driver ({@link VenusHost#problem()})
     */
    static VirglRenderer acquire(String holder, boolean venus) {
        if (Virgl.problem() != null) {
            throw new VmConfigException(venus ? Virgl.problem().replace("--gpu virgl", "--gpu venus") : Virgl.problem());
        }
        if (venus && VenusHost.problem() != null) {
            throw new VmConfigException(VenusHost.problem());
        }
        String option = venus ? "--gpu venus" : "--gpu virgl";
        VirglRenderer r;
        synchronized (LOCK) {
            if (current != null) {
                throw new VmConfigException(option + ": virglrenderer is in use by another VM in this process ("
                        + current.holder + "); one VM per process can have virgl or venus");
            }
            if (callbacks == null) {
                callbacks = makeCallbacks();
            }
            r = new VirglRenderer(holder, venus);
            current = r;
        }
        r.thread.start();
        int flags = Virgl.USE_EGL | Virgl.USE_SURFACELESS | (venus ? Virgl.VENUS | Virgl.RENDER_SERVER : 0);
        int result;
        try {
            result = r.call(() -> init(flags));
        } catch (RuntimeException e) {
            r.release();
            throw new VmConfigException(option + ": virglrenderer did not start: " + e.getMessage());
        }
        if (result != 0) {
            r.release();
            throw new VmConfigException(option + ": virglrenderer did not start (virgl_renderer_init: " + result
                    + "); the host needs Mesa's EGL" + (venus ? " and virglrenderer's render server" : "")
                    + ": apt-get install libegl-mesa0" + (venus ? " " + Virgl.RENDER_SERVER_PACKAGE : ""));
        }
        if (venus && r.call(() -> Gpu3d.capsetVersionAndSize(GpuProtocol.CAPSET_VENUS))[1] <= 0) {
            r.release();
            throw new VmConfigException("--gpu venus: this virglrenderer offers no Venus capset (built without Venus)");
        }
        if (venus && r.venusWireFormat() == 0) {
            LOG.log(Level.WARNING, "--gpu venus: this virglrenderer speaks Venus wire format 0, which current Mesa Venus"
                    + " drivers (Mesa 25) refuse: such guests find no Vulkan device; a newer virglrenderer is needed");
        }
        return r;
    }

    /**
     * The first field of the renderer's venus capset (struct virgl_renderer_capset_venus: wire_format_version),
     * which a guest's Venus driver compares with its own; -1 without Venus.
     */
    int venusWireFormat() {
        return call(() -> {
            int size = Gpu3d.capsetVersionAndSize(GpuProtocol.CAPSET_VENUS)[1];
            if (size < 4 || size > 1 << 16) {
                return -1;
            }
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment caps = arena.allocate(size, 8);
                Virgl.FILL_CAPS.invokeExact(GpuProtocol.CAPSET_VENUS, 0, caps);
                return caps.get(java.lang.foreign.ValueLayout.JAVA_INT, 0);
            } catch (Throwable t) {
                throw Virgl.unchecked(t);
            }
        });
    }

    private static int init(int flags) {
        // cookie: virglrenderer refuses a null one; the renderer thread is the only caller, so no state is needed
        try {
            return (int) Virgl.INIT.invokeExact(MemorySegment.ofAddress(1), flags, callbacks);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
    }

    /** Whether this renderer runs Venus (capset venus, contexts that name their capset). */
    boolean venus() {
        return venus;
    }

    private static MemorySegment makeCallbacks() {
        try {
            MethodHandle writeFence = MethodHandles.lookup().findStatic(VirglRenderer.class, "writeFence",
                    MethodType.methodType(void.class, MemorySegment.class, int.class));
            MemorySegment stub = Virgl.upcall(writeFence, Virgl.WRITE_FENCE);
            MethodHandle message = MethodHandles.lookup().findStatic(VirglRenderer.class, "message",
                    MethodType.methodType(void.class, MemorySegment.class, MemorySegment.class));
            MemorySegment previous = (MemorySegment) Virgl.SET_DEBUG_CALLBACK.invokeExact(
                    Virgl.upcall(message, Virgl.DEBUG_CALLBACK));
            MethodHandle writeContextFence = MethodHandles.lookup().findStatic(VirglRenderer.class, "writeContextFence",
                    MethodType.methodType(void.class, MemorySegment.class, int.class, int.class, long.class));
            MemorySegment contextStub = Virgl.upcall(writeContextFence, Virgl.WRITE_CONTEXT_FENCE);
            MemorySegment cb = Arena.global().allocate(Virgl.CALLBACKS);
            cb.set(java.lang.foreign.ValueLayout.JAVA_INT, 0, Virgl.CALLBACKS_VERSION);
            cb.set(java.lang.foreign.ValueLayout.ADDRESS, Virgl.CALLBACKS.byteOffset(
                    java.lang.foreign.MemoryLayout.PathElement.groupElement("write_fence")), stub);
            cb.set(java.lang.foreign.ValueLayout.ADDRESS, Virgl.CALLBACKS.byteOffset(
                    java.lang.foreign.MemoryLayout.PathElement.groupElement("write_context_fence")), contextStub);
            return cb;
        } catch (Throwable e) {
            throw Virgl.unchecked(e);
        }
    }

    /** virglrenderer's debug callback (any thread it logs on): the format string, rate limited. */
    private static void message(MemorySegment format, MemorySegment args) {
        try { // nothing may escape an upcall
            String f = format.reinterpret(4096).getString(0).strip();
            String lower = f.toLowerCase(java.util.Locale.ROOT);
            if (lower.contains("error") || lower.contains("fail") || lower.contains("illegal")) {
                MESSAGES.warn(f);
            } else {
                LOG.log(Level.DEBUG, "virglrenderer: " + f);
            }
        } catch (Throwable t) {
            // a message lost is no loss
        }
    }

    /** virglrenderer's write_fence (on the renderer thread, inside a call): fences up to {@code fence} are done. */
    private static void writeFence(MemorySegment cookie, int fence) {
        try { // nothing may escape an upcall: the JVM would end
            VirglRenderer r;
            synchronized (LOCK) {
                r = current;
            }
            if (r != null && Thread.currentThread() == r.thread) {
                r.signalled(fence);
            }
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "virgl: fence " + Integer.toUnsignedString(fence) + " action failed: " + t);
        }
    }

    /**
     * virglrenderer's write_context_fence (on the renderer thread, inside virgl_renderer_context_poll): the
     * context's fences on {@code ring} up to {@code fenceId} are done.
     */
    private static void writeContextFence(MemorySegment cookie, int ctx, int ring, long fenceId) {
        try { // nothing may escape an upcall: the JVM would end
            VirglRenderer r;
            synchronized (LOCK) {
                r = current;
            }
            if (r != null && Thread.currentThread() == r.thread) {
                r.contextSignalled(ctx, ring, fenceId);
            }
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "virgl: context fence " + Long.toUnsignedString(fenceId) + " action failed: " + t);
        }
    }

    /** Runs {@code task} on the renderer thread, after every task given before it. */
    void execute(Runnable task) {
        if (stopping) {
            throw new IllegalStateException("the virgl renderer is stopping");
        }
        tasks.add(task);
    }

    /** Runs {@code task} on the renderer thread and waits for its result (at most {@link #CALL_TIMEOUT}). */
    <T> T call(Callable<T> task) {
        if (Thread.currentThread() == thread) {
            try {
                return task.call();
            } catch (Exception e) {
                throw Virgl.unchecked(e);
            }
        }
        CompletableFuture<T> f = new CompletableFuture<>();
        execute(() -> {
            try {
                f.complete(task.call());
            } catch (Throwable t) {
                f.completeExceptionally(t);
            }
        });
        try {
            return f.get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw Virgl.unchecked(e.getCause());
        } catch (TimeoutException e) {
            throw new IllegalStateException("virglrenderer did not answer within " + CALL_TIMEOUT.toSeconds() + " s");
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while waiting for virglrenderer");
        }
    }

    /** Whether the caller is the renderer thread. */
    boolean onRendererThread() {
        return Thread.currentThread() == thread;
    }

    /**
     * On the renderer thread: creates a fence after the work submitted so far; {@code signalled} runs on the
     * renderer thread when virglrenderer reports it. False when {@link #MAX_FENCES} are outstanding or
     * virglrenderer refused (the caller answers at once).
     */
    boolean fence(Runnable signalled) {
        if (fences.size() + contextFencesOutstanding >= MAX_FENCES) {
            return false;
        }
        int id = ++fenceSequence;
        int r;
        try {
            r = (int) Virgl.CREATE_FENCE.invokeExact(id, 0);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (r != 0) {
            return false;
        }
        fences.addLast(new Fence(id, signalled));
        return true;
    }

    /**
     * On the renderer thread: creates a fence on context {@code ctx}'s ring {@code ring} after the work
     * submitted to it so far; {@code signalled} runs on the renderer thread when virglrenderer reports it.
     * False when {@link #MAX_FENCES} are outstanding or virglrenderer refused (the caller answers at once).
     */
    boolean contextFence(int ctx, int ring, Runnable signalled) {
        if (fences.size() + contextFencesOutstanding >= MAX_FENCES) {
            return false;
        }
        long id = ++contextFenceSequence;
        int r;
        try {
            r = (int) Virgl.CONTEXT_CREATE_FENCE.invokeExact(ctx, 0, ring, id);
        } catch (Throwable t) {
            throw Virgl.unchecked(t);
        }
        if (r != 0) {
            return false;
        }
        contextFences.computeIfAbsent(ring(ctx, ring), k -> new ArrayDeque<>()).addLast(new Fence(id, signalled));
        contextFencesOutstanding++;
        return true;
    }

    /**
     * On the renderer thread: context {@code ctx} is going; its outstanding fences are signalled now (their
     * requests are answered: the work they waited for went with the context).
     */
    void contextGone(int ctx) {
        var it = contextFences.entrySet().iterator();
        List<Fence> done = new ArrayList<>();
        while (it.hasNext()) {
            var e = it.next();
            if ((int) (e.getKey() >>> 8) == ctx) {
                done.addAll(e.getValue());
                contextFencesOutstanding -= e.getValue().size();
                it.remove();
            }
        }
        for (Fence f : done) {
            run(f);
        }
    }

    private static long ring(int ctx, int ring) {
        return (ctx & 0xffffffffL) << 8 | (ring & 0xff);
    }

    private void contextSignalled(int ctx, int ring, long fenceId) {
        ArrayDeque<Fence> q = contextFences.get(ring(ctx, ring));
        while (q != null && !q.isEmpty() && q.peekFirst().id() <= fenceId) {
            contextFencesOutstanding--;
            run(q.removeFirst());
        }
        if (q != null && q.isEmpty()) {
            contextFences.remove(ring(ctx, ring));
        }
    }

    private void run(Fence f) {
        fencesSignalled++;
        try {
            f.signalled().run();
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "virgl: fence action failed: " + e);
        }
    }

    /** Fences outstanding now, on the global timeline and on contexts' rings (renderer thread; tests). */
    int fencesOutstanding() {
        return fences.size() + contextFencesOutstanding;
    }

    /** How many fences virglrenderer has signalled since the renderer started (tests). */
    long fencesSignalled() {
        return fencesSignalled;
    }

    /** Drops every outstanding fence without running it (renderer thread: the activation that made them ended). */
    void dropFences() {
        fences.clear();
        contextFences.clear();
        contextFencesOutstanding = 0;
    }

    private void signalled(int fence) {
        // fences retire in order; ids wrap around after 2^32
        while (!fences.isEmpty() && (int) fences.peekFirst().id() - fence <= 0) {
            run(fences.removeFirst());
        }
    }

    private void loop() {
        try {
            while (true) {
                Runnable t = fencesOutstanding() == 0 ? tasks.take() : tasks.poll(1, TimeUnit.MILLISECONDS);
                if (t != null) {
                    if (t == STOP) {
                        break;
                    }
                    try {
                        t.run();
                    } catch (Throwable e) {
                        LOG.log(Level.ERROR, "virgl: renderer task failed: " + e);
                    }
                }
                if (!fences.isEmpty()) {
                    Virgl.POLL.invokeExact();
                }
                if (contextFencesOutstanding > 0) {
                    for (long key : List.copyOf(contextFences.keySet())) {
                        Virgl.CONTEXT_POLL.invokeExact((int) (key >>> 8));
                    }
                }
            }
        } catch (InterruptedException e) {
            // released while blocked: fall through to cleanup
        } catch (Throwable t) {
            LOG.log(Level.ERROR, "virgl: renderer thread failed: " + t);
        } finally {
            dropFences();
            try {
                Virgl.CLEANUP.invokeExact(MemorySegment.ofAddress(1));
            } catch (Throwable t) {
                LOG.log(Level.ERROR, "virgl: cleanup failed: " + t);
            }
        }
    }

    private static final Runnable STOP = () -> {
    };

    /**
     * Gives the renderer back: virglrenderer is cleaned up (every context and resource left goes) on its
     * thread, which then ends; the next VM may acquire it. Idempotent.
     */
    void release() {
        synchronized (LOCK) {
            if (stopping) {
                return;
            }
            stopping = true;
        }
        tasks.add(STOP);
        try {
            thread.join(CALL_TIMEOUT.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        synchronized (LOCK) {
            if (thread.isAlive()) {
                // still inside virglrenderer: keep it lent, so nobody else initialises it under the thread's feet
                LOG.log(Level.ERROR, "virgl: the renderer thread did not stop within " + CALL_TIMEOUT.toSeconds()
                        + " s; virgl stays unavailable in this process");
                return;
            }
            if (current == this) {
                current = null;
            }
        }
    }
}
