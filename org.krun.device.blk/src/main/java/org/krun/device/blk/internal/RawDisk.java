package org.krun.device.blk.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import org.krun.posix.PosixIo;

/**
 * A raw image: the file is the disk, byte for byte. Discard punches holes in the file
 * ({@code FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE}), so the host reclaims the space; write-zeroes
 * punches too when the guest allows unmapping, and otherwise zeroes the range in place and keeps it allocated
 * ({@code FALLOC_FL_ZERO_RANGE}), falling back to writing zeroes where the file system cannot.
 */
final class RawDisk implements DiskBackend {

    /** Granularity of hole punching on common host file systems (their block size). */
    static final int DISCARD_GRANULARITY = 4096;
    private static final long ZERO_CHUNK = 1 << 20;

    private final DiskFile file;
    private final long capacity;

    private RawDisk(DiskFile file, long capacity) {
        this.file = file;
        this.capacity = capacity;
    }

    /**
     * Uses {@code file} as a raw disk; its size, rounded down to a whole sector, is the capacity. Takes
     * ownership of {@code file}.
     */
    static RawDisk open(DiskFile file) throws IOException {
        try {
            long size = file.size();
            if (size < 512) {
                throw new IOException("disk " + file.path() + " is smaller than one 512-byte sector (" + size + " bytes)");
            }
            return new RawDisk(file, size & ~511L);
        } catch (IOException | RuntimeException e) {
            file.close();
            throw e;
        }
    }

    @Override
    public long capacity() {
        return capacity;
    }

    @Override
    public void read(long offset, List<MemorySegment> dst) throws IOException {
        file.read(offset, dst, false);
    }

    @Override
    public void write(long offset, List<MemorySegment> src) throws IOException {
        file.write(offset, src);
    }

    @Override
    public void flush() throws IOException {
        file.sync();
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        // Discard is a hint (virtio 1.2 §5.2.6.2: the device MAY deallocate): nothing to do where holes cannot be punched.
        file.fallocate(PosixIo.FALLOC_FL_PUNCH_HOLE | PosixIo.FALLOC_FL_KEEP_SIZE, offset, length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        // virtio 1.2 §5.2.6.2: after write-zeroes the range MUST read as zeroes, unmapped or not.
        if (mayUnmap && file.fallocate(PosixIo.FALLOC_FL_PUNCH_HOLE | PosixIo.FALLOC_FL_KEEP_SIZE, offset, length)) {
            return;
        }
        if (file.fallocate(PosixIo.FALLOC_FL_ZERO_RANGE | PosixIo.FALLOC_FL_KEEP_SIZE, offset, length)) {
            return;
        }
        writeZeroBytes(file, offset, length);
    }

    /** Writes zeroes over {@code [offset, offset + length)} a chunk at a time. */
    static void writeZeroBytes(DiskFile file, long offset, long length) throws IOException {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment zeros = arena.allocate(Math.min(length, ZERO_CHUNK), 4096);
            for (long done = 0; done < length; ) {
                long n = Math.min(zeros.byteSize(), length - done);
                file.write(offset + done, List.of(zeros.asSlice(0, n)));
                done += n;
            }
        }
    }

    @Override
    public int discardGranularity() {
        return DISCARD_GRANULARITY;
    }

    @Override
    public void close() {
        file.close();
    }
}
