package org.krun.device.virtiofs.internal;

import java.nio.charset.StandardCharsets;
import java.util.Queue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.krun.api.FsShareSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-fs (virtio 1.2 §5.11): a hiprio queue (FORGET) and one request queue, served by a
 * {@link FuseServer} over a {@link PassthroughFs} of the share. Requests run on a small worker pool so
 * several are in flight at once (and a waiting lock never stalls the rest); completions go back to the
 * event loop, the only thread that touches the queues.
 */
final class VirtioFs implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioFs.class);

    static final int HIPRIO_QUEUE = 0;
    static final int REQUEST_QUEUE = 1;
    static final int QUEUE_SIZE = 1024;
    /** struct virtio_fs_config: char tag[36]; le32 num_request_queues. */
    static final int CONFIG_SIZE = 40;
    static final int MAX_WORKERS = 16;

    private sealed interface State permits Inactive, Active {
    }

    private record Inactive() implements State {
    }

    private record Active(GuestMemory mem, Virtqueue hiprio, Virtqueue requests, InterruptTrigger interrupt,
            EventLoop loop, DeviceContext context, FuseServer server, int epoch) implements State {
    }

    private final FsShareSpec spec;
    private final byte[] config = new byte[CONFIG_SIZE];
    private final ThreadPoolExecutor workers;
    private final AtomicInteger epoch = new AtomicInteger();
    private final Queue<long[]> completions = new ConcurrentLinkedQueue<>();
    private final AtomicBoolean completionScheduled = new AtomicBoolean();
    private volatile State state = new Inactive();

    VirtioFs(FsShareSpec spec) {
        this.spec = spec;
        byte[] tag = spec.tag().getBytes(StandardCharsets.UTF_8);
        System.arraycopy(tag, 0, config, 0, tag.length);
        config[36] = 1; // num_request_queues, little-endian
        AtomicInteger n = new AtomicInteger();
        String name = "krun-fs-" + spec.tag().replace('/', '_');
        this.workers = new ThreadPoolExecutor(MAX_WORKERS, MAX_WORKERS, 10, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
                r -> Thread.ofPlatform().daemon(true).name(name + "-" + n.incrementAndGet()).unstarted(r));
        workers.allowCoreThreadTimeOut(true);
    }

    @Override
    public int deviceType() {
        return VirtioIds.FS;
    }

    @Override
    public long deviceFeatures() {
        return 0;
    }

    @Override
    public int queueCount() {
        return 2;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public void readConfig(int offset, byte[] data) {
        System.arraycopy(config, offset, data, 0, data.length);
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // read-only (virtio 1.2 §5.11.4)
    }

    @Override
    public void activate(DeviceContext context) {
        PassthroughFs fs = new PassthroughFs(spec.directory(), spec.readOnly());
        state = new Active(context.memory(), context.queues().get(HIPRIO_QUEUE), context.queues().get(REQUEST_QUEUE),
                context.interrupt(), context.eventLoop(), context, new FuseServer(fs), epoch.incrementAndGet());
    }

    @Override
    public void reset() {
        State s = state;
        state = new Inactive();
        epoch.incrementAndGet(); // requests still running finish into nothing
        if (s instanceof Active a) {
            a.server().fs().close();
        }
    }

    @Override
    public void queueNotify(int index) {
        if (!(state instanceof Active a)) {
            return;
        }
        if (index == HIPRIO_QUEUE) {
            serveHiprio(a);
        } else if (index == REQUEST_QUEUE) {
            serveRequests(a);
        }
    }

    /** FORGET and BATCH_FORGET: quick, no reply, served on the loop in order. */
    private void serveHiprio(Active a) {
        Virtqueue q = a.hiprio();
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        DescriptorChain chain;
        while ((chain = pop(a, q)) != null) {
            int len = a.server().handle(chain.reader(a.mem()), chain.writer(a.mem()), () -> false);
            q.addUsed(a.mem(), chain.head(), len);
            used = true;
        }
        if (used && q.needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    private void serveRequests(Active a) {
        Virtqueue q = a.requests();
        if (!q.ready()) {
            return;
        }
        DescriptorChain chain;
        while ((chain = pop(a, q)) != null) {
            DescriptorChain c = chain;
            workers.execute(() -> {
                int len = 0;
                try {
                    len = a.server().handle(c.reader(a.mem()), c.writer(a.mem()), () -> epoch.get() != a.epoch());
                } catch (RuntimeException e) {
                    LOG.warn("virtio-fs request failed: {}", e.toString());
                }
                completions.add(new long[] {a.epoch(), c.head(), len});
                if (completionScheduled.compareAndSet(false, true)) {
                    a.loop().execute(this::complete);
                }
            });
        }
    }

    /** On the loop: hands finished requests back to the guest, one interrupt for the batch. */
    private void complete() {
        completionScheduled.set(false);
        if (!(state instanceof Active a)) {
            completions.clear();
            return;
        }
        boolean used = false;
        long[] c;
        while ((c = completions.poll()) != null) {
            if ((int) c[0] != a.epoch()) {
                continue; // from before a reset
            }
            a.requests().addUsed(a.mem(), (int) c[1], (int) c[2]);
            used = true;
        }
        if (used && a.requests().needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    private static DescriptorChain pop(Active a, Virtqueue q) {
        return q.popValid(a.mem(), a.context(), m -> LOG.debug("malformed descriptor chain returned unused: {}", m));
    }

    @Override
    public void close() {
        epoch.incrementAndGet();
        workers.shutdownNow();
        try {
            if (!workers.awaitTermination(5, TimeUnit.SECONDS)) {
                LOG.warn("virtio-fs workers for {} did not stop", spec.tag());
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        if (state instanceof Active a) {
            a.server().fs().close();
        }
        state = new Inactive();
    }
}
