package org.krun.api;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Objects;

/**
 * A virtio-blk disk backed by a host file (or block device). The guest sees the disks of a VM as
 * {@code /dev/vda}, {@code /dev/vdb}, ... in the order they appear in {@link VmConfig#devices()}.
 *
 * <p>Made by {@link #raw(Path)} and refined with the {@code with...} methods, so options can be added
 * without breaking callers. Immutable; equal when all its properties are.
 */
public final class DiskSpec implements DeviceSpec {

    /** The device type of virtio-blk. */
    public static final String TYPE = "blk";
    /** The longest serial virtio-blk can carry (virtio 1.2 §5.2.6, VIRTIO_BLK_ID_BYTES). */
    public static final int MAX_ID_BYTES = 20;

    /** The on-disk format of an image. */
    public enum Format {
        /** The file is the disk, byte for byte. */
        RAW,
        /**
         * QEMU's copy-on-write format, versions 2 and 3, read and written, without backing files, encryption,
         * external data files or extended L2 entries (such images are refused when the VM is created, as are
         * images marked dirty or corrupt, and writable images with internal snapshots). zlib-compressed
         * clusters are read; a write to one stores the cluster uncompressed in a new place.
         */
        QCOW2;

        /** Parses {@code raw} or {@code qcow2} (any case). */
        public static Format parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "raw" -> RAW;
                case "qcow2" -> QCOW2;
                default -> throw new VmConfigException("unknown disk format '" + s + "' (use raw or qcow2)");
            };
        }
    }

    /**
     * What the guest's flushes and writes promise. Whatever the mode, a write has reached the host kernel
     * when the guest sees it complete, so a crash of krun itself (even {@code kill -9}) loses nothing the
     * guest saw completed; the modes differ in what survives a crash of the host.
     */
    public enum Sync {
        /**
         * Guest flushes complete at once without flushing the host: the fastest, and data the guest
         * flushed can still be lost if the host crashes or loses power. For scratch disks.
         */
        NONE,
        /**
         * A guest flush (an {@code fsync} in the guest, a journal commit) returns once everything written
         * before it is on the host's stable storage ({@code fdatasync}), as with a disk that has a volatile
         * write cache. The default, and libkrun's recommended mode.
         */
        RELAXED,
        /**
         * Write-through: every write, including qcow2 metadata, is on the host's stable storage before it
         * completes ({@code O_DSYNC}), and flushes sync as in {@link #RELAXED}. Safest, slowest.
         */
        FULL;

        /** Parses {@code none}, {@code relaxed} or {@code full} (any case). */
        public static Sync parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "none" -> NONE;
                case "relaxed" -> RELAXED;
                case "full" -> FULL;
                default -> throw new VmConfigException("unknown disk sync mode '" + s + "' (use none, relaxed or full)");
            };
        }
    }

    private final Path file;
    private final boolean readOnly;
    private final String id;
    private final Format format;
    private final Sync sync;
    private final boolean direct;

    private DiskSpec(Path file, boolean readOnly, String id, Format format, Sync sync, boolean direct) {
        this.file = Objects.requireNonNull(file, "file");
        this.readOnly = readOnly;
        this.id = id == null ? "" : id;
        this.format = format == null ? Format.RAW : format;
        this.sync = sync == null ? Sync.RELAXED : sync;
        this.direct = direct;
        if (this.id.getBytes(StandardCharsets.US_ASCII).length > MAX_ID_BYTES || this.id.length() > MAX_ID_BYTES) {
            throw new VmConfigException("disk id '" + this.id + "' is longer than " + MAX_ID_BYTES + " bytes");
        }
        for (int i = 0; i < this.id.length(); i++) {
            char c = this.id.charAt(i);
            if (c < 0x20 || c > 0x7e) {
                throw new VmConfigException("disk id must be printable ASCII: '" + this.id + "'");
            }
        }
    }

    /** A writable raw disk with no id, relaxed sync, through the page cache. */
    public static DiskSpec raw(Path file) {
        return new DiskSpec(file, false, "", Format.RAW, Sync.RELAXED, false);
    }

    /** The host image file; it must exist (krun never creates or resizes it). */
    public Path file() {
        return file;
    }

    /**
     * Whether the guest may only read: the device offers VIRTIO_BLK_F_RO, the file is opened read-only,
     * and writes, discards and write-zeroes fail with an I/O error.
     */
    public boolean readOnly() {
        return readOnly;
    }

    /**
     * The disk's serial as the guest reads it (VIRTIO_BLK_T_GET_ID, {@code /sys/block/vdX/serial}):
     * printable ASCII, at most {@value #MAX_ID_BYTES} bytes; empty for none.
     */
    public String id() {
        return id;
    }

    /**
     * How the file is laid out; the user names it, krun never guesses it from the contents (a raw image
     * holding a qcow2 header from a guest must stay raw).
     */
    public Format format() {
        return format;
    }

    /** What a guest flush, and a write, promise about the host's storage. */
    public Sync sync() {
        return sync;
    }

    /**
     * Whether the file is opened with {@code O_DIRECT}: guest I/O bypasses the host page cache (requests
     * whose buffers or offsets do not suit it go through the page cache instead).
     */
    public boolean direct() {
        return direct;
    }

    /** This disk, read-only or not. */
    public DiskSpec withReadOnly(boolean readOnly) {
        return new DiskSpec(file, readOnly, id, format, sync, direct);
    }

    /** This disk with serial {@code id}. */
    public DiskSpec withId(String id) {
        return new DiskSpec(file, readOnly, id, format, sync, direct);
    }

    /** This disk in {@code format}. */
    public DiskSpec withFormat(Format format) {
        return new DiskSpec(file, readOnly, id, format, sync, direct);
    }

    /** This disk with sync mode {@code sync}. */
    public DiskSpec withSync(Sync sync) {
        return new DiskSpec(file, readOnly, id, format, sync, direct);
    }

    /** This disk with or without {@code O_DIRECT}. */
    public DiskSpec withDirect(boolean direct) {
        return new DiskSpec(file, readOnly, id, format, sync, direct);
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DiskSpec d && file.equals(d.file) && readOnly == d.readOnly && id.equals(d.id)
                && format == d.format && sync == d.sync && direct == d.direct;
    }

    @Override
    public int hashCode() {
        return Objects.hash(file, readOnly, id, format, sync, direct);
    }

    @Override
    public String toString() {
        return "DiskSpec[file=" + file + ", readOnly=" + readOnly + ", id=" + id + ", format=" + format + ", sync="
                + sync + ", direct=" + direct + "]";
    }
}
