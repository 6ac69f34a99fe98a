package org.krun.device.virtiofs.internal;

import java.lang.System.Logger.Level;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.krun.api.FsShareSpec;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.VirtioIds;

/**
 * virtio-fs (virtio 1.2 §5.11): a hiprio queue (FORGET) and one request queue, served by a
 * {@link FuseServer} over a {@link PassthroughFs} of the share, one per activation. Requests run on a
 * small worker pool so several are in flight at once (and a waiting lock never stalls the rest);
 * completions go back to the event loop, the only thread that touches the queues.
 */
final class VirtioFs extends AbstractVirtioDevice<FuseServer> {

    static final int HIPRIO_QUEUE = 0;
    static final int REQUEST_QUEUE = 1;
    static final int QUEUE_SIZE = 1024;
    /** struct virtio_fs_config: char tag[36]; le32 num_request_queues. */
    static final int CONFIG_SIZE = 40;
    static final int CONFIG_NUM_REQUEST_QUEUES = 36;
    static final int MAX_WORKERS = 16;

    private final FsShareSpec spec;
    private final ThreadPoolExecutor workers;

    VirtioFs(FsShareSpec spec) {
        super("virtio-fs " + spec.tag(), VirtioIds.FS, 0, 2, QUEUE_SIZE, CONFIG_SIZE);
        this.spec = spec;
        // read-only (virtio 1.2 §5.11.4)
        config().putBytes(0, spec.tag().getBytes(StandardCharsets.UTF_8)).putInt(CONFIG_NUM_REQUEST_QUEUES, 1);
        AtomicInteger n = new AtomicInteger();
        String name = "krun-fs-" + spec.tag().replace('/', '_');
        this.workers = new ThreadPoolExecutor(MAX_WORKERS, MAX_WORKERS, 10, TimeUnit.SECONDS, new LinkedBlockingQueue<>(),
                r -> Thread.ofPlatform().daemon(true).name(name + "-" + n.incrementAndGet()).unstarted(r));
        workers.allowCoreThreadTimeOut(true);
    }

    @Override
    protected FuseServer onActivate(Active<FuseServer> a) {
        return new FuseServer(new PassthroughFs(spec.directory(), spec.readOnly()));
    }

    @Override
    protected void onReset(Active<FuseServer> a) {
        a.state().fs().close();
    }

    @Override
    protected void onQueueNotify(Active<FuseServer> a, int queue) {
        if (queue == HIPRIO_QUEUE) {
            serveHiprio(a);
        } else if (queue == REQUEST_QUEUE) {
            serveRequests(a);
        }
    }

    /** FORGET and BATCH_FORGET: quick, no reply, served on the loop in order. */
    private void serveHiprio(Active<FuseServer> a) {
        DescriptorChain chain;
        while ((chain = a.pop(HIPRIO_QUEUE)) != null) {
            int len = a.state().handle(chain.reader(a.memory()), chain.writer(a.memory()), () -> false);
            a.addUsed(HIPRIO_QUEUE, chain.head(), len);
        }
    }

    private void serveRequests(Active<FuseServer> a) {
        DescriptorChain chain;
        while ((chain = a.pop(REQUEST_QUEUE)) != null) {
            DescriptorChain c = chain;
            if (!a.submit(workers, REQUEST_QUEUE, c.head(),
                    () -> a.state().handle(c.reader(a.memory()), c.writer(a.memory()), () -> !a.isCurrent()))) {
                a.addUsed(REQUEST_QUEUE, c.head(), 0); // the device is closing
            }
        }
    }

    @Override
    protected void onClose() {
        workers.shutdownNow();
        try {
            if (!workers.awaitTermination(5, TimeUnit.SECONDS)) {
                log().log(Level.WARNING, "virtio-fs workers for " + spec.tag() + " did not stop");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
