package org.krun.device.blk.internal;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.List;

/**
 * Where a disk's sectors live on the host (a raw file, a qcow2 image). The device hands it validated byte
 * ranges (sector-aligned, inside {@link #capacity()}) and the guest's buffers; it may be called from several
 * I/O threads at once, and {@link #close()} comes after the last call has returned.
 */
interface DiskBackend extends AutoCloseable {

    /** The disk's size in bytes, a multiple of 512. */
    long capacity();

    /** Fills {@code dst} with the bytes at {@code offset}. */
    void read(long offset, List<MemorySegment> dst) throws IOException;

    /** Stores {@code src} at {@code offset}; the bytes have reached the host kernel when this returns. */
    void write(long offset, List<MemorySegment> src) throws IOException;

    /** Makes everything written so far, data and metadata, durable on the host's storage. */
    void flush() throws IOException;

    /**
     * The guest no longer needs {@code [offset, offset + length)}: give the space back to the host where the
     * format allows (reads of the range may then return zeroes or the old bytes).
     */
    void discard(long offset, long length) throws IOException;

    /**
     * Makes {@code [offset, offset + length)} read as zeroes; with {@code mayUnmap} the space may be
     * deallocated as by {@link #discard}.
     */
    void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException;

    /** The granularity, in bytes (a multiple of 512), at which {@link #discard} gives space back. */
    int discardGranularity();

    @Override
    void close();
}
