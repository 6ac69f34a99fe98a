package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.krun.api.Display;
import org.krun.api.GpuSpec;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.HostDisplays;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.spi.virtio.ShortChainException;
import org.krun.spi.virtio.VirtioIds;

/**
 * virtio-gpu in 2D (virtio 1.2 §5.7): a control queue and a cursor queue; each request is a
 * {@link GpuCommand} read from the chain's driver-readable part, executed by {@link Gpu2d}, and answered in
 * its driver-writable part with a header (a response type, and the request's fence echoed when it asked
 * for one, §5.7.6.7) and the response's body. Every request is done when it is answered, so a fence is
 * signalled by its own response.
 *
 * <p>Offers VIRTIO_GPU_F_EDID and VIRTIO_GPU_F_RESOURCE_BLOB (in 2D guest-memory blobs only); in 2D no 3D
 * (num_capsets 0). A virgl device asks for the host-visible shared memory region, into which host3d blobs
 * are mapped (RESOURCE_MAP_BLOB). With {@link GpuSpec.Mode#VIRGL} it offers
 * VIRTIO_GPU_F_VIRGL and the capsets virgl and virgl2, and executes everything through {@link Gpu3d} on the
 * renderer's thread: a fenced request is answered, and its used buffer interrupts the driver, when
 * virglrenderer signals the fence. The device holds the process's {@link VirglRenderer} from creation to
 * close. With {@link GpuSpec.Mode#VENUS} it offers VIRTIO_GPU_F_CONTEXT_INIT and the capset venus besides
 * (the renderer runs Venus in its render server); a context then names its capset when it is created.
 * Runs on the VM's event loop; the scanouts ({@link #displays()}) are read from any thread and
 * outlive activations, keeping their last frame.
 */
final class VirtioGpu extends AbstractVirtioDevice<GpuEngine> implements HostDisplays {

    static final int CONTROLQ = 0;
    static final int CURSORQ = 1;
    static final int QUEUE_SIZE = 256;
    /** The host-visible region's size: address space for the blobs mapped at once (their memory is counted apart). */
    static final long HOST_VISIBLE_BYTES = 4L << 30;

    private final GpuSpec spec;
    private final List<Scanout> scanouts;
    /** The renderer of a virgl device (held until close), or null in 2D. */
    private final VirglRenderer renderer;
    /** Set when a reset or close gave up waiting for the renderer (it may still touch guest RAM). */
    private volatile boolean rendererStuck;

    /** A 2D device. */
    VirtioGpu(GpuSpec spec) {
        this(spec, null);
    }

    /** A virgl device when {@code renderer} is given, a 2D one otherwise. */
    VirtioGpu(GpuSpec spec, VirglRenderer renderer) {
        super(renderer == null ? "virtio-gpu" : renderer.venus() ? "virtio-gpu (venus)" : "virtio-gpu (virgl)", VirtioIds.GPU,
                renderer == null ? F_EDID | F_RESOURCE_BLOB
                        : F_EDID | F_VIRGL | F_RESOURCE_BLOB | (renderer.venus() ? F_CONTEXT_INIT : 0), 2, QUEUE_SIZE, CONFIG_SIZE);
        if ((renderer == null) != (spec.mode() == GpuSpec.Mode.TWO_D)
                || renderer != null && renderer.venus() != (spec.mode() == GpuSpec.Mode.VENUS)) {
            throw new IllegalArgumentException("a " + spec.mode().cliName() + " GPU " + (renderer == null ? "needs" : "takes no")
                    + " renderer");
        }
        this.spec = spec;
        this.renderer = renderer;
        List<Scanout> s = new ArrayList<>();
        for (int i = 0; i < spec.scanouts(); i++) {
            s.add(new Scanout(i, (long) spec.width() * spec.height()));
        }
        this.scanouts = List.copyOf(s);
        config().putInt(CONFIG_NUM_SCANOUTS, spec.scanouts())
                .putInt(CONFIG_NUM_CAPSETS, renderer == null ? 0 : Gpu3d.capsets(renderer.venus()).length)
                .driverWritable(CONFIG_EVENTS_CLEAR, 4);
    }

    /**
     * A virgl device's host-visible region (VIRTIO_GPU_SHM_ID_HOST_VISIBLE), where host3d blobs are mapped:
     * guest-physical address space only, no memory until a blob is mapped. A 2D device has none (its blobs
     * are guest memory).
     */
    @Override
    public List<SharedMemoryRegion> sharedMemoryRegions() {
        return renderer == null ? List.of() : List.of(new SharedMemoryRegion(SHM_ID_HOST_VISIBLE, HOST_VISIBLE_BYTES));
    }

    @Override
    public List<Display> displays() {
        return List.copyOf(scanouts);
    }

    List<Scanout> scanouts() {
        return scanouts;
    }

    @Override
    protected GpuEngine onActivate(Active<GpuEngine> a) {
        if (renderer != null) {
            return new Gpu3d(spec, scanouts, a.memory(), renderer,
                    a.context().sharedMemory(SHM_ID_HOST_VISIBLE).orElse(null), this::guestError, this::hostError);
        }
        return new Gpu2d(spec, scanouts, a.memory(), this::guestError, this::hostError);
    }

    @Override
    protected void onQueueNotify(Active<GpuEngine> a, int queue) {
        DescriptorChain chain;
        while (a.isCurrent() && (chain = a.pop(queue)) != null) {
            serve(a, queue, chain);
        }
    }

    /**
     * Executes one request: in 2D decoded and executed here at once, answered here; in virgl handed to the
     * renderer's thread, which decodes it there (so the loop holds no request's bytes, however many chains
     * wait) and answers it through the loop, at once or when its fence is signalled.
     */
    private void serve(Active<GpuEngine> a, int queue, DescriptorChain chain) {
        switch (a.state()) {
            case Gpu2d g -> {
                GpuCommand.Request request = read(a, chain);
                a.addUsed(queue, chain.head(), answer(a, chain, request.header(), g.execute(request.command())));
            }
            case Gpu3d g -> {
                try {
                    g.submit(() -> read(a, chain), (header, response) -> onLoop(a,
                            x -> x.addUsed(queue, chain.head(), answer(x, chain, header, response))));
                } catch (IllegalStateException e) { // the renderer is stopping: the VM is going
                    hostError(e.getMessage());
                    a.addUsed(queue, chain.head(), answer(a, chain, GpuCommand.Header.NONE, Gpu2d.Response.error(RESP_ERR_UNSPEC)));
                }
            }
        }
    }

    /** Decodes the request of {@code chain}; one whose descriptors are not guest RAM is malformed. */
    private static GpuCommand.Request read(Active<GpuEngine> a, DescriptorChain chain) {
        try {
            return GpuCommand.parse(chain.reader(a.memory()));
        } catch (GuestMemoryException | ShortChainException e) {
            return new GpuCommand.Request(GpuCommand.Header.NONE, new GpuCommand.Malformed("request not readable: "
                    + e.getMessage()));
        }
    }

    private int answer(Active<GpuEngine> a, DescriptorChain chain, GpuCommand.Header h, Gpu2d.Response response) {
        ChainWriter w = chain.writer(a.memory());
        if (w.remaining() < HDR_SIZE) {
            // The cursor queue's requests come without room for an answer (Linux gives none).
            if (w.remaining() > 0) {
                guestError("response buffer of " + w.remaining() + " bytes is shorter than a header");
            }
            return 0;
        }
        Gpu2d.Response r = response;
        if (w.remaining() < HDR_SIZE + r.body().length) {
            guestError("response buffer of " + w.remaining() + " bytes is too short for response 0x"
                    + Integer.toHexString(r.type()));
            r = Gpu2d.Response.error(RESP_ERR_UNSPEC);
        }
        ByteBuffer b = ByteBuffer.allocate(HDR_SIZE + r.body().length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, r.type());
        // §5.7.6.7: a fenced request's response carries the same fence id (and its context and ring)
        int echoed = h.flags() & (FLAG_FENCE | FLAG_INFO_RING_IDX);
        b.putInt(4, echoed);
        if ((echoed & FLAG_FENCE) != 0) {
            b.putLong(8, h.fenceId());
            b.putInt(16, h.ctxId());
            if ((echoed & FLAG_INFO_RING_IDX) != 0) {
                b.put(20, (byte) h.ringIdx());
            }
        }
        b.put(HDR_SIZE, r.body());
        try {
            w.write(b.array());
        } catch (GuestMemoryException e) {
            guestError("response buffer not writable: " + e.getMessage());
            return 0;
        }
        return b.capacity();
    }

    /** Sets {@code bits} in events_read and tells the driver (§5.7.4.1), if it is active. */
    void raiseEvents(int bits) {
        synchronized (config()) {
            config().putInt(CONFIG_EVENTS_READ, config().getInt(CONFIG_EVENTS_READ) | bits);
        }
        Active<GpuEngine> a = active();
        if (a != null && a.isCurrent()) {
            a.configChanged();
        }
    }

    /** §5.7.4: the driver acknowledges events by writing their bits to events_clear. */
    @Override
    protected void onConfigWritten(int offset, int length) {
        if (offset < CONFIG_EVENTS_CLEAR + 4 && offset + length > CONFIG_EVENTS_CLEAR) {
            synchronized (config()) {
                int clear = config().getInt(CONFIG_EVENTS_CLEAR);
                config().putInt(CONFIG_EVENTS_READ, config().getInt(CONFIG_EVENTS_READ) & ~clear);
                config().putInt(CONFIG_EVENTS_CLEAR, 0);
            }
        }
    }

    @Override
    protected void onReset(Active<GpuEngine> a) {
        GpuEngine g = a.state();
        if (g != null) {
            try {
                g.close();
            } catch (IllegalStateException e) {
                // virglrenderer did not come back: it may still hold the guest's pages, so they must stay mapped
                rendererStuck = true;
                hostError("the renderer did not release the guest's resources: " + e.getMessage());
            }
        }
    }

    @Override
    public boolean touchesGuestMemoryAfterClose() {
        return rendererStuck || super.touchesGuestMemoryAfterClose();
    }

    /** The VM is gone: a virgl device gives the renderer back (every context and resource left goes with it). */
    @Override
    protected void onClose() {
        if (renderer != null) {
            renderer.release();
        }
    }

    @Override
    protected void onDeviceReset() {
        config().putInt(CONFIG_EVENTS_READ, 0).putInt(CONFIG_EVENTS_CLEAR, 0);
    }

    /** The current activation's 2D state, or null while inactive or in virgl (tests). */
    Gpu2d state() {
        Active<GpuEngine> a = active();
        return a != null && a.state() instanceof Gpu2d g ? g : null;
    }

    /** The renderer of a virgl device, or null (tests). */
    VirglRenderer renderer() {
        return renderer;
    }

    /** The current activation's virgl state, or null while inactive or in 2D (tests). */
    Gpu3d state3d() {
        Active<GpuEngine> a = active();
        return a != null && a.state() instanceof Gpu3d g ? g : null;
    }
}
