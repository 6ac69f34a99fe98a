package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.ShortChainException;

/**
 * One virtio-blk request as the driver laid it out (virtio 1.2 §5.2.6): a device-readable header
 * {@code {le32 type; le32 reserved; le64 sector}}, the data, and a device-writable status byte, the chain's
 * last writable byte. {@link #parse} reads the layout without executing anything and without trusting it;
 * {@link #check} then judges the request against the disk.
 *
 * <p>Data buffers are the guest's own memory ({@link ChainReader#take}, {@link ChainWriter#take}): the I/O
 * goes straight between them and the image file.
 */
sealed interface BlkRequest {

    int VIRTIO_BLK_T_IN = 0;
    int VIRTIO_BLK_T_OUT = 1;
    int VIRTIO_BLK_T_FLUSH = 4;
    int VIRTIO_BLK_T_GET_ID = 8;
    int VIRTIO_BLK_T_DISCARD = 11;
    int VIRTIO_BLK_T_WRITE_ZEROES = 13;

    int VIRTIO_BLK_S_OK = 0;
    int VIRTIO_BLK_S_IOERR = 1;
    int VIRTIO_BLK_S_UNSUPP = 2;

    /** The header: type, reserved, sector. */
    int HEADER_SIZE = 16;
    int SECTOR_SIZE = 512;
    /** struct virtio_blk_discard_write_zeroes: le64 sector, le32 num_sectors, le32 flags. */
    int RANGE_SIZE = 16;
    /** virtio_blk_discard_write_zeroes flags: the device may deallocate (write-zeroes only). */
    int FLAG_UNMAP = 1;
    /** VIRTIO_BLK_ID_BYTES: the device ID string's size. */
    int ID_BYTES = 20;
    /** The most ranges {@link #parse} reads from one discard or write-zeroes request. */
    int MAX_PARSED_RANGES = 256;

    /** Where the status byte goes; null when the chain has no usable one (return the chain with length 0). */
    MemorySegment status();

    /**
     * The length to return with the chain: the bytes of its writable part, which ends with the status byte
     * (0 when there is no status byte).
     */
    int usedLength();

    /** VIRTIO_BLK_T_IN: read {@code data.size} bytes at {@code sector} into the guest. */
    record Read(long sector, List<MemorySegment> data, long length, MemorySegment status, int usedLength)
            implements BlkRequest {
    }

    /** VIRTIO_BLK_T_OUT: write the guest's {@code data} at {@code sector}. */
    record Write(long sector, List<MemorySegment> data, long length, MemorySegment status, int usedLength)
            implements BlkRequest {
    }

    /** VIRTIO_BLK_T_FLUSH. */
    record Flush(MemorySegment status, int usedLength) implements BlkRequest {
    }

    /** VIRTIO_BLK_T_GET_ID: the device ID string into {@code data} (up to {@link #ID_BYTES}). */
    record GetId(List<MemorySegment> data, MemorySegment status, int usedLength) implements BlkRequest {
    }

    /** One range of a discard or write-zeroes request. */
    record Range(long sector, long numSectors, int flags) {
    }

    /** VIRTIO_BLK_T_DISCARD. */
    record Discard(List<Range> ranges, MemorySegment status, int usedLength) implements BlkRequest {
    }

    /** VIRTIO_BLK_T_WRITE_ZEROES. */
    record WriteZeroes(List<Range> ranges, MemorySegment status, int usedLength) implements BlkRequest {
    }

    /** A request type this device does not implement: answered VIRTIO_BLK_S_UNSUPP. */
    record Unsupported(int type, MemorySegment status, int usedLength) implements BlkRequest {
    }

    /** A request whose layout is wrong: answered VIRTIO_BLK_S_IOERR, or returned unanswered without a status byte. */
    record Malformed(String reason, MemorySegment status, int usedLength) implements BlkRequest {
    }

    /**
     * Reads the request in {@code chain}. Never throws for anything the driver did: a bad layout, a buffer
     * outside guest RAM or an absurd size becomes {@link Malformed}.
     */
    static BlkRequest parse(DescriptorChain chain, GuestMemory mem) {
        long writable = chain.writableBytes();
        long readable = chain.readableBytes();
        if (writable == 0) {
            return new Malformed("no device-writable status byte", null, 0);
        }
        if (writable > 0xffff_ffffL) {
            // the used length is a le32 (virtio 1.2 §2.7.8): a longer writable part cannot be reported
            return new Malformed("writable part of " + writable + " bytes", null, 0);
        }
        int used = (int) writable;
        MemorySegment status;
        try {
            ChainWriter w = chain.writer(mem);
            w.skip(writable - 1);
            status = w.take(1).get(0);
        } catch (GuestMemoryException e) {
            return new Malformed("status byte outside guest RAM", null, 0);
        }
        if (readable < HEADER_SIZE) {
            return new Malformed("request header of " + readable + " bytes", status, used);
        }
        int type;
        long sector;
        try {
            ChainReader r = chain.reader(mem);
            ByteBuffer h = ByteBuffer.wrap(r.readBytes(HEADER_SIZE)).order(ByteOrder.LITTLE_ENDIAN);
            type = h.getInt(0);
            sector = h.getLong(8);
        } catch (GuestMemoryException | ShortChainException e) {
            return new Malformed("request header unreadable: " + e.getMessage(), status, used);
        }
        try {
            return switch (type) {
                case VIRTIO_BLK_T_IN -> parseRead(chain, mem, sector, readable, writable, status, used);
                case VIRTIO_BLK_T_OUT -> parseWrite(chain, mem, sector, readable, writable, status, used);
                case VIRTIO_BLK_T_FLUSH -> new Flush(status, used);
                case VIRTIO_BLK_T_GET_ID -> new GetId(chain.writer(mem).take(Math.min(writable - 1, ID_BYTES)), status, used);
                case VIRTIO_BLK_T_DISCARD, VIRTIO_BLK_T_WRITE_ZEROES -> parseRanges(type, chain, mem, readable, status, used);
                default -> new Unsupported(type, status, used);
            };
        } catch (GuestMemoryException | ShortChainException e) {
            return new Malformed("request buffers unusable: " + e.getMessage(), status, used);
        }
    }

    private static BlkRequest parseRead(DescriptorChain chain, GuestMemory mem, long sector, long readable,
            long writable, MemorySegment status, int used) {
        if (readable != HEADER_SIZE) {
            return new Malformed("read request with " + (readable - HEADER_SIZE) + " device-readable data bytes", status, used);
        }
        long length = writable - 1;
        if (length % SECTOR_SIZE != 0) {
            return new Malformed("read of " + length + " bytes, not whole sectors", status, used);
        }
        return new Read(sector, chain.writer(mem).take(length), length, status, used);
    }

    private static BlkRequest parseWrite(DescriptorChain chain, GuestMemory mem, long sector, long readable,
            long writable, MemorySegment status, int used) {
        if (writable != 1) {
            return new Malformed("write request with " + (writable - 1) + " device-writable data bytes", status, used);
        }
        long length = readable - HEADER_SIZE;
        if (length % SECTOR_SIZE != 0) {
            return new Malformed("write of " + length + " bytes, not whole sectors", status, used);
        }
        ChainReader r = chain.reader(mem);
        r.skip(HEADER_SIZE);
        return new Write(sector, r.take(length), length, status, used);
    }

    private static BlkRequest parseRanges(int type, DescriptorChain chain, GuestMemory mem, long readable,
            MemorySegment status, int used) {
        long payload = readable - HEADER_SIZE;
        if (payload == 0 || payload % RANGE_SIZE != 0) {
            return new Malformed("discard/write-zeroes payload of " + payload + " bytes", status, used);
        }
        if (payload / RANGE_SIZE > MAX_PARSED_RANGES) {
            return new Malformed((payload / RANGE_SIZE) + " discard/write-zeroes ranges", status, used);
        }
        ChainReader r = chain.reader(mem);
        r.skip(HEADER_SIZE);
        ByteBuffer b = ByteBuffer.wrap(r.readBytes((int) payload)).order(ByteOrder.LITTLE_ENDIAN);
        List<Range> ranges = new ArrayList<>((int) (payload / RANGE_SIZE));
        while (b.hasRemaining()) {
            ranges.add(new Range(b.getLong(), b.getInt() & 0xffff_ffffL, b.getInt()));
        }
        return type == VIRTIO_BLK_T_DISCARD ? new Discard(ranges, status, used) : new WriteZeroes(ranges, status, used);
    }

    /**
     * What the disk allows: its size, whether it is read-only, the negotiated optional requests and the
     * limits the device announced in its configuration space.
     */
    record Limits(long capacitySectors, boolean readOnly, boolean discard, boolean writeZeroes, int maxDiscardSeg,
            long maxDiscardSectors, int maxWriteZeroesSeg, long maxWriteZeroesSectors) {
    }

    /**
     * Judges a parsed request against the disk: {@link #VIRTIO_BLK_S_OK} when it may execute, otherwise the
     * status to answer with (virtio 1.2 §5.2.6.2).
     */
    static int check(BlkRequest request, Limits limits) {
        return switch (request) {
            case Malformed m -> VIRTIO_BLK_S_IOERR;
            case Unsupported u -> VIRTIO_BLK_S_UNSUPP;
            case Flush f -> VIRTIO_BLK_S_OK;
            case GetId g -> VIRTIO_BLK_S_OK;
            case Read r -> inside(r.sector(), r.length() / SECTOR_SIZE, limits.capacitySectors())
                    ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
            // "A device MUST set the status byte to VIRTIO_BLK_S_IOERR for a write request if the
            // VIRTIO_BLK_F_RO feature if offered, and MUST NOT write any data."
            case Write w -> limits.readOnly() || !inside(w.sector(), w.length() / SECTOR_SIZE, limits.capacitySectors())
                    ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
            case Discard d -> checkRanges(d.ranges(), true, limits.discard(), limits.maxDiscardSeg(),
                    limits.maxDiscardSectors(), limits);
            case WriteZeroes z -> checkRanges(z.ranges(), false, limits.writeZeroes(), limits.maxWriteZeroesSeg(),
                    limits.maxWriteZeroesSectors(), limits);
        };
    }

    private static int checkRanges(List<Range> ranges, boolean discard, boolean negotiated, int maxSeg,
            long maxSectors, Limits limits) {
        if (!negotiated) {
            return VIRTIO_BLK_S_UNSUPP;
        }
        for (Range r : ranges) {
            // "the device MUST set the status byte to VIRTIO_BLK_S_UNSUPP for discard, secure erase and write
            // zeroes commands if any unknown flag is set ... for discard commands if the unmap flag is set."
            if ((r.flags() & ~FLAG_UNMAP) != 0 || (discard && r.flags() != 0)) {
                return VIRTIO_BLK_S_UNSUPP;
            }
        }
        if (limits.readOnly() || ranges.size() > maxSeg) {
            return VIRTIO_BLK_S_IOERR;
        }
        for (Range r : ranges) {
            if (r.numSectors() > maxSectors || !inside(r.sector(), r.numSectors(), limits.capacitySectors())) {
                return VIRTIO_BLK_S_IOERR;
            }
        }
        return VIRTIO_BLK_S_OK;
    }

    /**
     * Whether {@code count} sectors from {@code sector} (an unsigned 64-bit guest value) lie inside a disk of
     * {@code capacity} sectors, computed without overflow.
     */
    static boolean inside(long sector, long count, long capacity) {
        return Long.compareUnsigned(sector, capacity) <= 0 && count >= 0 && count <= capacity - sector;
    }

    /** Writes {@code status} into the request's status byte. */
    static void writeStatus(BlkRequest request, int status) {
        request.status().set(JAVA_BYTE, 0, (byte) status);
    }
}
