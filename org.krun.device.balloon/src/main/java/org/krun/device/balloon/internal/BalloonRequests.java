package org.krun.device.balloon.internal;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.DescriptorChain;

/**
 * Parses balloon requests into the host memory they name, checked against guest RAM; nothing here touches
 * that memory. Both kinds of request come from the guest, so every page is validated: page-aligned, whole
 * pages, inside one RAM region.
 */
final class BalloonRequests {

    /** Balloon pages are 4 KiB whatever the guest's page size (VIRTIO_BALLOON_PFN_SHIFT, virtio 1.2 §5.5.6). */
    static final int PFN_SHIFT = 12;
    static final long PAGE_SIZE = 1L << PFN_SHIFT;
    /**
     * The most page frame numbers one inflate request may carry; the rest are ignored. Linux sends at most
     * 256 (VIRTIO_BALLOON_ARRAY_PFNS_MAX), FreeBSD 256; the bound keeps one request's work on the event loop
     * small: at most this many host ranges (one madvise each) and about a megabyte of bookkeeping.
     */
    static final int MAX_PFNS_PER_REQUEST = 1 << 12;
    private static final int PFN_BATCH = 1024;

    private BalloonRequests() {
    }

    /**
     * What one request names.
     *
     * @param ranges the host memory to release: page-aligned, whole pages, in guest RAM
     * @param bytes their total size
     * @param rejected pages or buffers refused (outside RAM, misaligned, beyond the bound)
     * @param problem the first reason for a refusal, or null
     */
    record Pages(List<MemorySegment> ranges, long bytes, long rejected, String problem) {
    }

    /** Collects valid guest ranges, merging contiguous ones, and counts refusals. */
    private static final class Collector {
        private final GuestMemory mem;
        private final List<MemorySegment> ranges = new ArrayList<>();
        private long bytes;
        private long rejected;
        private String problem;
        private long start = -1;
        private long length;

        Collector(GuestMemory mem) {
            this.mem = mem;
        }

        /** Adds one guest page; extends the current range when it follows it in the same RAM region. */
        void addPage(long address) {
            if (!mem.contains(address, PAGE_SIZE)) {
                if (problem == null) {
                    reject("page 0x" + Long.toHexString(address) + " is not guest RAM");
                } else {
                    rejected++; // only the first reason is kept: no message built per page
                }
                return;
            }
            if (start >= 0 && address == start + length && mem.contains(start, length + PAGE_SIZE)) {
                length += PAGE_SIZE;
                return;
            }
            flush();
            start = address;
            length = PAGE_SIZE;
        }

        void addHostRange(MemorySegment range) {
            ranges.add(range);
            bytes += range.byteSize();
        }

        void reject(String why) {
            rejected++;
            if (problem == null) {
                problem = why;
            }
        }

        private void flush() {
            if (start >= 0) {
                addHostRange(mem.slice(start, length));
                start = -1;
                length = 0;
            }
        }

        Pages pages() {
            flush();
            return new Pages(List.copyOf(ranges), bytes, rejected, problem);
        }
    }

    /**
     * An inflateq request (virtio 1.2 §5.5.6): a device-readable array of little-endian 32-bit page frame
     * numbers, each naming a 4 KiB page. Pages outside guest RAM are refused one by one; the array is read
     * in small batches, so its length costs the host nothing to buffer.
     */
    static Pages pageFrameNumbers(DescriptorChain chain, GuestMemory mem) {
        Collector c = new Collector(mem);
        ChainReader r = chain.reader(mem);
        long available = r.remaining();
        if (available % 4 != 0) {
            c.reject("page frame number array of " + available + " bytes is not a whole number of entries");
        }
        long count = available / 4;
        if (count > MAX_PFNS_PER_REQUEST) {
            c.reject("request of " + count + " pages exceeds " + MAX_PFNS_PER_REQUEST + "; the rest is ignored");
            count = MAX_PFNS_PER_REQUEST;
        }
        byte[] batch = new byte[PFN_BATCH * 4];
        try {
            while (count > 0) {
                int n = (int) Math.min(count, PFN_BATCH);
                int read = r.read(batch, 0, n * 4);
                for (int i = 0; i < read / 4; i++) {
                    long pfn = (batch[4 * i] & 0xffL) | (batch[4 * i + 1] & 0xffL) << 8
                            | (batch[4 * i + 2] & 0xffL) << 16 | (batch[4 * i + 3] & 0xffL) << 24;
                    c.addPage(pfn << PFN_SHIFT);
                }
                count -= n;
            }
        } catch (GuestMemoryException e) {
            c.reject("page frame number array outside guest RAM: " + e.getMessage());
        }
        return c.pages();
    }

    /**
     * A reporting_vq request (virtio 1.2 §5.5.6.7): the device-writable buffers are themselves the free
     * memory reported (Linux adds one buffer per free block, 32 at most). A buffer that is not whole pages
     * is refused alone; when any buffer lies outside guest RAM the whole report is refused, which the spec
     * allows: the device MAY change reported pages, it need not.
     *
     * <p>Alignment is checked on the host address: guest RAM regions start on page boundaries in both
     * guest-physical and host address space (the host mapping is mmap'd), so a buffer is page-aligned in
     * the guest exactly when it is on the host, and madvise(2) acts on host pages.
     */
    static Pages reportedBuffers(DescriptorChain chain, GuestMemory mem) {
        Collector c = new Collector(mem);
        if (chain.readableBytes() > 0) {
            c.reject("free page report with " + chain.readableBytes() + " device-readable bytes");
        }
        List<MemorySegment> buffers;
        try {
            var w = chain.writer(mem);
            buffers = w.take(w.remaining());
        } catch (GuestMemoryException e) {
            c.reject("free page report outside guest RAM: " + e.getMessage());
            return c.pages();
        }
        for (MemorySegment b : buffers) {
            if (b.address() % PAGE_SIZE != 0 || b.byteSize() % PAGE_SIZE != 0) {
                c.reject("reported range at host 0x" + Long.toHexString(b.address()) + " (+" + b.byteSize()
                        + ") is not whole pages");
            } else {
                c.addHostRange(b);
            }
        }
        return c.pages();
    }
}
