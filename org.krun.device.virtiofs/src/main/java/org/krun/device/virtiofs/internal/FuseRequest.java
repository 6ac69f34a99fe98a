package org.krun.device.virtiofs.internal;

import java.lang.foreign.MemorySegment;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.krun.posix.Errno;
import org.krun.spi.virtio.ChainReader;

/**
 * One FUSE request as the guest sent it, decoded from the readable part of a descriptor chain and not yet
 * executed: {@link #parse} checks lengths and fields and touches nothing on the host. Structs are those of
 * include/uapi/linux/fuse.h; names and values are copied out of guest memory, except WRITE's data, which
 * stays there (segments aliasing guest RAM) until the write copies it to the host file.
 */
sealed interface FuseRequest {

    /** A request's header (struct fuse_in_header). */
    record Header(int len, int opcode, long unique, long nodeid, int uid, int gid, int pid) {
        static Header read(ChainReader in) {
            ByteBuffer b = le(in.readBytes(Fuse.IN_HEADER));
            return new Header(b.getInt(), b.getInt(), b.getLong(), b.getLong(), b.getInt(), b.getInt(), b.getInt());
        }

        PassthroughFs.Caller caller() {
            return new PassthroughFs.Caller(uid, gid, pid);
        }
    }

    // ---- session
    /** FUSE_INIT; {@code flags2} is 0 unless {@code flags} has {@link Fuse#FUSE_INIT_EXT}. */
    record Init(int major, int minor, int maxReadahead, int flags, int flags2) implements FuseRequest {
    }

    record Destroy() implements FuseRequest {
    }

    record Interrupt(long unique) implements FuseRequest {
    }

    record StatFs() implements FuseRequest {
    }

    record SyncFs() implements FuseRequest {
    }

    /** An opcode this server does not implement (BMAP, IOCTL, POLL, mappings, TMPFILE, STATX, unknown). */
    record Unsupported(int opcode) implements FuseRequest {
    }

    // ---- DAX window (virtio-fs shared memory region 0)

    /** struct fuse_setupmapping_in: map {@code len} bytes of the node's file at {@code foffset} to {@code moffset}. */
    record SetupMapping(long fh, long foffset, long len, long flags, long moffset) implements FuseRequest {
    }

    /** struct fuse_removemapping_in (count), then count struct fuse_removemapping_one (moffset, len). */
    record RemoveMapping(long[] moffsets, long[] lengths) implements FuseRequest {
    }

    // ---- nodes and names
    record Lookup(byte[] name) implements FuseRequest {
    }

    /** FORGET and BATCH_FORGET: {@code nodeids[i]} loses {@code counts[i]} lookups. */
    record Forget(long[] nodeids, long[] counts) implements FuseRequest {
    }

    record GetAttr() implements FuseRequest {
    }

    record SetAttr(PassthroughFs.SetAttr attr) implements FuseRequest {
    }

    record Access(int mask) implements FuseRequest {
    }

    record ReadLink() implements FuseRequest {
    }

    record Symlink(byte[] name, byte[] target) implements FuseRequest {
    }

    record Mknod(int mode, int rdev, byte[] name) implements FuseRequest {
    }

    record Mkdir(int mode, byte[] name) implements FuseRequest {
    }

    /** UNLINK, or RMDIR when {@code directory}. */
    record Unlink(byte[] name, boolean directory) implements FuseRequest {
    }

    /** RENAME (flags 0) and RENAME2. */
    record Rename(long newParent, byte[] oldName, byte[] newName, int flags) implements FuseRequest {
    }

    record Link(long oldNodeid, byte[] name) implements FuseRequest {
    }

    // ---- open files
    /** OPEN, or OPENDIR when {@code directory}. */
    record Open(int flags, boolean directory) implements FuseRequest {
    }

    record Create(int flags, int mode, byte[] name) implements FuseRequest {
    }

    record Read(long fh, long offset, int size) implements FuseRequest {
    }

    /** WRITE: {@code data} aliases the guest's buffers. */
    record Write(long fh, long offset, long size, List<MemorySegment> data) implements FuseRequest {
    }

    /** RELEASE, or RELEASEDIR when {@code directory}. */
    record Release(long fh, int releaseFlags, boolean directory) implements FuseRequest {
    }

    record Flush(long fh, long lockOwner) implements FuseRequest {
    }

    /** FSYNC, or FSYNCDIR when {@code directory}. */
    record Fsync(long fh, boolean dataOnly, boolean directory) implements FuseRequest {
    }

    record Fallocate(long fh, long offset, long length, int mode) implements FuseRequest {
    }

    record Lseek(long fh, long offset, int whence) implements FuseRequest {
    }

    record CopyFileRange(long fhIn, long offIn, long fhOut, long offOut, long length) implements FuseRequest {
    }

    /** READDIR, or READDIRPLUS when {@code plus}. */
    record ReadDir(long fh, long offset, int size, boolean plus) implements FuseRequest {
    }

    // ---- extended attributes
    record SetXattr(byte[] name, byte[] value, int flags) implements FuseRequest {
    }

    record GetXattr(byte[] name, int size) implements FuseRequest {
    }

    record ListXattr(int size) implements FuseRequest {
    }

    record RemoveXattr(byte[] name) implements FuseRequest {
    }

    // ---- locks
    record GetLk(long fh, long owner, PassthroughFs.Lock lock) implements FuseRequest {
    }

    /** SETLK and SETLKW ({@code sleep}); a BSD flock when {@code flock} (FUSE_LK_FLOCK). */
    record SetLk(long fh, long owner, PassthroughFs.Lock lock, boolean flock, boolean sleep) implements FuseRequest {
    }

    /**
     * Reads the arguments of the request {@code h} heads from the rest of the chain and decodes them. The
     * header's length must match what the chain holds; arguments are at most {@link Fuse#MAX_ARGS} bytes
     * except WRITE's data, at most {@link Fuse#MAX_WRITE}.
     *
     * @throws FsException EINVAL for lengths that disagree, short or malformed arguments
     * @throws org.krun.spi.memory.GuestMemoryException when a buffer lies outside guest RAM
     */
    static FuseRequest parse(Header h, ChainReader in) {
        long argLen = Integer.toUnsignedLong(h.len()) - Fuse.IN_HEADER;
        if (argLen < 0 || argLen > in.remaining()) {
            throw new FsException(Errno.EINVAL);
        }
        if (h.opcode() == Fuse.WRITE) {
            return write(in, argLen);
        }
        if (argLen > Fuse.MAX_ARGS) {
            throw new FsException(Errno.EINVAL);
        }
        try {
            return decode(h, le(in.readBytes((int) argLen)));
        } catch (BufferUnderflowException e) {
            throw new FsException(Errno.EINVAL); // arguments shorter than the opcode's struct
        }
    }

    /** struct fuse_write_in, then exactly {@code size} bytes of data, at most max_write. */
    private static Write write(ChainReader in, long argLen) {
        if (argLen < Fuse.WRITE_IN_SIZE) {
            throw new FsException(Errno.EINVAL);
        }
        ByteBuffer w = le(in.readBytes(Fuse.WRITE_IN_SIZE));
        long fh = w.getLong();
        long offset = w.getLong();
        long size = Integer.toUnsignedLong(w.getInt());
        if (size != argLen - Fuse.WRITE_IN_SIZE || size > Fuse.MAX_WRITE || offset < 0) {
            throw new FsException(Errno.EINVAL);
        }
        return new Write(fh, offset, size, in.take(size));
    }

    private static FuseRequest decode(Header h, ByteBuffer a) {
        int opcode = h.opcode();
        return switch (opcode) {
            case Fuse.INIT -> {
                int major = a.getInt();
                int minor = a.getInt();
                int maxReadahead = a.remaining() >= 4 ? a.getInt() : 0;
                int flags = a.remaining() >= 4 ? a.getInt() : 0;
                int flags2 = (flags & Fuse.FUSE_INIT_EXT) != 0 && a.remaining() >= 4 ? a.getInt() : 0;
                yield new Init(major, minor, maxReadahead, flags, flags2);
            }
            case Fuse.DESTROY -> new Destroy();
            case Fuse.INTERRUPT -> new Interrupt(a.getLong());
            case Fuse.STATFS -> new StatFs();
            case Fuse.SYNCFS -> new SyncFs();
            case Fuse.LOOKUP -> new Lookup(name(a));
            case Fuse.FORGET -> new Forget(new long[] {h.nodeid()}, new long[] {a.getLong()});
            case Fuse.BATCH_FORGET -> batchForget(a);
            case Fuse.GETATTR -> new GetAttr();
            case Fuse.SETATTR -> setattr(a);
            case Fuse.ACCESS -> new Access(a.getInt());
            case Fuse.READLINK -> new ReadLink();
            case Fuse.SYMLINK -> new Symlink(name(a), name(a));
            case Fuse.MKNOD -> {
                int mode = a.getInt();
                int rdev = a.getInt();
                a.getInt(); // umask: the kernel applied it already (no FUSE_DONT_MASK)
                a.getInt();
                yield new Mknod(mode, rdev, name(a));
            }
            case Fuse.MKDIR -> {
                int mode = a.getInt();
                a.getInt(); // umask
                yield new Mkdir(mode, name(a));
            }
            case Fuse.UNLINK, Fuse.RMDIR -> new Unlink(name(a), opcode == Fuse.RMDIR);
            case Fuse.RENAME -> {
                long newdir = a.getLong();
                yield new Rename(newdir, name(a), name(a), 0);
            }
            case Fuse.RENAME2 -> {
                long newdir = a.getLong();
                int flags = a.getInt();
                a.getInt();
                yield new Rename(newdir, name(a), name(a), flags);
            }
            case Fuse.LINK -> {
                long oldNode = a.getLong();
                yield new Link(oldNode, name(a));
            }
            case Fuse.OPEN -> new Open(a.getInt(), false);
            case Fuse.OPENDIR -> new Open(0, true);
            case Fuse.CREATE -> {
                int flags = a.getInt();
                int mode = a.getInt();
                a.getInt(); // umask
                a.getInt(); // open_flags
                yield new Create(flags, mode, name(a));
            }
            case Fuse.READ -> new Read(a.getLong(), a.getLong(), a.getInt());
            case Fuse.RELEASE, Fuse.RELEASEDIR -> {
                long fh = a.getLong();
                a.getInt(); // flags
                yield new Release(fh, a.getInt(), opcode == Fuse.RELEASEDIR);
            }
            case Fuse.FLUSH -> {
                long fh = a.getLong();
                a.getInt(); // unused
                a.getInt(); // padding
                yield new Flush(fh, a.getLong());
            }
            case Fuse.FSYNC, Fuse.FSYNCDIR ->
                    new Fsync(a.getLong(), (a.getInt() & Fuse.FUSE_FSYNC_FDATASYNC) != 0, opcode == Fuse.FSYNCDIR);
            case Fuse.FALLOCATE -> new Fallocate(a.getLong(), a.getLong(), a.getLong(), a.getInt());
            case Fuse.LSEEK -> new Lseek(a.getLong(), a.getLong(), a.getInt());
            case Fuse.COPY_FILE_RANGE -> {
                long fhIn = a.getLong();
                long offIn = a.getLong();
                a.getLong(); // nodeid_out
                yield new CopyFileRange(fhIn, offIn, a.getLong(), a.getLong(), a.getLong());
            }
            case Fuse.READDIR, Fuse.READDIRPLUS -> new ReadDir(a.getLong(), a.getLong(), a.getInt(), opcode == Fuse.READDIRPLUS);
            case Fuse.SETXATTR -> setxattr(a);
            case Fuse.GETXATTR -> {
                int size = a.getInt();
                a.getInt();
                yield new GetXattr(name(a), size);
            }
            case Fuse.LISTXATTR -> new ListXattr(a.getInt());
            case Fuse.REMOVEXATTR -> new RemoveXattr(name(a));
            case Fuse.GETLK -> new GetLk(a.getLong(), a.getLong(), lock(a));
            case Fuse.SETLK, Fuse.SETLKW -> {
                long fh = a.getLong();
                long owner = a.getLong();
                PassthroughFs.Lock l = lock(a);
                int lkFlags = a.getInt();
                yield new SetLk(fh, owner, l, (lkFlags & Fuse.FUSE_LK_FLOCK) != 0, opcode == Fuse.SETLKW);
            }
            case Fuse.SETUPMAPPING -> new SetupMapping(a.getLong(), a.getLong(), a.getLong(), a.getLong(), a.getLong());
            case Fuse.REMOVEMAPPING -> removeMapping(a);
            default -> new Unsupported(opcode);
        };
    }

    /** Exactly {@code count} entries, 1 to {@link Fuse#REMOVEMAPPING_MAX}: anything else is refused unexecuted. */
    private static RemoveMapping removeMapping(ByteBuffer a) {
        long count = Integer.toUnsignedLong(a.getInt());
        if (count == 0 || count > Fuse.REMOVEMAPPING_MAX || count * 16 != a.remaining()) {
            throw new FsException(Errno.EINVAL);
        }
        long[] moffsets = new long[(int) count];
        long[] lengths = new long[(int) count];
        for (int i = 0; i < count; i++) {
            moffsets[i] = a.getLong();
            lengths[i] = a.getLong();
        }
        return new RemoveMapping(moffsets, lengths);
    }

    /** struct fuse_batch_forget_in (count, dummy), then count struct fuse_forget_one, as many as arrived. */
    private static Forget batchForget(ByteBuffer a) {
        int count = a.getInt();
        a.getInt();
        int n = (int) Math.min(Integer.toUnsignedLong(count), a.remaining() / 16);
        long[] nodeids = new long[n];
        long[] counts = new long[n];
        for (int i = 0; i < n; i++) {
            nodeids[i] = a.getLong();
            counts[i] = a.getLong();
        }
        return new Forget(nodeids, counts);
    }

    /** struct fuse_setattr_in. */
    private static SetAttr setattr(ByteBuffer a) {
        int valid = a.getInt();
        a.getInt();
        long fh = a.getLong();
        long size = a.getLong();
        a.getLong(); // lock_owner
        long atime = a.getLong();
        long mtime = a.getLong();
        a.getLong(); // ctime
        int atimeNsec = a.getInt();
        int mtimeNsec = a.getInt();
        a.getInt(); // ctimensec
        int mode = a.getInt();
        a.getInt();
        int uid = a.getInt();
        int gid = a.getInt();
        return new SetAttr(new PassthroughFs.SetAttr(valid, fh, size, atime, atimeNsec, mtime, mtimeNsec, mode, uid, gid));
    }

    /** struct fuse_setxattr_in (size, flags), the name, then the value of {@code size} bytes. */
    private static SetXattr setxattr(ByteBuffer a) {
        int size = a.getInt();
        int flags = a.getInt();
        byte[] name = name(a);
        if (size < 0 || size > a.remaining()) {
            throw new FsException(Errno.EINVAL);
        }
        byte[] value = new byte[size];
        a.get(value);
        return new SetXattr(name, value, flags);
    }

    /**
     * struct fuse_file_lock: start, end (inclusive; OFFSET_MAX for "to the end"), type, pid. The kernel
     * never sends a negative start or an end before the start (fs/fuse/file.c fuse_lk_fill from a checked
     * struct file_lock), so those are refused.
     */
    private static PassthroughFs.Lock lock(ByteBuffer a) {
        long start = a.getLong();
        long end = a.getLong();
        int type = a.getInt();
        int pid = a.getInt();
        if (type < PassthroughFs.F_RDLCK || type > PassthroughFs.F_UNLCK || start < 0 || end < start) {
            throw new FsException(Errno.EINVAL);
        }
        return new PassthroughFs.Lock(start, end, type, pid);
    }

    /** A NUL-terminated name from the arguments. */
    static byte[] name(ByteBuffer a) {
        int start = a.position();
        int end = start;
        while (end < a.limit() && a.get(end) != 0) {
            end++;
        }
        if (end >= a.limit()) {
            throw new FsException(Errno.EINVAL); // not terminated
        }
        byte[] n = new byte[end - start];
        a.get(n);
        a.get(); // the NUL
        return n;
    }

    static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }
}
