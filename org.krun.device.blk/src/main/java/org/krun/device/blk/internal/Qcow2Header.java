package org.krun.device.blk.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The qcow2 image header (QEMU docs/interop/qcow2.txt), versions 2 and 3, big-endian. {@link #parse}
 * reads it and refuses, with a one-line reason, every image this implementation cannot serve correctly.
 */
record Qcow2Header(
        int version,
        long backingFileOffset,
        int clusterBits,
        long size,
        int cryptMethod,
        int l1Size,
        long l1TableOffset,
        long refcountTableOffset,
        int refcountTableClusters,
        int nbSnapshots,
        long incompatibleFeatures,
        long compatibleFeatures,
        long autoclearFeatures,
        int refcountOrder,
        int headerLength,
        int compressionType) {

    static final int MAGIC = 0x514649fb; // "QFI\xfb"
    /** Bytes {@link #parse} needs: the version 3 header with compression_type and its padding. */
    static final int READ_SIZE = 112;

    static final int OFFSET_INCOMPATIBLE_FEATURES = 72;
    static final int OFFSET_AUTOCLEAR_FEATURES = 88;
    static final int OFFSET_REFCOUNT_TABLE = 48; // refcount_table_offset (8) then refcount_table_clusters (4)

    static final long INCOMPAT_DIRTY = 1L;
    static final long INCOMPAT_CORRUPT = 1L << 1;
    static final long INCOMPAT_EXTERNAL_DATA_FILE = 1L << 2;
    static final long INCOMPAT_COMPRESSION_TYPE = 1L << 3;
    static final long INCOMPAT_EXTENDED_L2 = 1L << 4;

    static final int MIN_CLUSTER_BITS = 9;
    static final int MAX_CLUSTER_BITS = 21;
    /** QEMU's limits (QCOW_MAX_L1_SIZE, QCOW_MAX_REFTABLE_SIZE): larger tables are damage, not images. */
    static final long MAX_L1_BYTES = 32L << 20;
    static final long MAX_REFTABLE_BYTES = 8L << 20;

    long clusterSize() {
        return 1L << clusterBits;
    }

    /** Entries in one L2 table (standard L2 entries: 8 bytes). */
    long l2Entries() {
        return clusterSize() / 8;
    }

    /**
     * Parses the first {@link #READ_SIZE} bytes of {@code file} (of {@code fileSize} bytes) and checks that
     * the image can be used ({@code writable}: also written).
     *
     * @throws Qcow2Exception naming the reason an image is refused
     */
    static Qcow2Header parse(byte[] head, long fileSize, boolean writable) throws Qcow2Exception {
        if (head.length < 72) {
            throw new Qcow2Exception("is too short for a qcow2 header");
        }
        ByteBuffer b = ByteBuffer.wrap(head).order(ByteOrder.BIG_ENDIAN);
        if (b.getInt(0) != MAGIC) {
            throw new Qcow2Exception("is not a qcow2 image (no QFI\\xfb magic); is it raw?");
        }
        int version = b.getInt(4);
        if (version != 2 && version != 3) {
            throw new Qcow2Exception("is qcow2 version " + version + "; krun reads versions 2 and 3");
        }
        long incompatible = 0;
        long compatible = 0;
        long autoclear = 0;
        int refcountOrder = 4;
        int headerLength = 72;
        int compressionType = 0;
        if (version == 3) {
            if (head.length < 104) {
                throw new Qcow2Exception("has a truncated version 3 header");
            }
            incompatible = b.getLong(72);
            compatible = b.getLong(80);
            autoclear = b.getLong(88);
            refcountOrder = b.getInt(96);
            headerLength = b.getInt(100);
            if (headerLength < 104) {
                throw new Qcow2Exception("has a version 3 header of " + headerLength + " bytes (at least 104)");
            }
            if (headerLength > 104 && head.length > 104) {
                compressionType = b.get(104) & 0xff;
            }
        }
        Qcow2Header h = new Qcow2Header(version, b.getLong(8), b.getInt(20), b.getLong(24), b.getInt(32), b.getInt(36),
                b.getLong(40), b.getLong(48), b.getInt(56), b.getInt(60), incompatible, compatible, autoclear,
                refcountOrder, headerLength, compressionType);
        h.validate(fileSize, writable);
        return h;
    }

    private void validate(long fileSize, boolean writable) throws Qcow2Exception {
        if (backingFileOffset != 0) {
            throw new Qcow2Exception("has a backing file; krun does not support backing files "
                    + "(make a standalone copy with qemu-img convert -O qcow2)");
        }
        if (cryptMethod != 0) {
            throw new Qcow2Exception("is encrypted (method " + cryptMethod + "); krun does not support encrypted images");
        }
        if ((incompatibleFeatures & INCOMPAT_DIRTY) != 0) {
            throw new Qcow2Exception("was not closed cleanly (dirty, lazy refcounts); repair it with qemu-img check -r all");
        }
        if ((incompatibleFeatures & INCOMPAT_CORRUPT) != 0) {
            throw new Qcow2Exception("is marked corrupt; repair it with qemu-img check -r all");
        }
        if ((incompatibleFeatures & INCOMPAT_EXTERNAL_DATA_FILE) != 0) {
            throw new Qcow2Exception("keeps its data in an external data file; krun does not support that");
        }
        if ((incompatibleFeatures & INCOMPAT_COMPRESSION_TYPE) != 0 || compressionType != 0) {
            throw new Qcow2Exception("uses compression type " + compressionType + "; krun reads only zlib-compressed clusters");
        }
        if ((incompatibleFeatures & INCOMPAT_EXTENDED_L2) != 0) {
            throw new Qcow2Exception("has extended L2 entries (subclusters); krun does not support them");
        }
        long unknown = incompatibleFeatures & ~(INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_EXTERNAL_DATA_FILE
                | INCOMPAT_COMPRESSION_TYPE | INCOMPAT_EXTENDED_L2);
        if (unknown != 0) {
            throw new Qcow2Exception("uses unknown incompatible features 0x" + Long.toHexString(unknown));
        }
        if (clusterBits < MIN_CLUSTER_BITS || clusterBits > MAX_CLUSTER_BITS) {
            throw new Qcow2Exception("has cluster_bits " + clusterBits + " (" + MIN_CLUSTER_BITS + " to "
                    + MAX_CLUSTER_BITS + " are valid)");
        }
        if (refcountOrder < 0 || refcountOrder > 6) {
            throw new Qcow2Exception("has refcount_order " + refcountOrder + " (0 to 6 are valid)");
        }
        if (size < 512) {
            throw new Qcow2Exception("has a virtual size of " + size + " bytes");
        }
        if (writable && nbSnapshots != 0) {
            throw new Qcow2Exception("has " + nbSnapshots + " internal snapshots; krun writes only images without "
                    + "snapshots (attach it read-only, or delete them with qemu-img snapshot -d)");
        }
        long clusterSize = clusterSize();
        long l2Coverage = clusterSize * l2Entries();
        long neededL1 = size / l2Coverage + (size % l2Coverage != 0 ? 1 : 0); // rounding up must not overflow
        if (Integer.toUnsignedLong(l1Size) < neededL1) {
            throw new Qcow2Exception("has an L1 table of " + Integer.toUnsignedLong(l1Size) + " entries, too small for its size");
        }
        if (Integer.toUnsignedLong(l1Size) * 8 > MAX_L1_BYTES) {
            throw new Qcow2Exception("has an L1 table of " + Integer.toUnsignedLong(l1Size) + " entries (too large)");
        }
        if (l1TableOffset <= 0 || (l1TableOffset & (clusterSize - 1)) != 0) {
            throw new Qcow2Exception("has a misplaced L1 table (offset " + l1TableOffset + ")");
        }
        if (refcountTableOffset <= 0 || (refcountTableOffset & (clusterSize - 1)) != 0) {
            throw new Qcow2Exception("has a misplaced refcount table (offset " + refcountTableOffset + ")");
        }
        if (refcountTableClusters <= 0 || (long) refcountTableClusters * clusterSize > MAX_REFTABLE_BYTES) {
            throw new Qcow2Exception("has a refcount table of " + Integer.toUnsignedLong(refcountTableClusters) + " clusters");
        }
        if (l1TableOffset > fileSize || refcountTableOffset > fileSize) {
            throw new Qcow2Exception("is truncated (its tables lie beyond the end of the file)");
        }
    }
}
