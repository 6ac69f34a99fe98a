package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.zip.Deflater;

import org.junit.jupiter.api.Timeout;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.FuzzScratch;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of the qcow2 backend with hostile images: the input lays out an image (header,
 * L1 and L2 tables, refcount table and blocks, data and compressed clusters) and then corrupts any of it:
 * header fields, table offsets (misaligned, past the end of the file, into other metadata, negative), L1
 * and L2 entries, refcounts, compressed descriptors; or, now and then, is the image's bytes outright. The
 * image is opened read-only or writable and then read, written, discarded and zeroed the way the device
 * does it (whole sectors inside the disk). A qcow2 image is the user's file, but its metadata is data a
 * guest may have shaped (its own writes land in clusters a corrupt table points anywhere), so it is input.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds} (the heap allocation cap covers QEMU's caps on
 * the L1 table, 32 MiB, and the refcount table, 8 MiB, read at open): opening and every request either work
 * or fail with an {@link IOException} naming the problem, never another exception; the image file grows by
 * at most what the requests wrote plus bounded metadata, never to where a table entry points; and for an
 * image the input did not corrupt, the disk reads back exactly what was written (discarded ranges excepted).
 */
class Qcow2DiskFuzzTest {

    private static final Path DIR;
    private static final int MAX_OPERATIONS = 24;
    private static final int MAX_REQUEST = 64 * 1024;

    static {
        try {
            // tmpfs where there is one: fast, and without FALLOC_FL_ZERO_RANGE, so the fallbacks run too
            Path shm = Path.of("/dev/shm");
            // one folder per process; those of fuzzing runs that ended are removed (FuzzScratch)
            DIR = FuzzScratch.folder(Files.isDirectory(shm) && Files.isWritable(shm) ? shm
                    : Path.of(System.getProperty("java.io.tmpdir")), "krun-qcow2-fuzz");
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /**
     * Per input: the L1 table (at most {@link Qcow2Header#MAX_L1_BYTES}) read once as bytes and kept as
     * longs, the refcount table (at most {@link Qcow2Header#MAX_REFTABLE_BYTES}) likewise, the metadata caches
     * (16 MiB each), and the requests' own buffers.
     */
    private static final long MAX_ALLOCATION = 2 * Qcow2Header.MAX_L1_BYTES + 2 * Qcow2Header.MAX_REFTABLE_BYTES
            + 2 * (16L << 20) + (8L << 20);

    private static final FuzzBounds BOUNDS = new FuzzBounds("qcow2",
            FuzzBounds.Limits.defaults().withAllocatedPerInput(MAX_ALLOCATION).withCpuPerInput(java.time.Duration.ofSeconds(2)),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void hostileImagesAreRefusedOrServedWithinTheFile(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final Path file = DIR.resolve("image.qcow2");
        /** The input changed nothing of the image's metadata: it must behave as a plain disk. */
        private boolean pristine = true;
        private int clusterBits;
        private long clusterSize;
        private long size;
        private byte[] model;
        /** Sectors whose content is unknown (discarded: zeroes or the old bytes). */
        private boolean[] unknown;

        Scenario(FuzzInput in) {
            this.in = in;
        }

        void run() throws IOException {
            Files.deleteIfExists(file);
            if (in.u8() < 8) {
                pristine = false;
                Files.write(file, in.bytes(4096)); // the image's bytes as they come
            } else {
                build();
            }
            long initialSize = Files.size(file);
            boolean writable = in.u8() >= 48;
            Qcow2Disk disk;
            try {
                disk = Qcow2Disk.open(DiskFile.open(file, writable, false, false));
            } catch (IOException refused) {
                return; // the image was refused with a reason: fine, whatever it was
            }
            try (disk; Arena arena = Arena.ofConfined()) {
                long capacity = disk.capacity();
                if (capacity % 512 != 0 || capacity <= 0) {
                    throw new AssertionError("capacity " + capacity);
                }
                if (pristine && capacity != (size & ~511L)) {
                    throw new AssertionError("capacity " + capacity + " of an image of size " + size);
                }
                long allowed = initialSize;
                for (int op = 0; op < MAX_OPERATIONS && !in.exhausted(); op++) {
                    long sectors = capacity / 512;
                    int count = 1 + in.below(MAX_REQUEST / 512);
                    long sector = switch (in.below(4)) {
                        case 0 -> 0;
                        case 1 -> Math.max(0, sectors - count);
                        case 2 -> in.below((int) Math.min(sectors, 65536));
                        default -> Long.remainderUnsigned(in.i64(), sectors);
                    };
                    count = (int) Math.min(count, sectors - sector);
                    long offset = sector * 512;
                    long length = count * 512L;
                    int kind = in.below(writable ? 5 : 1);
                    try {
                        switch (kind) {
                            case 0 -> {
                                MemorySegment buf = arena.allocate(length, 4096);
                                buf.fill((byte) 0x5a); // reads must overwrite every byte
                                disk.read(offset, List.of(buf));
                                checkRead(offset, buf);
                            }
                            case 1 -> {
                                byte[] data = new byte[(int) length];
                                Arrays.fill(data, (byte) (1 + in.u8()));
                                data[0] = (byte) op;
                                MemorySegment buf = arena.allocate(length, 4096);
                                MemorySegment.copy(data, 0, buf, JAVA_BYTE, 0, data.length);
                                disk.write(offset, split(buf));
                                wrote(offset, data);
                            }
                            case 2 -> {
                                disk.discard(offset, length);
                                forget(offset, length);
                            }
                            case 3 -> {
                                disk.writeZeroes(offset, length, in.bool());
                                wrote(offset, new byte[(int) length]);
                            }
                            default -> disk.flush();
                        }
                    } catch (IOException e) {
                        if (pristine) {
                            throw new AssertionError("an image the input did not corrupt failed: " + e.getMessage(), e);
                        }
                        forget(offset, length); // a failed request leaves its range undefined
                    }
                    // Growth: the request's own clusters, a few metadata clusters, and at most one move of the
                    // refcount table (8 MiB at most) with the blocks that count it.
                    allowed += roundUp(length) + 8 * clusterSizeOf(disk) + Qcow2Header.MAX_REFTABLE_BYTES;
                    long now = Files.size(file);
                    if (now > allowed) {
                        throw new AssertionError("the image grew to " + now + " bytes (" + initialSize + " at open, at most "
                                + allowed + " now)");
                    }
                }
            } finally {
                Files.deleteIfExists(file);
            }
        }

        private long clusterSizeOf(Qcow2Disk disk) {
            return disk.header().clusterSize();
        }

        private long roundUp(long length) {
            long c = clusterSize == 0 ? 512 : clusterSize;
            return (length + c - 1) / c * c + c;
        }

        /** The request's buffer in pieces, as guest memory comes (a sector-aligned piece, then the rest). */
        private List<MemorySegment> split(MemorySegment buf) {
            long cut = 512L * in.below((int) (buf.byteSize() / 512) + 1);
            return cut == 0 || cut == buf.byteSize() ? List.of(buf) : List.of(buf.asSlice(0, cut), buf.asSlice(cut));
        }

        // ---- the model, for images the input did not corrupt

        private void checkRead(long offset, MemorySegment buf) {
            if (!pristine) {
                return;
            }
            byte[] got = buf.toArray(JAVA_BYTE);
            for (int s = 0; s < got.length / 512; s++) {
                int sector = (int) (offset / 512) + s;
                if (unknown[sector]) {
                    continue;
                }
                if (!Arrays.equals(got, s * 512, s * 512 + 512, model, sector * 512, sector * 512 + 512)) {
                    throw new AssertionError("sector " + sector + " reads back other bytes than were written");
                }
            }
        }

        private void wrote(long offset, byte[] data) {
            if (pristine) {
                System.arraycopy(data, 0, model, (int) offset, data.length);
                Arrays.fill(unknown, (int) (offset / 512), (int) ((offset + data.length) / 512), false);
            }
        }

        private void forget(long offset, long length) {
            if (pristine) {
                Arrays.fill(unknown, (int) (offset / 512), (int) ((offset + length) / 512), true);
            }
        }

        // ---- the image

        /** Which value to use: the right one, or (the input says) another. */
        private long choose(long right, long... others) {
            if (in.u8() >= 16) {
                return right;
            }
            pristine = false;
            long[] all = Arrays.copyOf(others, others.length + 2);
            all[others.length] = in.i64();
            all[others.length + 1] = right + clusterSize * (in.below(8) - 4);
            return all[in.below(all.length)];
        }

        /**
         * Lays out an image: header (cluster 0), L1 table, refcount table (one cluster), one refcount block,
         * L2 tables, data clusters, and perhaps a compressed cluster, each in its own clusters, as qemu-img
         * would, then lets the input corrupt any field.
         */
        private void build() throws IOException {
            clusterBits = in.pick(9, 9, 9, 12, 16, 21);
            clusterSize = 1L << clusterBits;
            int version = in.pick(3, 3, 2);
            long l2Entries = clusterSize / 8;
            int dataClusters = 1 + in.below(clusterBits >= 16 ? 4 : 32);
            size = choose(dataClusters * clusterSize - 512L * in.below(2), 511, 512, 1L << 40, 1L << 61,
                    Long.MAX_VALUE - 4095, Long.MAX_VALUE);
            long l2Coverage = clusterSize * l2Entries;
            long neededL1 = Long.divideUnsigned(size, l2Coverage) + (Long.remainderUnsigned(size, l2Coverage) != 0 ? 1 : 0);
            long l1Size = choose(Math.max(1, neededL1), 0, neededL1 - 1, 1 << 22, 0xffffffffL) & 0xffffffffL; // a u32
            int l2Tables = (int) Math.min(Math.max(1, Math.min(neededL1, 4)), 1 + dataClusters / Math.max(1, l2Entries));
            int refcountOrder = (int) choose(4, 0, 1, 3, 5, 6, 7, -1);

            long l1Clusters = Math.max(1, Math.min((Math.min(l1Size, 1 << 16) * 8 + clusterSize - 1) / clusterSize, 64));
            long next = 1;
            long l1Offset = next * clusterSize;
            next += l1Clusters;
            long refTableOffset = next++ * clusterSize;
            long refBlockOffset = next++ * clusterSize;
            long[] l2Offsets = new long[l2Tables];
            for (int t = 0; t < l2Tables; t++) {
                l2Offsets[t] = next++ * clusterSize;
            }
            long firstData = next;
            next += dataClusters;
            boolean compressed = in.u8() < 64;
            long compressedOffset = next * clusterSize;
            byte[] compressedBytes = compressed ? deflate(clusterSize, (byte) 0xc3) : new byte[0];
            long compressedSectors = (compressedBytes.length + 511) / 512;
            if (compressed) {
                next += (compressedBytes.length + clusterSize - 1) / clusterSize;
            }
            long fileClusters = next;

            ByteBuffer header = ByteBuffer.allocate(112).order(ByteOrder.BIG_ENDIAN);
            header.putInt(0, (int) choose(Qcow2Header.MAGIC, 0, Qcow2Header.MAGIC + 1));
            header.putInt(4, (int) choose(version, 1, 4, -1));
            header.putLong(8, choose(0, 512, 1));
            header.putInt(16, 0);
            header.putInt(20, (int) choose(clusterBits, 8, 22, 31, 64, -1));
            header.putLong(24, size);
            header.putInt(32, (int) choose(0, 1, 2));
            header.putInt(36, (int) l1Size);
            header.putLong(40, choose(l1Offset, 0, -clusterSize, fileClusters * clusterSize, 1L << 62, refTableOffset));
            header.putLong(48, choose(refTableOffset, 0, l1Offset, 1L << 62, fileClusters * clusterSize));
            header.putInt(56, (int) choose(1, 0, -1, 1 << 14, (int) (Qcow2Header.MAX_REFTABLE_BYTES / clusterSize)));
            header.putInt(60, (int) choose(0, 1, -1));
            if (version == 3) {
                header.putLong(72, choose(0, 1, 2, 4, 8, 16, 32, 1L << 63));
                header.putLong(80, choose(0, 1));
                header.putLong(88, choose(0, 1, -1));
                header.putInt(96, refcountOrder);
                header.putInt(100, (int) choose(in.bool() ? 112 : 104, 72, 103, 4096));
                header.put(104, (byte) choose(0, 1));
            }

            long[] l1 = new long[(int) Math.min(l1Size, l1Clusters * clusterSize / 8)];
            for (int t = 0; t < l2Tables && t < l1.length; t++) {
                l1[t] = choose(l2Offsets[t] | Qcow2Disk.OFLAG_COPIED, 0, l2Offsets[t], l2Offsets[t] + 8, 0,
                        refBlockOffset | Qcow2Disk.OFLAG_COPIED, l1Offset | Qcow2Disk.OFLAG_COPIED, 1L << 55 | Qcow2Disk.OFLAG_COPIED);
            }
            long[][] l2 = new long[l2Tables][(int) Math.min(l2Entries, 64)];
            long dataCluster = firstData;
            int csizeShift = 62 - (clusterBits - 8);
            for (int t = 0; t < l2Tables; t++) {
                for (int e = 0; e < l2[t].length && dataCluster < firstData + dataClusters; e++) {
                    long guestCluster = (long) t * l2Entries + e;
                    if (guestCluster * clusterSize >= size && pristine) {
                        break;
                    }
                    long data = dataCluster++ * clusterSize;
                    long entry = data | Qcow2Disk.OFLAG_COPIED;
                    if (in.u8() < 24) {
                        entry = 0; // unallocated: reads as zeroes
                        dataCluster--;
                    } else if (version == 3 && in.u8() < 16) {
                        entry = data | Qcow2Disk.OFLAG_COPIED | Qcow2Disk.OFLAG_ZERO; // preallocated zero cluster
                    } else if (compressed && in.u8() < 32) {
                        entry = Qcow2Disk.OFLAG_COMPRESSED | (compressedSectors - 1) << csizeShift | compressedOffset;
                        dataCluster--;
                    }
                    l2[t][e] = choose(entry, 0, data, data | 1, data + 512, refBlockOffset | Qcow2Disk.OFLAG_COPIED,
                            l2Offsets[t] | Qcow2Disk.OFLAG_COPIED, 0 | Qcow2Disk.OFLAG_COPIED, 1L << 40 | Qcow2Disk.OFLAG_COPIED,
                            Qcow2Disk.OFLAG_COMPRESSED | -1L >>> 2, Qcow2Disk.OFLAG_COMPRESSED | (1L << csizeShift) - 1);
                }
            }
            // Refcounts: every cluster in use counts 1, a compressed cluster once per entry that points to it.
            int compressedRefs = 0;
            for (long[] table : l2) {
                for (long e : table) {
                    compressedRefs += (e & Qcow2Disk.OFLAG_COMPRESSED) != 0 ? 1 : 0;
                }
            }
            int bits = 1 << Math.max(0, Math.min(refcountOrder, 6));
            long compressedFirst = compressedOffset / clusterSize;
            byte[] block = new byte[(int) clusterSize];
            for (long c = 0; c < fileClusters && c * bits / 8 < block.length; c++) {
                long right = compressed && c >= compressedFirst ? Math.max(1, compressedRefs) : 1;
                long value = choose(right, 0, 2, (1L << Math.min(bits, 63)) - 1);
                putRefcount(block, (int) c, bits, value);
            }
            long[] refTable = {choose(refBlockOffset, 0, l1Offset, refBlockOffset + 512, 1L << 62, -clusterSize)};

            try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING)) {
                // The L1 table and the refcount block are written only as far as entries were set: the rest
                // reads as zeroes all the same (the file's size is set below), and writing those zeroes was the
                // largest part of the harness's time per input (JFR, the fuzzing thread's native samples: pwrite
                // of a 2 MiB refcount block and a 512 KiB L1 table, nearly all zeroes, at 21 cluster bits).
                ch.write(ByteBuffer.wrap(header.array()), 0);
                ch.write(longs(Arrays.copyOf(l1, Math.min(l1.length, l2Tables))), l1Offset);
                ch.write(longs(refTable), refTableOffset);
                ch.write(ByteBuffer.wrap(block, 0, (int) Math.min(block.length, (fileClusters * bits + 7) / 8)),
                        refBlockOffset);
                for (int t = 0; t < l2Tables; t++) {
                    ch.write(longs(l2[t]), l2Offsets[t]);
                }
                byte[] pattern = new byte[(int) Math.min(clusterSize, 4096)];
                for (long c = firstData; c < firstData + dataClusters; c++) {
                    Arrays.fill(pattern, (byte) c);
                    ch.write(ByteBuffer.wrap(pattern), c * clusterSize);
                }
                if (compressed) {
                    ch.write(ByteBuffer.wrap(compressedBytes), compressedOffset);
                }
                long fileSize = choose(fileClusters * clusterSize, (fileClusters - 1) * clusterSize + 100,
                        refBlockOffset, clusterSize);
                fileSize = Math.min(Math.max(0, fileSize), 1L << 40); // what a host file system holds
                ch.truncate(fileSize);
                if (fileSize > ch.size()) {
                    ch.write(ByteBuffer.allocate(1), fileSize - 1);
                }
            }
            if (pristine) {
                // What the guest sees: data clusters read their first bytes as the pattern, the rest zeroes.
                model = new byte[(int) (size & ~511L)];
                unknown = new boolean[model.length / 512];
                fillModel(l2, l2Entries, firstData, compressed);
            }
        }

        private void fillModel(long[][] l2, long l2Entries, long firstData, boolean compressed) {
            for (int t = 0; t < l2.length; t++) {
                for (int e = 0; e < l2[t].length; e++) {
                    long entry = l2[t][e];
                    long guest = ((long) t * l2Entries + e) * clusterSize;
                    if (guest >= model.length || entry == 0) {
                        continue;
                    }
                    int n = (int) Math.min(clusterSize, model.length - guest);
                    if ((entry & Qcow2Disk.OFLAG_COMPRESSED) != 0) {
                        Arrays.fill(model, (int) guest, (int) guest + n, (byte) 0xc3);
                    } else if ((entry & Qcow2Disk.OFLAG_ZERO) == 0) {
                        long c = (entry & Qcow2Disk.OFFSET_MASK) / clusterSize;
                        Arrays.fill(model, (int) guest, (int) guest + Math.min(n, (int) Math.min(clusterSize, 4096)), (byte) c);
                    }
                }
            }
        }

        private static void putRefcount(byte[] block, int index, int bits, long value) {
            if (bits >= 8) {
                int bytes = bits / 8;
                for (int k = bytes - 1; k >= 0; k--) {
                    block[index * bytes + k] = (byte) value;
                    value >>>= 8;
                }
            } else {
                int perByte = 8 / bits;
                int shift = (index % perByte) * bits;
                int mask = ((1 << bits) - 1) << shift;
                block[index / perByte] = (byte) ((block[index / perByte] & ~mask) | (((int) value << shift) & mask));
            }
        }

        private static ByteBuffer longs(long[] values) {
            ByteBuffer b = ByteBuffer.allocate(8 * values.length).order(ByteOrder.BIG_ENDIAN);
            for (long v : values) {
                b.putLong(v);
            }
            return b.flip();
        }

        /** A cluster of {@code value} bytes, deflated as qcow2 stores it (raw deflate, no zlib header). */
        /** Compressed clusters by cluster size: the same bytes every time (JFR: deflating them per input cost a third of its native time). */
        private static final java.util.Map<Long, byte[]> DEFLATED = new java.util.concurrent.ConcurrentHashMap<>();

        private static byte[] deflate(long clusterSize, byte value) {
            byte[] cached = DEFLATED.computeIfAbsent(clusterSize * 256 + (value & 0xff), k -> deflateNow(clusterSize, value));
            return cached.clone(); // the caller's to change
        }

        private static byte[] deflateNow(long clusterSize, byte value) {
            byte[] plain = new byte[(int) clusterSize];
            Arrays.fill(plain, value);
            Deflater d = new Deflater(Deflater.DEFAULT_COMPRESSION, true);
            try {
                d.setInput(plain);
                d.finish();
                List<byte[]> parts = new ArrayList<>();
                int total = 0;
                while (!d.finished()) {
                    byte[] part = new byte[4096];
                    int n = d.deflate(part);
                    parts.add(Arrays.copyOf(part, n));
                    total += n;
                }
                ByteBuffer all = ByteBuffer.allocate(total);
                parts.forEach(all::put);
                return all.array();
            } finally {
                d.end();
            }
        }
    }
}
