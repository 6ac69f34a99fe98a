package org.krun.device.balloon.internal;

import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;

import org.krun.api.BalloonSpec;
import org.krun.posix.PosixException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioIds;

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
final class VirtioBalloon extends AbstractVirtioDevice<VirtioBalloon.Queues> implements SnapshottableDevice {

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

    /** @param reportingVq the index of reporting_vq, or -1 when the driver did not accept PAGE_REPORTING */
    record Queues(int reportingVq) {
    }

    private final BalloonSpec spec;
    private final PageDiscarder discarder;

    // statistics: written on the event loop, read anywhere
    private volatile long inflatedPages;
    private volatile long deflatedRequests;
    private volatile long freePageReports;
    private volatile long reportedBytes;
    private volatile long releasedBytes;
    private volatile long rejected;

    VirtioBalloon(BalloonSpec spec, PageDiscarder discarder) {
        super("virtio-balloon", VirtioIds.BALLOON,
                F_DEFLATE_ON_OOM | (spec.freePageReporting() ? F_PAGE_REPORTING : 0),
                spec.freePageReporting() ? 3 : 2, QUEUE_SIZE, CONFIG_SIZE);
        this.spec = spec;
        this.discarder = discarder;
        // num_pages stays 0 (the device asks for nothing); free_page_hint_cmd_id and poison_val belong to
        // features not offered. Only actual is the driver's to write (§5.5.4), possibly a byte at a time.
        config().driverWritable(CONFIG_ACTUAL, 4);
    }

    /**
     * The guest's page reporting order with free page reporting: blocks of 2^5 pages (128 KiB) and up. Linux
     * reports only while more than its low watermark plus 32 blocks of this order are free, and its default
     * order is the pageblock's (2^10 pages, 4 MiB, in krun's kernel without hugetlbfs), so a guest with
     * less than about 130 MiB free never reported anything (bench/density: 64 MiB guests, none of 100 did);
     * at order 5 it takes 4 MiB free. krun asks for no transparent huge pages for guest RAM (no MADV_HUGEPAGE),
     * so releasing 128 KiB at a time splits none where the host's THP setting is "madvise".
     */
    static final int PAGE_REPORTING_ORDER = 5;

    /** With free page reporting, the guest kernel's reporting order ({@link #PAGE_REPORTING_ORDER}). */
    @Override
    public GuestSetup guestSetup() {
        return spec.freePageReporting()
                ? new GuestSetup(List.of("page_reporting.page_reporting_order=" + PAGE_REPORTING_ORDER), Map.of(), Map.of())
                : GuestSetup.NONE;
    }

    static final int STATE_VERSION = 1;
    static final int STATE_BYTES = 13;

    @Override
    protected Queues onActivate(Active<Queues> a) {
        boolean reporting = spec.freePageReporting() && a.hasFeature(F_PAGE_REPORTING);
        return new Queues(reporting ? REPORTING_VQ : -1);
    }

    @Override
    protected void onDeviceReset() {
        config().putInt(CONFIG_ACTUAL, 0);
    }

    @Override
    protected void onQueueNotify(Active<Queues> a, int queue) {
        if (queue == REPORTING_VQ && a.state().reportingVq() < 0) {
            return; // the driver did not accept PAGE_REPORTING: there is no reporting_vq
        }
        DescriptorChain chain;
        while ((chain = a.pop(queue)) != null) {
            if (queue == INFLATEQ) {
                inflate(a, chain);
            } else if (queue == DEFLATEQ) {
                deflate();
            } else if (queue == a.state().reportingVq()) {
                report(a, chain);
            }
            // Acknowledged only after the pages are released (§5.5.6, §5.5.6.7.2); the device writes nothing.
            a.addUsed(queue, chain.head(), 0);
        }
    }

    private void inflate(Active<Queues> a, DescriptorChain chain) {
        BalloonRequests.Pages pages = BalloonRequests.pageFrameNumbers(chain, a.memory());
        release(pages, "inflateq");
        inflatedPages += pages.bytes() / BalloonRequests.PAGE_SIZE;
    }

    private void deflate() {
        // Without MUST_TELL_HOST the guest may use the pages before this (§5.5.6): nothing to do on the host.
        deflatedRequests++;
    }

    private void report(Active<Queues> a, DescriptorChain chain) {
        BalloonRequests.Pages pages = BalloonRequests.reportedBuffers(chain, a.memory());
        release(pages, "reporting_vq");
        freePageReports++;
        reportedBytes += pages.bytes();
    }

    private void release(BalloonRequests.Pages pages, String queue) {
        if (pages.rejected() > 0) {
            rejected += pages.rejected();
            guestError(queue + ": " + pages.rejected() + " refused: " + pages.problem());
        }
        for (MemorySegment range : pages.ranges()) {
            try {
                discarder.discard(range);
                releasedBytes += range.byteSize();
            } catch (PosixException e) {
                // The pages stay: harmless for the guest. The host failure is logged, not fatal.
                hostError("releasing guest memory failed: " + e.getMessage());
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

    /** Pages and ranges refused. */
    long rejected() {
        return rejected;
    }

    /** The driver's count of pages in the balloon (the config field {@code actual}). */
    int actual() {
        return config().getInt(CONFIG_ACTUAL);
    }

    @Override
    protected void onClose() {
        log().log(Level.DEBUG, () -> "virtio-balloon: " + freePageReports + " free page reports (" + (reportedBytes >> 20)
                + " MiB), " + inflatedPages + " pages inflated, " + (releasedBytes >> 20) + " MiB released, "
                + rejected + " refused");
    }

    // ---- snapshots

    /**
     * Snapshots: every chain is acknowledged within the notification that took it, so the queues' indices
     * (the transport's) are the whole queue state. The device's own: num_pages (the target), actual (the
     * driver's count), and whether free page reporting was offered; whether the driver accepted it follows
     * from the saved features, as {@link #onActivate} derives it. Pages released before the snapshot read as
     * zeros in the snapshot's RAM; in a VM restored copy-on-write, releasing a page again returns it to the
     * snapshot's contents, which the driver does not rely on (it never assumes released pages are zero: no
     * PAGE_POISON).
     */
    @Override
    public byte[] saveState() {
        return ByteBuffer.allocate(STATE_BYTES).putInt(STATE_VERSION).putInt(config().getInt(CONFIG_NUM_PAGES))
                .putInt(config().getInt(CONFIG_ACTUAL)).put((byte) (spec.freePageReporting() ? 1 : 0)).array();
    }

    @Override
    public void restoreState(byte[] state) {
        ByteBuffer b = SnapshottableDevice.openState("virtio-balloon", state, STATE_BYTES, STATE_VERSION);
        int numPages = b.getInt();
        int actual = b.getInt();
        byte reporting = b.get();
        if (reporting != 0 && reporting != 1) {
            throw new IllegalArgumentException("virtio-balloon: saved state has free page reporting " + reporting);
        }
        if ((reporting == 1) != spec.freePageReporting()) {
            throw new IllegalArgumentException("virtio-balloon: the snapshot's balloon had free page reporting "
                    + (reporting == 1 ? "on" : "off") + ", this configuration's " + (spec.freePageReporting() ? "on" : "off"));
        }
        // The device never asks for pages (num_pages 0); a target it did not set is not taken from a file.
        if (numPages != 0) {
            throw new IllegalArgumentException("virtio-balloon: saved state asks for " + Integer.toUnsignedString(numPages)
                    + " pages; this device never does");
        }
        config().putInt(CONFIG_NUM_PAGES, numPages).putInt(CONFIG_ACTUAL, actual);
    }
}
