package org.krun.device.gpu.internal;

import org.krun.device.gpu.internal.GpuCommand.SetScanoutBlob;
import org.krun.spi.memory.GuestMemory;

/**
 * A guest-memory blob resource (VIRTIO_GPU_BLOB_MEM_GUEST, virtio 1.2 §5.7.6.7): {@code size} bytes in the
 * guest pages it was created with, which the host reads in place. Shown on a scanout through
 * SET_SCANOUT_BLOB, which gives the image's layout (format, size, plane 0's stride and offset); the host then
 * keeps a copy of the image (a {@link Resource} backed by the same pages) that flushes refresh.
 */
final class GuestBlob implements AutoCloseable {

    /** The largest guest blob (the guest's pages; the host holds only the copy a scanout needs). */
    static final long MAX_SIZE = 1L << 32;

    final int id;
    final long size;
    private final long[] addresses;
    private final int[] lengths;
    /** The host copy of the image on a scanout, with plane 0's layout in the blob; null until shown. */
    private Resource shadow;
    private long offset;
    private long stride;

    GuestBlob(int id, long size, long[] addresses, int[] lengths) {
        this.id = id;
        this.size = size;
        this.addresses = addresses;
        this.lengths = lengths;
    }

    /** Why a blob of {@code size} bytes cannot live in these guest pages, or null. */
    static String problem(GuestMemory memory, long size, long[] addresses, int[] lengths) {
        if (size <= 0 || size > MAX_SIZE) {
            return "size " + Long.toUnsignedString(size) + " is not 1 byte to 4 GiB";
        }
        long total = 0;
        for (int i = 0; i < addresses.length; i++) {
            long length = lengths[i] & 0xffffffffL;
            if (length != 0 && !memory.contains(addresses[i], length)) {
                return "entry " + i + " (0x" + Long.toHexString(addresses[i]) + ", " + length + " bytes) is not guest RAM";
            }
            total += length;
        }
        return total < size ? "its " + addresses.length + " entries hold " + total + " of its " + size + " bytes" : null;
    }

    int entries() {
        return addresses.length;
    }

    /** Host bytes the copy for a scanout takes now. */
    long hostBytes() {
        return shadow == null ? 0 : shadow.hostBytes();
    }

    /** Host bytes a copy for {@code s} would take. */
    static long hostBytes(SetScanoutBlob s) {
        return Resource.hostBytes(s.width() & 0xffffffffL, s.height() & 0xffffffffL);
    }

    /** Why {@code s} cannot show this blob (its image leaves the blob, or its rectangle the image), or null. */
    String layoutProblem(SetScanoutBlob s, int maxSide) {
        long w = s.width() & 0xffffffffL;
        long h = s.height() & 0xffffffffL;
        long st = s.strides()[0] & 0xffffffffL;
        long off = s.offsets()[0] & 0xffffffffL;
        if (w == 0 || h == 0 || w > maxSide || h > maxSide) {
            return "image " + w + "x" + h + " out of range";
        }
        if (st < w * PixelFormat.BYTES_PER_PIXEL) {
            return "stride " + st + " is shorter than a row of " + w + " pixels";
        }
        long span = (h - 1) * st + w * PixelFormat.BYTES_PER_PIXEL;
        if (off > size || span > size - off) {
            return "image of " + span + " bytes at offset " + off + " leaves blob " + id + " of " + size + " bytes";
        }
        if (!s.rect().within(w, h)) {
            return s.rect() + " is not inside the " + w + "x" + h + " image";
        }
        return null;
    }

    /** Takes {@code s}'s layout (checked by {@link #layoutProblem}): a new copy when the image changed. */
    void layout(SetScanoutBlob s, PixelFormat format) {
        int w = s.width();
        int h = s.height();
        if (shadow == null || shadow.width != w || shadow.height != h || shadow.format != format) {
            Resource next = new Resource(id, format, w, h);
            if (shadow != null) {
                shadow.close();
            }
            shadow = next;
            shadow.attach(addresses, lengths);
        }
        offset = s.offsets()[0] & 0xffffffffL;
        stride = s.strides()[0] & 0xffffffffL;
    }

    /** The host copy (after {@link #layout}), or null. */
    Resource shadow() {
        return shadow;
    }

    /**
     * Copies {@code area} (inside the image) from the guest pages into the host copy.
     *
     * @throws org.krun.spi.memory.GuestMemoryException if a page is no longer guest RAM
     */
    void copy(GuestMemory memory, Rect area) {
        long rowBytes = area.width() * PixelFormat.BYTES_PER_PIXEL;
        for (long y = area.y(); y < area.y() + area.height(); y++) {
            long from = offset + y * stride + area.x() * PixelFormat.BYTES_PER_PIXEL;
            long to = y * shadow.stride() + area.x() * PixelFormat.BYTES_PER_PIXEL;
            shadow.copyFromBacking(memory, from, to, rowBytes);
        }
    }

    @Override
    public void close() {
        if (shadow != null) {
            shadow.close();
            shadow = null;
        }
    }
}
