package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.locks.ReentrantReadWriteLock;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;
import org.krun.posix.PosixIo;

/**
 * A qcow2 image (QEMU docs/interop/qcow2.txt), versions 2 and 3, read and written, without backing files.
 *
 * <p>Guest cluster {@code c} lives where L1 entry {@code c >> l2Bits} and the L2 entry it leads to say:
 * nowhere (reads as zeroes), a zero cluster, a host cluster, or compressed bytes (zlib, read only: a write
 * copies such a cluster into a fresh one). Every host cluster in use has a refcount, kept exact, so
 * {@code qemu-img check} finds no leaks and no errors.
 *
 * <p>Consistency: metadata changes are written to the image at once, in an order where a crash at any
 * point (the VMM killed, or with {@code O_DSYNC} the host losing power) leaves at worst leaked clusters,
 * never a cluster used twice or one referenced while free: a new cluster's refcount is written before
 * its data, its data before the L2 entry that points to it, and an old cluster is freed only after no
 * entry points to it. A flush is {@code fdatasync} of the one file.
 *
 * <p>Threads: reads and writes into clusters already allocated run in parallel under the read lock; any
 * change of metadata (allocation, copy-on-write, discard, write-zeroes) takes the write lock.
 *
 * <p>Damage: every table and cluster offset is checked before use (aligned, inside the file, clear of the
 * header, the L1 table and the refcount table). A bad one fails its request with an I/O error and marks the
 * image corrupt, as qemu does (the header's corrupt bit, version 3): every later request fails too, and
 * nothing is ever written where a damaged entry points, so the file never grows because of one.
 *
 * <p>Allocation looks for free clusters only up to the end of the file and a little beyond ({@link #findFree}),
 * so refcounts claiming every cluster cost a scan of the file's clusters at most, and mark the image corrupt.
 */
final class Qcow2Disk implements DiskBackend {
    private static final System.Logger LOG = System.getLogger(Qcow2Disk.class.getName());

    /** L1, L2 entries: bits 9-55 hold the offset. */
    static final long OFFSET_MASK = 0x00ff_ffff_ffff_fe00L;
    static final long REFTABLE_OFFSET_MASK = 0xffff_ffff_ffff_fe00L;
    /** The entry's cluster has refcount 1 and may be written in place. */
    static final long OFLAG_COPIED = 1L << 63;
    static final long OFLAG_COMPRESSED = 1L << 62;
    /** Version 3: the cluster reads as zeroes (bit 0 of a standard L2 entry). */
    static final long OFLAG_ZERO = 1L;

    /** Metadata cached per kind, whatever the cluster size. */
    private static final long CACHE_BYTES = 16L << 20;

    private final DiskFile file;
    private final Qcow2Header header;
    private final boolean writable;
    private final int clusterBits;
    private final long clusterSize;
    private final int l2Bits;
    private final long capacity;
    private final int refcountBits;
    /** log2 of the refcount entries in one refcount block. */
    private final int refBlockBits;
    private final int csizeShift;
    private final long csizeMask;
    private final long compressedOffsetMask;

    private final ReentrantReadWriteLock lock = new ReentrantReadWriteLock();
    private final TableCache<long[]> l2Cache;
    private final TableCache<byte[]> refBlockCache;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment zeroCluster;

    // guarded by lock (written under the write lock)
    private final long[] l1;
    private long[] refTable;
    private long refTableOffset;
    private int refTableClusters;
    private long fileSize;
    /** The first cluster index allocation looks at. */
    private long freeHint;
    /** What was found damaged, once something was: every request fails from then on. */
    private volatile String corruption;
    private final Object corruptionLock = new Object();

    private Qcow2Disk(DiskFile file, Qcow2Header header, long[] l1, long[] refTable, long fileSize) {
        this.file = file;
        this.header = header;
        this.writable = file.writable();
        this.clusterBits = header.clusterBits();
        this.clusterSize = header.clusterSize();
        this.l2Bits = clusterBits - 3;
        this.capacity = header.size() & ~511L;
        this.refcountBits = 1 << header.refcountOrder();
        this.refBlockBits = clusterBits + 3 - header.refcountOrder();
        this.csizeShift = 62 - (clusterBits - 8);
        this.csizeMask = (1L << (clusterBits - 8)) - 1;
        this.compressedOffsetMask = (1L << csizeShift) - 1;
        int tables = (int) Math.max(4, CACHE_BYTES / clusterSize);
        this.l2Cache = new TableCache<>(tables);
        this.refBlockCache = new TableCache<>(tables);
        this.zeroCluster = arena.allocate(clusterSize, 4096);
        this.l1 = l1;
        this.refTable = refTable;
        this.refTableOffset = header.refcountTableOffset();
        this.refTableClusters = header.refcountTableClusters();
        this.fileSize = fileSize;
        this.freeHint = 1;
    }

    /**
     * Opens {@code file} as a qcow2 image; takes ownership of it.
     *
     * @throws Qcow2Exception when the image is not one krun can serve (the message says why)
     */
    static Qcow2Disk open(DiskFile file) throws IOException {
        try {
            long fileSize = file.size();
            byte[] head = readBytes(file, 0, (int) Math.min(Qcow2Header.READ_SIZE, fileSize));
            Qcow2Header h = Qcow2Header.parse(head, fileSize, file.writable());
            long[] l1 = readTable(file, h.l1TableOffset(), h.l1Size());
            long[] refTable = readTable(file, h.refcountTableOffset(),
                    (int) (h.refcountTableClusters() * h.clusterSize() / 8));
            Qcow2Disk disk = new Qcow2Disk(file, h, l1, refTable, fileSize);
            if (file.writable() && h.version() == 3 && h.autoclearFeatures() != 0) {
                // "An implementation may only write to an image with unknown auto-clear features if it
                // clears the respective bits from this field first." krun knows none of them.
                disk.writeLong(Qcow2Header.OFFSET_AUTOCLEAR_FEATURES, 0);
            }
            return disk;
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    Qcow2Header header() {
        return header;
    }

    @Override
    public long capacity() {
        return capacity;
    }

    @Override
    public int discardGranularity() {
        return (int) Math.max(512, clusterSize);
    }

    // ---- entries

    private long l2Entries() {
        return 1L << l2Bits;
    }

    private static boolean isCompressed(long e) {
        return (e & OFLAG_COMPRESSED) != 0;
    }

    private boolean hasZeroFlag(long e) {
        return header.version() >= 3 && !isCompressed(e) && (e & OFLAG_ZERO) != 0;
    }

    /** A standard entry's host cluster offset (0: none), checked to be cluster-aligned. */
    private long hostOffset(long e) throws Qcow2Exception {
        long off = e & OFFSET_MASK;
        if ((off & (clusterSize - 1)) != 0) {
            throw corrupt("has a misaligned L2 entry 0x" + Long.toHexString(e));
        }
        return off;
    }

    /** Whether guest data lives in the host cluster the entry names (it reads as that cluster). */
    private boolean isData(long e) throws Qcow2Exception {
        return !isCompressed(e) && !hasZeroFlag(e) && hostOffset(e) != 0;
    }

    /** Reads as zeroes and owns no host cluster: unallocated, or a zero cluster without one. */
    private boolean isEmpty(long e) throws Qcow2Exception {
        return !isCompressed(e) && hostOffset(e) == 0;
    }

    /** The L2 table at {@code offset}, from the cache or the image. */
    private long[] l2Table(long offset) throws IOException {
        long[] t = l2Cache.get(offset);
        if (t == null) {
            checkMetadataCluster(offset, "an L2 table");
            t = readTable(file, offset, (int) l2Entries());
            l2Cache.put(offset, t);
        }
        return t;
    }

    /** The L2 entry of guest cluster {@code gc}; 0 when it has no L2 table. A lock is held. */
    private long l2Entry(long gc) throws IOException {
        long l2 = l1[(int) (gc >>> l2Bits)] & OFFSET_MASK;
        return l2 == 0 ? 0 : l2Table(l2)[(int) (gc & (l2Entries() - 1))];
    }

    // ---- read

    @Override
    public void read(long offset, List<MemorySegment> dst) throws IOException {
        long length = Segments.size(dst);
        lock.readLock().lock();
        try {
            checkNotCorrupt();
            long runHost = -1;
            long runStart = 0;
            long runLength = 0;
            for (long pos = offset; pos < offset + length; ) {
                long gc = pos >>> clusterBits;
                long inCluster = pos & (clusterSize - 1);
                long n = Math.min(clusterSize - inCluster, offset + length - pos);
                long e = l2Entry(gc);
                if (isData(e)) {
                    long host = checkDataCluster(hostOffset(e)) + inCluster;
                    if (runLength > 0 && runHost + runLength == host) {
                        runLength += n;
                    } else {
                        readRun(runHost, dst, runStart, runLength);
                        runHost = host;
                        runStart = pos - offset;
                        runLength = n;
                    }
                } else {
                    readRun(runHost, dst, runStart, runLength);
                    runLength = 0;
                    List<MemorySegment> part = Segments.slice(dst, pos - offset, n);
                    if (isCompressed(e)) {
                        copyInto(decompress(e), (int) inCluster, part);
                    } else {
                        Segments.zero(part);
                    }
                }
                pos += n;
            }
            readRun(runHost, dst, runStart, runLength);
        } finally {
            lock.readLock().unlock();
        }
    }

    private void readRun(long host, List<MemorySegment> dst, long start, long length) throws IOException {
        if (length > 0) {
            // A cluster may end past the end of the file (a sparse tail): it reads as zeroes.
            file.read(host, Segments.slice(dst, start, length), true);
        }
    }

    private static void copyInto(byte[] src, int from, List<MemorySegment> dst) {
        int at = from;
        for (MemorySegment s : dst) {
            MemorySegment.copy(src, at, s, JAVA_BYTE, 0, (int) s.byteSize());
            at += (int) s.byteSize();
        }
    }

    /** The cluster a compressed entry holds, inflated (zlib deflate, no header). */
    private byte[] decompress(long e) throws IOException {
        long off = e & compressedOffsetMask;
        long sectors = ((e >>> csizeShift) & csizeMask) + 1;
        long size = sectors * 512 - (off & 511);
        if (off < clusterSize || off + size > fileSize + 511) {
            throw corrupt("has a compressed cluster at " + off + " that is not inside the file (" + fileSize + " bytes)");
        }
        byte[] in = readBytes(file, off, (int) size);
        byte[] out = new byte[(int) clusterSize];
        Inflater inflater = new Inflater(true);
        try {
            inflater.setInput(in);
            int done = 0;
            while (done < out.length && !inflater.finished()) {
                int n = inflater.inflate(out, done, out.length - done);
                if (n == 0 && (inflater.needsInput() || inflater.needsDictionary())) {
                    break;
                }
                done += n;
            }
            if (done != out.length) {
                throw new Qcow2Exception("has a compressed cluster at " + off + " that inflates to " + done + " bytes");
            }
            return out;
        } catch (DataFormatException ex) {
            throw new Qcow2Exception("has a damaged compressed cluster at " + off + ": " + ex.getMessage());
        } finally {
            inflater.end();
        }
    }

    /** The compressed bytes' host range: start and length, whole 512-byte sectors. */
    private long[] compressedRange(long e) {
        long off = e & compressedOffsetMask;
        long sectors = ((e >>> csizeShift) & csizeMask) + 1;
        return new long[] {off & ~511L, sectors * 512};
    }

    // ---- write

    @Override
    public void write(long offset, List<MemorySegment> src) throws IOException {
        lock.readLock().lock();
        try {
            checkNotCorrupt();
            if (writeInPlace(offset, src)) {
                return;
            }
        } finally {
            lock.readLock().unlock();
        }
        lock.writeLock().lock();
        try {
            checkNotCorrupt();
            writeLocked(offset, src);
        } finally {
            lock.writeLock().unlock();
        }
    }

    /**
     * Under the read lock: writes {@code src} if every cluster it touches is allocated and owned by this
     * image alone (COPIED), merging runs of adjacent host clusters; false (nothing written) otherwise.
     */
    private boolean writeInPlace(long offset, List<MemorySegment> src) throws IOException {
        long length = Segments.size(src);
        long[] hosts = new long[(int) (((offset + length - 1) >>> clusterBits) - (offset >>> clusterBits) + 1)];
        int i = 0;
        for (long pos = offset; pos < offset + length; i++) {
            long gc = pos >>> clusterBits;
            long inCluster = pos & (clusterSize - 1);
            if ((l1[(int) (gc >>> l2Bits)] & OFLAG_COPIED) == 0) {
                return false;
            }
            long e = l2Entry(gc);
            if (!isData(e) || (e & OFLAG_COPIED) == 0) {
                return false;
            }
            hosts[i] = checkDataCluster(hostOffset(e));
            pos += clusterSize - inCluster;
        }
        long runHost = -1;
        long runStart = 0;
        long runLength = 0;
        long pos = offset;
        for (long cluster : hosts) {
            long inCluster = pos & (clusterSize - 1);
            long n = Math.min(clusterSize - inCluster, offset + length - pos);
            long host = cluster + inCluster;
            if (runLength > 0 && runHost + runLength == host) {
                runLength += n;
            } else {
                if (runLength > 0) {
                    file.write(runHost, Segments.slice(src, runStart, runLength));
                }
                runHost = host;
                runStart = pos - offset;
                runLength = n;
            }
            pos += n;
        }
        file.write(runHost, Segments.slice(src, runStart, runLength));
        return true;
    }

    /**
     * A data cluster an L2 entry names: clear of the header, the L1 table and the refcount table, and starting
     * inside the file (its tail may lie past the end, never read or written yet: that reads as zeroes).
     */
    private long checkDataCluster(long host) throws Qcow2Exception {
        if (overlapsFixedMetadata(host)) {
            throw corrupt("has an L2 entry pointing into its metadata at " + host);
        }
        if (host >= ((fileSize + clusterSize - 1) & ~(clusterSize - 1))) {
            throw corrupt("has an L2 entry pointing at " + host + ", past the end of the file (" + fileSize + " bytes)");
        }
        return host;
    }

    /** A table of metadata (L2 table, refcount block): aligned, clear of the fixed metadata, wholly inside the file. */
    private void checkMetadataCluster(long offset, String what) throws Qcow2Exception {
        if ((offset & (clusterSize - 1)) != 0) {
            throw corrupt("has a misaligned " + what.substring(what.indexOf(' ') + 1) + " at " + offset);
        }
        if (overlapsFixedMetadata(offset)) {
            throw corrupt("has " + what + " at " + offset + ", over its header, L1 table or refcount table");
        }
        if (offset + clusterSize > fileSize) {
            throw corrupt("has " + what + " at " + offset + ", past the end of the file (" + fileSize + " bytes)");
        }
    }

    /** Whether the cluster at {@code host} holds the header, the L1 table or the refcount table. */
    private boolean overlapsFixedMetadata(long host) {
        long l1Start = header.l1TableOffset();
        long l1End = l1Start + (((long) header.l1Size() * 8 + clusterSize - 1) & ~(clusterSize - 1));
        long rtEnd = refTableOffset + (long) refTableClusters * clusterSize;
        return host < clusterSize || (host >= l1Start && host < l1End) || (host >= refTableOffset && host < rtEnd);
    }

    private void checkNotCorrupt() throws Qcow2Exception {
        String c = corruption;
        if (c != null) {
            throw new Qcow2Exception("was found corrupt (it " + c + "); repair it with qemu-img check -r all");
        }
    }

    /**
     * Marks the image corrupt for {@code what} was found (once: in memory for every later request, and for
     * version 3 in the header, as qemu does, so no one uses it before it is repaired) and returns the error
     * that fails the request that found it.
     */
    private Qcow2Exception corrupt(String what) {
        synchronized (corruptionLock) {
            if (corruption == null) {
                corruption = what;
                LOG.log(Level.WARNING, "qcow2 image " + what + ": marking it corrupt; every further request fails");
                if (writable && header.version() >= 3) {
                    try {
                        writeLong(Qcow2Header.OFFSET_INCOMPATIBLE_FEATURES,
                                header.incompatibleFeatures() | Qcow2Header.INCOMPAT_CORRUPT);
                        file.sync();
                    } catch (IOException e) {
                        LOG.log(Level.WARNING, "qcow2 image: cannot mark it corrupt: " + e.getMessage());
                    }
                }
            }
        }
        return new Qcow2Exception(what + " (corrupt image: krun marked it corrupt; repair it with qemu-img check -r all)");
    }

    /** Under the write lock: writes {@code src}, allocating or copying clusters as needed. */
    private void writeLocked(long offset, List<MemorySegment> src) throws IOException {
        long end = offset + Segments.size(src);
        long pos = offset;
        while (pos < end) {
            long gc = pos >>> clusterBits;
            long inCluster = pos & (clusterSize - 1);
            long n = Math.min(clusterSize - inCluster, end - pos);
            int l1Index = (int) (gc >>> l2Bits);
            long[] table = writableL2(l1Index);
            long l2Offset = l1[l1Index] & OFFSET_MASK;
            int index = (int) (gc & (l2Entries() - 1));
            long e = table[index];
            if (isData(e) && (e & OFLAG_COPIED) != 0) {
                file.write(checkDataCluster(hostOffset(e)) + inCluster, Segments.slice(src, pos - offset, n));
                pos += n;
            } else if (isEmpty(e)) {
                // A run of empty clusters in this L2 table gets one contiguous allocation and one write.
                int count = 1;
                long runEnd = pos + n;
                while (runEnd < end && index + count < l2Entries() && isEmpty(table[index + count])) {
                    runEnd += Math.min(clusterSize, end - runEnd);
                    count++;
                }
                long host = allocateClusters(count);
                file.write(host + inCluster, Segments.slice(src, pos - offset, runEnd - pos));
                for (int k = 0; k < count; k++) {
                    table[index + k] = (host + k * clusterSize) | OFLAG_COPIED;
                }
                writeL2Entries(l2Offset, table, index, count);
                pos = runEnd;
            } else if (hasZeroFlag(e) && (e & OFLAG_COPIED) != 0) {
                // A preallocated zero cluster: zero it on the host, write, then let it read as data.
                long host = checkDataCluster(hostOffset(e));
                zeroHost(host, clusterSize);
                file.write(host + inCluster, Segments.slice(src, pos - offset, n));
                table[index] = e & ~OFLAG_ZERO;
                writeL2Entries(l2Offset, table, index, 1);
                pos += n;
            } else {
                copyOnWrite(table, l2Offset, index, e, inCluster, Segments.slice(src, pos - offset, n));
                pos += n;
            }
        }
    }

    /**
     * Writes into a cluster this image does not own alone or cannot write in place (compressed, shared): its
     * content goes to a new cluster with the write applied, the entry moves there, and the old one is freed.
     */
    private void copyOnWrite(long[] table, long l2Offset, int index, long e, long inCluster, List<MemorySegment> data)
            throws IOException {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment cluster = scratch.allocate(clusterSize, 4096);
            if (isCompressed(e)) {
                MemorySegment.copy(decompress(e), 0, cluster, JAVA_BYTE, 0, (int) clusterSize);
            } else if (isData(e)) {
                file.read(checkDataCluster(hostOffset(e)), List.of(cluster), true);
            }
            long at = inCluster;
            for (MemorySegment s : data) {
                MemorySegment.copy(s, 0, cluster, at, s.byteSize());
                at += s.byteSize();
            }
            long host = allocateClusters(1);
            file.write(host, List.of(cluster));
            table[index] = host | OFLAG_COPIED;
            writeL2Entries(l2Offset, table, index, 1);
            freeEntry(e);
        }
    }

    /** The L2 table of L1 entry {@code l1Index}, allocated if missing; refuses tables shared with snapshots. */
    private long[] writableL2(int l1Index) throws IOException {
        long l1e = l1[l1Index];
        long offset = l1e & OFFSET_MASK;
        if (offset == 0) {
            long host = allocateClusters(1); // zeroed: an empty table
            long[] table = new long[(int) l2Entries()];
            l2Cache.put(host, table);
            l1[l1Index] = host | OFLAG_COPIED;
            writeLong(header.l1TableOffset() + 8L * l1Index, l1[l1Index]);
            return table;
        }
        if ((l1e & OFLAG_COPIED) == 0) {
            throw new Qcow2Exception("has an L2 table shared with a snapshot; krun cannot write it");
        }
        return l2Table(offset);
    }

    // ---- discard and write-zeroes

    @Override
    public void discard(long offset, long length) throws IOException {
        lock.writeLock().lock();
        try {
            checkNotCorrupt();
            deallocate(offset, length, true);
        } finally {
            lock.writeLock().unlock();
        }
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        lock.writeLock().lock();
        try {
            checkNotCorrupt();
            long first = (offset + clusterSize - 1) & ~(clusterSize - 1);
            long last = (offset + length) & ~(clusterSize - 1);
            if (first < last) {
                deallocate(first, last - first, mayUnmap);
                zeroPartial(offset, first - offset);
                zeroPartial(last, offset + length - last);
            } else {
                zeroPartial(offset, length);
            }
        } finally {
            lock.writeLock().unlock();
        }
    }

    /** Writes zeroes over {@code [offset, offset + length)}, skipping clusters that read as zeroes already. */
    private void zeroPartial(long offset, long length) throws IOException {
        long end = offset + length;
        for (long pos = offset; pos < end; ) {
            long n = Math.min(clusterSize - (pos & (clusterSize - 1)), end - pos);
            long e = l2Entry(pos >>> clusterBits);
            if (!isEmpty(e) && !hasZeroFlag(e)) {
                writeLocked(pos, List.of(zeroCluster.asSlice(0, n)));
            }
            pos += n;
        }
    }

    /**
     * Makes every whole cluster of {@code [offset, offset + length)} read as zeroes. With {@code unmap} the
     * clusters are deallocated (the entry cleared, the host cluster freed and punched); without, an allocated
     * cluster stays allocated and becomes a zero cluster (version 3) or is zeroed on the host (version 2).
     */
    private void deallocate(long offset, long length, boolean unmap) throws IOException {
        long first = (offset + clusterSize - 1) >>> clusterBits;
        long end = (offset + length) >>> clusterBits;
        long gc = first;
        while (gc < end) {
            int l1Index = (int) (gc >>> l2Bits);
            long l2Offset = l1[l1Index] & OFFSET_MASK;
            long tableEnd = Math.min(end, ((long) l1Index + 1) << l2Bits);
            if (l2Offset == 0) {
                gc = tableEnd; // no table: every cluster there reads as zeroes already
                continue;
            }
            long[] table = writableL2(l1Index);
            int from = (int) (gc & (l2Entries() - 1));
            int count = (int) (tableEnd - gc);
            long[] old = Arrays.copyOfRange(table, from, from + count);
            boolean changed = false;
            for (int k = 0; k < count; k++) {
                long e = old[k];
                long next;
                if (isEmpty(e)) {
                    next = e;
                } else if (!unmap && isData(e) && (e & OFLAG_COPIED) != 0) {
                    if (header.version() >= 3) {
                        next = e | OFLAG_ZERO;
                    } else {
                        // version 2 has no zero flag: zero the cluster on the host and keep it allocated
                        long host = checkDataCluster(hostOffset(e));
                        if (!file.fallocate(PosixIo.FALLOC_FL_ZERO_RANGE | PosixIo.FALLOC_FL_KEEP_SIZE, host, clusterSize)) {
                            RawDisk.writeZeroBytes(file, host, clusterSize);
                        }
                        next = e;
                    }
                } else if (!unmap && hasZeroFlag(e)) {
                    next = e;
                } else {
                    next = 0;
                }
                if (next != e) {
                    table[from + k] = next;
                    changed = true;
                }
            }
            if (changed) {
                writeL2Entries(l2Offset, table, from, count);
                // Free only once no entry points to the clusters any more.
                for (int k = 0; k < count; k++) {
                    if (table[from + k] == 0 && old[k] != 0) {
                        freeEntry(old[k]);
                    }
                }
            }
            gc = tableEnd;
        }
    }

    // ---- allocation and refcounts (write lock held)

    /**
     * Allocates {@code count} contiguous host clusters with refcount 1 whose bytes read as zeroes, and
     * returns the first one's offset.
     */
    private long allocateClusters(int count) throws IOException {
        long start = findFree(count);
        freeHint = start + count; // nested allocations (refcount blocks) look beyond these
        for (int k = 0; k < count; k++) {
            setRefcount(start + k, 1);
        }
        zeroHost(start * clusterSize, count * clusterSize);
        return start * clusterSize;
    }

    /**
     * The first run of {@code count} free clusters at or after {@link #freeHint}. In a sound image every
     * cluster past the end of the file is free, but for those an allocation interrupted by a crash left
     * counted (one allocation's worth at most: a run of L2 entries, or a new refcount table): a run starting
     * further out means the refcounts claim clusters nobody allocated, and the search stops there.
     */
    private long findFree(int count) throws IOException {
        long c = Math.max(freeHint, 1);
        long limit = (fileSize + clusterSize - 1) / clusterSize + l2Entries()
                + Qcow2Header.MAX_REFTABLE_BYTES / clusterSize + 2;
        search:
        while (true) {
            if (c > limit) {
                throw corrupt("counts clusters in use past the end of the file, up to cluster " + c
                        + " (corrupt refcounts)");
            }
            for (int k = 0; k < count; k++) {
                if (refcount(c + k) != 0) {
                    c = c + k + 1;
                    continue search;
                }
            }
            return c;
        }
    }

    /** Refcount of host cluster {@code c}. */
    long refcount(long c) throws IOException {
        long tableIndex = c >>> refBlockBits;
        if (tableIndex >= refTable.length) {
            return 0;
        }
        long block = refTable[(int) tableIndex] & REFTABLE_OFFSET_MASK;
        if (block == 0) {
            return 0;
        }
        return getRefcount(refBlock(block), (int) (c & ((1L << refBlockBits) - 1)));
    }

    private byte[] refBlock(long offset) throws IOException {
        byte[] b = refBlockCache.get(offset);
        if (b == null) {
            checkMetadataCluster(offset, "a refcount block");
            b = readBytes(file, offset, (int) clusterSize);
            refBlockCache.put(offset, b);
        }
        return b;
    }

    private long getRefcount(byte[] block, int index) {
        if (refcountBits >= 8) {
            int bytes = refcountBits / 8;
            long v = 0;
            for (int k = 0; k < bytes; k++) {
                v = (v << 8) | (block[index * bytes + k] & 0xff);
            }
            return v;
        }
        int perByte = 8 / refcountBits;
        int shift = (index % perByte) * refcountBits;
        return (block[index / perByte] >>> shift) & ((1 << refcountBits) - 1);
    }

    /** Sets entry {@code index} of {@code block}; returns the byte range {start, length} that changed. */
    private int[] putRefcount(byte[] block, int index, long value) throws Qcow2Exception {
        if (refcountBits < 64 && (value >>> refcountBits) != 0) {
            throw new Qcow2Exception("needs a refcount of " + value + ", more than its " + refcountBits + "-bit refcounts hold");
        }
        if (refcountBits >= 8) {
            int bytes = refcountBits / 8;
            for (int k = bytes - 1; k >= 0; k--) {
                block[index * bytes + k] = (byte) value;
                value >>>= 8;
            }
            return new int[] {index * bytes, bytes};
        }
        int perByte = 8 / refcountBits;
        int shift = (index % perByte) * refcountBits;
        int mask = ((1 << refcountBits) - 1) << shift;
        int at = index / perByte;
        block[at] = (byte) ((block[at] & ~mask) | ((int) value << shift));
        return new int[] {at, 1};
    }

    /** Sets host cluster {@code c}'s refcount, creating refcount blocks and growing the table as needed. */
    private void setRefcount(long c, long value) throws IOException {
        long tableIndex = c >>> refBlockBits;
        if (tableIndex >= refTable.length) {
            growRefcountTable(tableIndex);
        }
        long block = refTable[(int) tableIndex] & REFTABLE_OFFSET_MASK;
        if (block == 0) {
            block = allocateRefcountBlock((int) tableIndex);
        }
        byte[] b = refBlock(block);
        int[] changed = putRefcount(b, (int) (c & ((1L << refBlockBits) - 1)), value);
        writeBytes(block + changed[0], b, changed[0], changed[1]);
    }

    /**
     * A new refcount block for table entry {@code tableIndex}. Its own cluster's refcount is recorded first:
     * in the block itself when the block covers its own cluster, otherwise (recursively) in another block.
     */
    private long allocateRefcountBlock(int tableIndex) throws IOException {
        long c = findFree(1);
        freeHint = c + 1;
        byte[] block = new byte[(int) clusterSize];
        if ((c >>> refBlockBits) == tableIndex) {
            putRefcount(block, (int) (c & ((1L << refBlockBits) - 1)), 1);
        } else {
            setRefcount(c, 1);
        }
        long offset = c * clusterSize;
        zeroHost(offset, clusterSize);
        writeBytes(offset, block, 0, block.length);
        refBlockCache.put(offset, block);
        refTable[tableIndex] = offset;
        writeLong(refTableOffset + 8L * tableIndex, offset);
        return offset;
    }

    /**
     * Moves the refcount table to a larger place holding entry {@code neededIndex}: the new table is filled
     * and made to count itself before the header switches to it, and the old one is freed afterwards, so
     * the image is consistent at every step.
     */
    private void growRefcountTable(long neededIndex) throws IOException {
        long perCluster = clusterSize / 8;
        long entries = Math.max(refTable.length * 2L, neededIndex + 1);
        long start;
        long clusters;
        while (true) {
            entries = (entries + perCluster - 1) / perCluster * perCluster;
            clusters = entries / perCluster;
            if (clusters * clusterSize > Qcow2Header.MAX_REFTABLE_BYTES) {
                throw new Qcow2Exception("would need a refcount table larger than "
                        + (Qcow2Header.MAX_REFTABLE_BYTES >> 20) + " MiB");
            }
            start = findFree((int) clusters);
            // the new table must also cover itself and the refcount blocks that will count it
            if (((start + clusters + (clusters >>> refBlockBits) + 2) >>> refBlockBits) < entries) {
                break;
            }
            entries *= 2;
        }
        long[] oldTable = refTable;
        long oldOffset = refTableOffset;
        int oldClusters = refTableClusters;
        freeHint = start + clusters;
        refTable = Arrays.copyOf(oldTable, (int) entries);
        refTableOffset = start * clusterSize;
        refTableClusters = (int) clusters;
        zeroHost(refTableOffset, clusters * clusterSize);
        for (long k = 0; k < clusters; k++) {
            setRefcount(start + k, 1); // new blocks land in the new table only; the old one stays valid
        }
        writeTable(refTableOffset, refTable);
        ByteBuffer h = ByteBuffer.allocate(12).order(ByteOrder.BIG_ENDIAN).putLong(refTableOffset).putInt(refTableClusters);
        writeBytes(Qcow2Header.OFFSET_REFCOUNT_TABLE, h.array(), 0, 12);
        for (long k = 0; k < oldClusters; k++) {
            freeCluster(oldOffset / clusterSize + k);
        }
    }

    /** Frees what an entry owned: its host cluster, or the clusters its compressed bytes occupy. */
    private void freeEntry(long e) throws IOException {
        if (isCompressed(e)) {
            long[] range = compressedRange(e);
            long firstCluster = range[0] >>> clusterBits;
            long lastCluster = (range[0] + range[1] - 1) >>> clusterBits;
            for (long c = firstCluster; c <= lastCluster; c++) {
                freeCluster(c);
            }
        } else {
            long host = hostOffset(e);
            if (host != 0) {
                freeCluster(host >>> clusterBits);
            }
        }
    }

    /** Drops one reference to host cluster {@code c}; a cluster nobody uses is punched out of the file. */
    private void freeCluster(long c) throws IOException {
        long r = refcount(c);
        if (r == 0) {
            throw corrupt("frees host cluster " + c + " whose refcount is already 0");
        }
        setRefcount(c, r - 1);
        if (r == 1) {
            file.fallocate(PosixIo.FALLOC_FL_PUNCH_HOLE | PosixIo.FALLOC_FL_KEEP_SIZE, c * clusterSize, clusterSize);
            freeHint = Math.min(freeHint, c);
        }
    }

    /**
     * Makes {@code [offset, offset + length)} of the file read as zeroes: past the end by growing the file
     * (sparse), inside it by punching a hole (or zeroing where punching is not supported).
     */
    private void zeroHost(long offset, long length) throws IOException {
        long inside = Math.max(0, Math.min(offset + length, fileSize) - offset);
        if (inside > 0 && !file.fallocate(PosixIo.FALLOC_FL_PUNCH_HOLE | PosixIo.FALLOC_FL_KEEP_SIZE, offset, inside)
                && !file.fallocate(PosixIo.FALLOC_FL_ZERO_RANGE | PosixIo.FALLOC_FL_KEEP_SIZE, offset, inside)) {
            RawDisk.writeZeroBytes(file, offset, inside);
        }
        if (offset + length > fileSize) {
            file.truncate(offset + length);
            fileSize = offset + length;
        }
    }

    // ---- metadata I/O

    private void writeL2Entries(long l2Offset, long[] table, int from, int count) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 * count).order(ByteOrder.BIG_ENDIAN);
        for (int k = 0; k < count; k++) {
            b.putLong(table[from + k]);
        }
        writeBytes(l2Offset + 8L * from, b.array(), 0, 8 * count);
    }

    private void writeTable(long offset, long[] table) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(8 * table.length).order(ByteOrder.BIG_ENDIAN);
        for (long v : table) {
            b.putLong(v);
        }
        writeBytes(offset, b.array(), 0, b.capacity());
    }

    private void writeLong(long offset, long value) throws IOException {
        writeBytes(offset, ByteBuffer.allocate(8).order(ByteOrder.BIG_ENDIAN).putLong(value).array(), 0, 8);
    }

    private void writeBytes(long offset, byte[] data, int from, int length) throws IOException {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = scratch.allocate(length, 4096);
            MemorySegment.copy(data, from, s, JAVA_BYTE, 0, length);
            file.write(offset, List.of(s));
        }
    }

    private static byte[] readBytes(DiskFile file, long offset, int length) throws IOException {
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = scratch.allocate(Math.max(1, length), 4096).asSlice(0, length);
            file.read(offset, List.of(s), true);
            return s.toArray(JAVA_BYTE);
        }
    }

    /** A table entry as the image stores it: big-endian. */
    private static final ValueLayout.OfLong TABLE_ENTRY = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN);

    /**
     * A table of {@code entries} big-endian longs at {@code offset}, read into native scratch memory and
     * copied (byte-swapped) into the array in one go: an L1 table the image's header sizes may be 32 MiB,
     * and going through a byte[] copy of it and a loop per entry doubled the heap an open allocates and
     * took most of the time of opening such an image. The scratch memory is at most {@link #TABLE_CHUNK}, read
     * into and copied out piece by piece: allocating (and so zeroing) scratch as large as the table took a
     * third of the time of opening hostile images (JFR, Qcow2DiskFuzzTest: SegmentFactories.initNativeMemory).
     */
    static long[] readTable(DiskFile file, long offset, int entries) throws IOException {
        long[] t = new long[entries];
        long length = entries * 8L;
        try (Arena scratch = Arena.ofConfined()) {
            MemorySegment s = scratch.allocate(Math.max(8, Math.min(length, TABLE_CHUNK)), 4096);
            for (long done = 0; done < length; ) {
                long n = Math.min(s.byteSize(), length - done);
                MemorySegment piece = s.asSlice(0, n);
                file.read(offset + done, List.of(piece), true);
                MemorySegment.copy(piece, TABLE_ENTRY, 0, t, (int) (done / 8), (int) (n / 8));
                done += n;
            }
        }
        return t;
    }

    /** Scratch memory for reading a table: a multiple of 4096 (direct I/O alignment) and of 8 (an entry). */
    static final long TABLE_CHUNK = 1 << 20;

    @Override
    public void flush() throws IOException {
        file.sync();
    }

    @Override
    public void close() {
        file.close();
        arena.close();
    }
}
