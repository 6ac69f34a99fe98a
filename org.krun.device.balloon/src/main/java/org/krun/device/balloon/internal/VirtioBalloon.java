package org.krun.device.balloon.internal;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.function.BiConsumer;

import org.krun.api.BalloonSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.posix.PosixException;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.InvalidChainException;
import org.krun.spi.virtio.RateLimitedLog;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-balloon (virtio 1.2 §5.5) with free page reporting. Pages the driver puts in the balloon
 * (inflateq) and free memory it reports (reporting_vq) are released on the host before the request is
 * acknowledged, as §5.5.6 and §5.5.6.7.2 allow; deflation needs nothing from the host, since a released
 * page simply reads as zeros when the guest uses it again. The device never asks for pages itself:
 * {@code num_pages} stays 0.
 *
 * <p>Offered: VIRTIO_BALLOON_F_DEFLATE_ON_OOM, and VIRTIO_BALLOON_F_PAGE_REPORTING when the spec asks for
 * it. Not offered: MUST_TELL_HOST (deflation is a courtesy here), STATS_VQ and FREE_PAGE_HINT (no use for
 * them yet), PAGE_POISON (released pages read as zeros, so a guest that poisons free pages must not report
 * them: Linux then turns reporting off itself).
 *
 * <p>Queue numbering: §5.5.2 lists reporting_vq as queue 4, but Linux (virtio_mmio's vm_find_vqs) numbers
 * only the queues that exist, as QEMU and Firecracker do; without STATS_VQ and FREE_PAGE_HINT,
 * reporting_vq is queue 2.
 *
 * <p>All queue work runs on the VM's event loop; configuration space is accessed from vCPU threads.
 */
final class VirtioBalloon implements VirtioDevice {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioBalloon.class);

    static final long F_MUST_TELL_HOST = 1L;
    static final long F_STATS_VQ = 1L << 1;
    static final long F_DEFLATE_ON_OOM = 1L << 2;
    static final long F_FREE_PAGE_HINT = 1L << 3;
    static final long F_PAGE_POISON = 1L << 4;
    static final long F_PAGE_REPORTING = 1L << 5;

    static final int INFLATEQ = 0;
    static final int DEFLATEQ = 1;
    static final int REPORTING_VQ = 2;
    /** Linux needs at least PAGE_REPORTING_CAPACITY (32) entries on reporting_vq and uses no indirect descriptors there. */
    static final int QUEUE_SIZE = 128;

    /** struct virtio_balloon_config (§5.5.4): num_pages, actual, free_page_hint_cmd_id, poison_val. */
    static final int CONFIG_SIZE = 16;
    static final int CONFIG_NUM_PAGES = 0;
    static final int CONFIG_ACTUAL = 4;

    private sealed interface State permits Inactive, Active {
    }

    private record Inactive() implements State {
    }

    /** @param reportingVq the index of reporting_vq, or -1 when the driver did not accept PAGE_REPORTING */
    private record Active(DeviceContext context, GuestMemory mem, int reportingVq) implements State {
    }

    private static final State INACTIVE = new Inactive();

    private final BalloonSpec spec;
    private final PageDiscarder discarder;
    private final RateLimitedLog guestErrors = new RateLimitedLog(LOG::warn, java.time.Duration.ofSeconds(10));
    private final RateLimitedLog hostErrors = new RateLimitedLog(LOG::warn, java.time.Duration.ofSeconds(10));
    private volatile State state = INACTIVE;
    /** The driver's count of pages in the balloon (the config field {@code actual}). */
    private volatile int actual;

    // statistics: written on the event loop, read anywhere
    private volatile long inflatedPages;
    private volatile long deflatedRequests;
    private volatile long freePageReports;
    private volatile long reportedBytes;
    private volatile long releasedBytes;
    private volatile long rejected;

    VirtioBalloon(BalloonSpec spec, PageDiscarder discarder) {
        this.spec = spec;
        this.discarder = discarder;
    }

    @Override
    public int deviceType() {
        return VirtioIds.BALLOON;
    }

    @Override
    public long deviceFeatures() {
        return F_DEFLATE_ON_OOM | (spec.freePageReporting() ? F_PAGE_REPORTING : 0);
    }

    @Override
    public int queueCount() {
        return spec.freePageReporting() ? 3 : 2;
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
        ByteBuffer b = ByteBuffer.allocate(CONFIG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0); // num_pages: the device asks for nothing
        b.putInt(actual);
        b.putInt(0); // free_page_hint_cmd_id: FREE_PAGE_HINT not offered
        b.putInt(0); // poison_val: PAGE_POISON not offered
        System.arraycopy(b.array(), offset, data, 0, data.length);
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // Only actual is the driver's to write (§5.5.4); bytes of it may arrive in separate writes.
        synchronized (this) {
            int value = actual;
            for (int i = 0; i < data.length; i++) {
                int at = offset + i - CONFIG_ACTUAL;
                if (at >= 0 && at < 4) {
                    value = (value & ~(0xff << (8 * at))) | ((data[i] & 0xff) << (8 * at));
                }
            }
            actual = value;
        }
    }

    @Override
    public void activate(DeviceContext context) {
        boolean reporting = spec.freePageReporting() && context.hasFeature(F_PAGE_REPORTING);
        state = new Active(context, context.memory(), reporting ? REPORTING_VQ : -1);
    }

    @Override
    public void reset() {
        state = INACTIVE;
        actual = 0;
    }

    @Override
    public void queueNotify(int index) {
        if (!(state instanceof Active a)) {
            return;
        }
        if (index == INFLATEQ) {
            drain(a, index, this::inflate);
        } else if (index == DEFLATEQ) {
            drain(a, index, this::deflate);
        } else if (index == a.reportingVq()) {
            drain(a, index, this::report);
        }
    }

    /** Handles every available chain of queue {@code index}, returning each as used with length 0. */
    private void drain(Active a, int index, BiConsumer<Active, DescriptorChain> handler) {
        Virtqueue q = a.context().queues().get(index);
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        while (state == a) {
            DescriptorChain chain;
            try {
                chain = q.pop(a.mem());
            } catch (InvalidChainException e) {
                rejected++;
                if (e.head() < 0) {
                    guestErrors.warn("virtio-balloon: queue " + index + " unusable: " + e.getMessage());
                    a.context().needsReset(e.getMessage());
                    state = INACTIVE;
                    break;
                }
                guestErrors.warn("virtio-balloon: malformed descriptor chain returned unused: " + e.getMessage());
                q.addUsed(a.mem(), e.head(), 0);
                used = true;
                continue;
            }
            if (chain == null) {
                break;
            }
            handler.accept(a, chain);
            // Acknowledged only after the pages are released (§5.5.6, §5.5.6.7.2); the device writes nothing.
            q.addUsed(a.mem(), chain.head(), 0);
            used = true;
        }
        if (used && q.needsInterrupt(a.mem())) {
            a.context().interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    private void inflate(Active a, DescriptorChain chain) {
        BalloonRequests.Pages pages = BalloonRequests.pageFrameNumbers(chain, a.mem());
        release(pages, "inflateq");
        inflatedPages += pages.bytes() / BalloonRequests.PAGE_SIZE;
    }

    private void deflate(Active a, DescriptorChain chain) {
        // Without MUST_TELL_HOST the guest may use the pages before this (§5.5.6): nothing to do on the host.
        deflatedRequests++;
    }

    private void report(Active a, DescriptorChain chain) {
        BalloonRequests.Pages pages = BalloonRequests.reportedBuffers(chain, a.mem());
        release(pages, "reporting_vq");
        freePageReports++;
        reportedBytes += pages.bytes();
    }

    private void release(BalloonRequests.Pages pages, String queue) {
        if (pages.rejected() > 0) {
            rejected += pages.rejected();
            guestErrors.warn("virtio-balloon: " + queue + ": " + pages.rejected() + " refused: " + pages.problem());
        }
        for (MemorySegment range : pages.ranges()) {
            try {
                discarder.discard(range);
                releasedBytes += range.byteSize();
            } catch (PosixException e) {
                // The pages stay: harmless for the guest. The host failure is logged, not fatal.
                hostErrors.warn("virtio-balloon: releasing guest memory failed: " + e.getMessage());
            }
        }
    }

    long inflatedPages() {
        return inflatedPages;
    }

    long deflatedRequests() {
        return deflatedRequests;
    }

    /** Free page reports acknowledged. */
    long freePageReports() {
        return freePageReports;
    }

    /** Bytes the guest reported free (valid ranges only). */
    long reportedBytes() {
        return reportedBytes;
    }

    /** Bytes released on the host, by inflation and free page reporting. */
    long releasedBytes() {
        return releasedBytes;
    }

    /** Malformed chains, pages and ranges refused. */
    long rejected() {
        return rejected;
    }

    int actual() {
        return actual;
    }

    @Override
    public void close() {
        LOG.debug("virtio-balloon: {} free page reports ({} MiB), {} pages inflated, {} MiB released, {} refused",
                freePageReports, reportedBytes >> 20, inflatedPages, releasedBytes >> 20, rejected);
    }
}
