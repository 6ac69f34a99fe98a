package org.krun.device.blk.internal;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.List;

import org.krun.posix.PosixIo;
import org.krun.posix.Errno;
import org.krun.posix.Posix;

/**
 * One open image file: positional vectored I/O straight between the file and the caller's segments (guest
 * memory, for zero-copy requests), {@code fdatasync} and {@code fallocate}. Holds an advisory lock
 * ({@code flock}) for its lifetime, exclusive when writable and shared when read-only, so two VMs never
 * write one image. Safe for concurrent I/O from several threads; {@link #close()} must come after the last.
 *
 * <p>With {@code O_DIRECT} a second descriptor without it serves requests whose offset or buffers are not
 * sector-aligned, or that the file system refuses ({@code EINVAL}) for its own alignment; the kernel keeps
 * the two coherent (direct I/O writes back and invalidates cached pages of its range).
 */
final class DiskFile implements AutoCloseable {

    /** The alignment O_DIRECT is tried with; the file system may demand more (then the buffered path serves). */
    static final int DIRECT_ALIGNMENT = 512;

    private final Path path;
    private final boolean writable;
    private final int fd;
    /** {@link #fd} when not direct; otherwise a second, buffered descriptor. */
    private final int bufferedFd;
    private boolean closed;

    private DiskFile(Path path, boolean writable, int fd, int bufferedFd) {
        this.path = path;
        this.writable = writable;
        this.fd = fd;
        this.bufferedFd = bufferedFd;
    }

    /**
     * Opens {@code path} (never creating it): read-only or read-write, with {@code O_DIRECT} and
     * {@code O_DSYNC} as asked, and takes its lock.
     *
     * @throws IOException with a one-line message naming the file when it cannot be opened or is in use
     */
    static DiskFile open(Path path, boolean writable, boolean direct, boolean dsync) throws IOException {
        int flags = (writable ? Posix.O_RDWR : Posix.O_RDONLY) | Posix.O_CLOEXEC | (dsync ? PosixIo.O_DSYNC : 0);
        int fd = Posix.open(path.toString(), flags | (direct ? PosixIo.O_DIRECT : 0));
        if (fd < 0) {
            if (direct && -fd == Errno.EINVAL) {
                throw new IOException("disk " + path + ": its file system does not support O_DIRECT (drop 'direct')");
            }
            throw new IOException("cannot open disk " + path + (writable ? " for writing" : "") + ": "
                    + Errno.describe(-fd));
        }
        int buffered = fd;
        try {
            if (direct) {
                buffered = Posix.open(path.toString(), flags);
                if (buffered < 0) {
                    throw new IOException("cannot open disk " + path + ": " + Errno.describe(-buffered));
                }
            }
            int r = PosixIo.flock(fd, (writable ? PosixIo.LOCK_EX : PosixIo.LOCK_SH) | PosixIo.LOCK_NB);
            if (r == -Errno.EAGAIN) {
                throw new IOException("disk " + path + " is in use by another VM or process (it holds a lock on it)");
            }
            if (r < 0) {
                throw new IOException("cannot lock disk " + path + ": " + Errno.describe(-r));
            }
            return new DiskFile(path, writable, fd, buffered);
        } catch (IOException | RuntimeException e) {
            if (buffered >= 0 && buffered != fd) {
                Posix.close(buffered);
            }
            Posix.close(fd);
            throw e;
        }
    }

    Path path() {
        return path;
    }

    /** The (direct, when asked for) descriptor, for tests that inspect its flags. */
    int fd() {
        return fd;
    }

    boolean writable() {
        return writable;
    }

    /** The file's size in bytes (a block device's size, for a device node). */
    long size() throws IOException {
        long r = PosixIo.lseek(fd, 0, PosixIo.SEEK_END);
        if (r < 0) {
            throw new IOException("lseek " + path + ": " + Errno.name((int) -r));
        }
        return r;
    }

    /**
     * Reads {@code size(dst)} bytes at {@code offset} into {@code dst}. Past the end of the file the rest of
     * {@code dst} is zeroed when {@code zeroPastEnd}, and the read fails otherwise.
     */
    void read(long offset, List<MemorySegment> dst, boolean zeroPastEnd) throws IOException {
        transfer(false, offset, dst, zeroPastEnd);
    }

    /** Writes all of {@code src} at {@code offset}. */
    void write(long offset, List<MemorySegment> src) throws IOException {
        transfer(true, offset, src, false);
    }

    private void transfer(boolean write, long offset, List<MemorySegment> buffers, boolean zeroPastEnd)
            throws IOException {
        int useFd = fd != bufferedFd && offset % DIRECT_ALIGNMENT == 0 && Segments.aligned(buffers, DIRECT_ALIGNMENT)
                ? fd : bufferedFd;
        List<MemorySegment> rest = buffers;
        int index = 0;
        long position = offset;
        while (index < rest.size()) {
            int count = Math.min(rest.size() - index, PosixIo.IOV_MAX);
            long want = 0;
            for (int i = index; i < index + count; i++) {
                want += rest.get(i).byteSize();
            }
            if (want == 0) {
                index += count;
                continue;
            }
            long r = write ? PosixIo.pwritev(useFd, rest, index, count, position)
                    : PosixIo.preadv(useFd, rest, index, count, position);
            if (r == -Errno.EINTR || r == -Errno.EAGAIN) {
                continue;
            }
            if (r == -Errno.EINVAL && useFd != bufferedFd) {
                useFd = bufferedFd; // the file system wants larger alignment than these buffers have
                continue;
            }
            if (r < 0) {
                throw new IOException((write ? "pwritev " : "preadv ") + path + " at " + position + ": "
                        + Errno.name((int) -r));
            }
            if (r == 0) {
                if (!write && zeroPastEnd) {
                    Segments.zero(rest.subList(index, rest.size()));
                    return;
                }
                throw new IOException((write ? "pwritev " : "preadv ") + path + " at " + position
                        + ": unexpected end of file");
            }
            position += r;
            if (r == want) {
                index += count;
                continue;
            }
            // A short transfer: continue from the first byte not moved.
            List<MemorySegment> left = Segments.slice(rest.subList(index, rest.size()), r,
                    Segments.size(rest.subList(index, rest.size())) - r);
            rest = left;
            index = 0;
        }
    }

    /** fdatasync(2): what was written is on stable storage. */
    void sync() throws IOException {
        int r;
        do {
            r = PosixIo.fdatasync(fd);
        } while (r == -Errno.EINTR);
        if (r < 0) {
            throw new IOException("fdatasync " + path + ": " + Errno.name(-r));
        }
    }

    /**
     * fallocate(2) with {@code mode}; false when the file system does not support that mode (EOPNOTSUPP),
     * so the caller can try another way.
     */
    boolean fallocate(int mode, long offset, long length) throws IOException {
        int r;
        do {
            r = PosixIo.fallocate(fd, mode, offset, length);
        } while (r == -Errno.EINTR);
        if (r == -Errno.EOPNOTSUPP || r == -Errno.ENOSYS) {
            return false;
        }
        if (r < 0) {
            throw new IOException("fallocate " + path + " at " + offset + "+" + length + ": " + Errno.name(-r));
        }
        return true;
    }

    /** Sets the file's size to {@code length} (growing it leaves a hole that reads as zeroes). */
    void truncate(long length) throws IOException {
        int r;
        do {
            r = PosixIo.ftruncate(fd, length);
        } while (r == -Errno.EINTR);
        if (r < 0) {
            throw new IOException("ftruncate " + path + " to " + length + ": " + Errno.name(-r));
        }
    }

    /** Releases the descriptors (and with them the lock). Idempotent. */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (bufferedFd != fd) {
                Posix.close(bufferedFd);
            }
            Posix.close(fd);
        }
    }
}
