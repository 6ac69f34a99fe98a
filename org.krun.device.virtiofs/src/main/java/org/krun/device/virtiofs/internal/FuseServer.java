package org.krun.device.virtiofs.internal;

import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.function.BooleanSupplier;

import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.ShortChainException;
import org.krun.posix.Errno;

/**
 * A FUSE server (include/uapi/linux/fuse.h, protocol 7.31 as spoken here) over a {@link PassthroughFs}:
 * one request in from a descriptor chain's readable part, one reply out into its writable part. The
 * guest is untrusted: short headers, lengths that disagree with the chain, unknown opcodes and bad node
 * ids get error replies (or no reply when not even a header arrived), never an exception.
 */
final class FuseServer {
    private static final System.Logger LOG = System.getLogger(FuseServer.class.getName());

    static final int IN_HEADER = 40;
    static final int OUT_HEADER = 16;
    static final int KERNEL_VERSION = 7;
    static final int MINOR_VERSION = 31;
    static final int MAX_PAGES = 256;
    static final int MAX_WRITE = MAX_PAGES * 4096;
    /** Longest argument block accepted for anything but WRITE (names, xattr values up to 64 KiB, structs). */
    static final int MAX_ARGS = 128 * 1024;
    /** How long the guest may cache names and attributes: short, since host processes may change the tree. */
    static final long VALID_SECONDS = 1;

    // opcodes (enum fuse_opcode)
    static final int LOOKUP = 1;
    static final int FORGET = 2;
    static final int GETATTR = 3;
    static final int SETATTR = 4;
    static final int READLINK = 5;
    static final int SYMLINK = 6;
    static final int MKNOD = 8;
    static final int MKDIR = 9;
    static final int UNLINK = 10;
    static final int RMDIR = 11;
    static final int RENAME = 12;
    static final int LINK = 13;
    static final int OPEN = 14;
    static final int READ = 15;
    static final int WRITE = 16;
    static final int STATFS = 17;
    static final int RELEASE = 18;
    static final int FSYNC = 20;
    static final int SETXATTR = 21;
    static final int GETXATTR = 22;
    static final int LISTXATTR = 23;
    static final int REMOVEXATTR = 24;
    static final int FLUSH = 25;
    static final int INIT = 26;
    static final int OPENDIR = 27;
    static final int READDIR = 28;
    static final int RELEASEDIR = 29;
    static final int FSYNCDIR = 30;
    static final int GETLK = 31;
    static final int SETLK = 32;
    static final int SETLKW = 33;
    static final int ACCESS = 34;
    static final int CREATE = 35;
    static final int INTERRUPT = 36;
    static final int DESTROY = 38;
    static final int BATCH_FORGET = 42;
    static final int FALLOCATE = 43;
    static final int READDIRPLUS = 44;
    static final int RENAME2 = 45;
    static final int LSEEK = 46;
    static final int COPY_FILE_RANGE = 47;
    static final int SYNCFS = 50;

    // INIT flags
    static final int FUSE_ASYNC_READ = 1;
    static final int FUSE_POSIX_LOCKS = 1 << 1;
    static final int FUSE_ATOMIC_O_TRUNC = 1 << 3;
    static final int FUSE_BIG_WRITES = 1 << 5;
    static final int FUSE_FLOCK_LOCKS = 1 << 10;
    static final int FUSE_DO_READDIRPLUS = 1 << 13;
    static final int FUSE_READDIRPLUS_AUTO = 1 << 14;
    static final int FUSE_PARALLEL_DIROPS = 1 << 18;
    static final int FUSE_MAX_PAGES = 1 << 22;
    static final int OFFERED_FLAGS = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES
            | FUSE_FLOCK_LOCKS | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES;

    static final int FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1;
    static final int FUSE_LK_FLOCK = 1;
    static final int FUSE_FSYNC_FDATASYNC = 1;
    static final int GETATTR_FH = 1;

    static final int ENTRY_OUT_SIZE = 128;
    static final int ATTR_OUT_SIZE = 104;
    static final int DIRENT_HEADER = 24;

    private final PassthroughFs fs;

    FuseServer(PassthroughFs fs) {
        this.fs = fs;
    }

    PassthroughFs fs() {
        return fs;
    }

    /** A request's header (struct fuse_in_header). */
    record InHeader(int len, int opcode, long unique, long nodeid, int uid, int gid, int pid) {
    }

    /**
     * Serves one request. Returns the number of bytes written into the chain's writable part (the used
     * length), 0 when there is nothing to reply (FORGET, or a request too broken to answer).
     */
    int handle(ChainReader in, ChainWriter out, BooleanSupplier cancelled) {
        InHeader h;
        try {
            if (in.remaining() < IN_HEADER) {
                return 0; // not even a header: no unique to answer to
            }
            ByteBuffer hb = le(in.readBytes(IN_HEADER));
            h = new InHeader(hb.getInt(), hb.getInt(), hb.getLong(), hb.getLong(), hb.getInt(), hb.getInt(), hb.getInt());
        } catch (GuestMemoryException | ShortChainException e) {
            return 0;
        }
        try {
            long argLen = Integer.toUnsignedLong(h.len()) - IN_HEADER;
            if (argLen < 0 || argLen > in.remaining()) {
                return error(out, h, Errno.EINVAL);
            }
            if (h.opcode() == WRITE) {
                return write(h, in, argLen, out);
            }
            if (argLen > MAX_ARGS) {
                return error(out, h, Errno.EINVAL);
            }
            ByteBuffer args = le(in.readBytes((int) argLen));
            return dispatch(h, args, out, cancelled);
        } catch (FsException e) {
            return error(out, h, e.errno);
        } catch (GuestMemoryException | ShortChainException | java.nio.BufferUnderflowException e) {
            return error(out, h, Errno.EINVAL);
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "virtio-fs: opcode " + h.opcode() + " failed: " + e.toString());
            return error(out, h, Errno.EIO);
        }
    }

    private int dispatch(InHeader h, ByteBuffer a, ChainWriter out, BooleanSupplier cancelled) {
        PassthroughFs.Caller caller = new PassthroughFs.Caller(h.uid(), h.gid(), h.pid());
        long node = h.nodeid();
        switch (h.opcode()) {
            case INIT -> {
                return init(h, a, out);
            }
            case DESTROY -> {
                return ok(out, h);
            }
            case LOOKUP -> {
                return reply(out, h, entryOut(fs.lookup(node, name(a))));
            }
            case FORGET -> {
                fs.forget(node, a.getLong());
                return 0;
            }
            case BATCH_FORGET -> {
                int count = a.getInt();
                a.getInt();
                for (int i = 0; i < count && a.remaining() >= 16; i++) {
                    fs.forget(a.getLong(), a.getLong());
                }
                return 0;
            }
            case INTERRUPT -> {
                return 0; // nothing of ours waits in a way an interrupt could shorten; no reply is expected
            }
            case GETATTR -> {
                return reply(out, h, attrOut(fs.getattr(node)));
            }
            case SETATTR -> {
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
                PassthroughFs.SetAttr sa = new PassthroughFs.SetAttr(valid, fh, size, atime, atimeNsec, mtime, mtimeNsec,
                        mode, uid, gid);
                return reply(out, h, attrOut(fs.setattr(node, sa)));
            }
            case READLINK -> {
                return reply(out, h, fs.readlink(node));
            }
            case SYMLINK -> {
                byte[] name = name(a);
                byte[] target = name(a);
                return reply(out, h, entryOut(fs.symlink(node, name, target, caller)));
            }
            case MKNOD -> {
                int mode = a.getInt();
                int rdev = a.getInt();
                a.getInt(); // umask: the kernel applied it already (no FUSE_DONT_MASK)
                a.getInt();
                return reply(out, h, entryOut(fs.mknod(node, name(a), mode, rdev, caller)));
            }
            case MKDIR -> {
                int mode = a.getInt();
                a.getInt(); // umask
                return reply(out, h, entryOut(fs.mkdir(node, name(a), mode, caller)));
            }
            case UNLINK -> {
                fs.unlink(node, name(a), false);
                return ok(out, h);
            }
            case RMDIR -> {
                fs.unlink(node, name(a), true);
                return ok(out, h);
            }
            case RENAME -> {
                long newdir = a.getLong();
                byte[] oldName = name(a);
                fs.rename(node, oldName, newdir, name(a), 0);
                return ok(out, h);
            }
            case RENAME2 -> {
                long newdir = a.getLong();
                int flags = a.getInt();
                a.getInt();
                byte[] oldName = name(a);
                fs.rename(node, oldName, newdir, name(a), flags);
                return ok(out, h);
            }
            case LINK -> {
                long oldNode = a.getLong();
                return reply(out, h, entryOut(fs.link(oldNode, node, name(a))));
            }
            case OPEN -> {
                int flags = a.getInt();
                return reply(out, h, openOut(fs.open(node, flags)));
            }
            case CREATE -> {
                int flags = a.getInt();
                int mode = a.getInt();
                a.getInt(); // umask
                a.getInt(); // open_flags
                PassthroughFs.Opened o = fs.create(node, name(a), flags, mode, caller);
                return reply(out, h, concat(entryOut(o.entry()), openOut(o.fh())));
            }
            case READ -> {
                return read(h, a, out);
            }
            case STATFS -> {
                return reply(out, h, statfsOut(fs.statfs()));
            }
            case RELEASE, RELEASEDIR -> {
                long fh = a.getLong();
                a.getInt();
                int releaseFlags = a.getInt();
                if (h.opcode() == RELEASE && (releaseFlags & FUSE_RELEASE_FLOCK_UNLOCK) != 0) {
                    try {
                        fs.flockOp(fh, 8 /* LOCK_UN */, false, cancelled);
                    } catch (FsException e) {
                        // the handle goes away next anyway
                    }
                }
                if (h.opcode() == RELEASE) {
                    fs.release(fh);
                } else {
                    fs.releasedir(fh);
                }
                return ok(out, h);
            }
            case FLUSH -> {
                fs.flush(a.getLong());
                return ok(out, h);
            }
            case FSYNC, FSYNCDIR -> {
                long fh = a.getLong();
                boolean dataOnly = (a.getInt() & FUSE_FSYNC_FDATASYNC) != 0;
                fs.fsync(fh, dataOnly);
                return ok(out, h);
            }
            case SETXATTR -> {
                int size = a.getInt();
                int flags = a.getInt();
                byte[] name = name(a);
                if (size < 0 || size > a.remaining()) {
                    throw new FsException(Errno.EINVAL);
                }
                byte[] value = new byte[size];
                a.get(value);
                fs.setxattr(node, name, value, flags);
                return ok(out, h);
            }
            case GETXATTR -> {
                int size = a.getInt();
                a.getInt();
                byte[] name = name(a);
                if (size == 0) {
                    return xattrSize(out, h, fs.getxattr(node, name, 0).length);
                }
                return reply(out, h, fs.getxattr(node, name, Math.min(size, 64 * 1024)));
            }
            case LISTXATTR -> {
                int size = a.getInt();
                byte[] list = fs.listxattr(node);
                if (size == 0) {
                    return xattrSize(out, h, list.length);
                }
                if (list.length > size) {
                    throw new FsException(Errno.ERANGE);
                }
                return reply(out, h, list);
            }
            case REMOVEXATTR -> {
                fs.removexattr(node, name(a));
                return ok(out, h);
            }
            case OPENDIR -> {
                return reply(out, h, openOut(fs.opendir(node)));
            }
            case READDIR, READDIRPLUS -> {
                return readdir(h, a, out, h.opcode() == READDIRPLUS);
            }
            case GETLK -> {
                long fh = a.getLong();
                long owner = a.getLong();
                PassthroughFs.Lock l = fs.getlk(fh, owner, lock(a));
                ByteBuffer b = le(new byte[24]);
                b.putLong(l.start()).putLong(l.end()).putInt(l.type()).putInt(l.pid());
                return reply(out, h, b.array());
            }
            case SETLK, SETLKW -> {
                long fh = a.getLong();
                long owner = a.getLong();
                PassthroughFs.Lock l = lock(a);
                int lkFlags = a.getInt();
                boolean sleep = h.opcode() == SETLKW;
                if ((lkFlags & FUSE_LK_FLOCK) != 0) {
                    int op = switch (l.type()) {
                        case PassthroughFs.F_RDLCK -> 1; // LOCK_SH
                        case PassthroughFs.F_WRLCK -> 2; // LOCK_EX
                        default -> 8; // LOCK_UN
                    };
                    fs.flockOp(fh, op, sleep, cancelled);
                } else {
                    fs.setlk(fh, owner, l, sleep, cancelled);
                }
                return ok(out, h);
            }
            case ACCESS -> {
                fs.access(node, a.getInt());
                return ok(out, h);
            }
            case FALLOCATE -> {
                long fh = a.getLong();
                long offset = a.getLong();
                long length = a.getLong();
                int mode = a.getInt();
                fs.fallocate(fh, mode, offset, length);
                return ok(out, h);
            }
            case LSEEK -> {
                long fh = a.getLong();
                long offset = a.getLong();
                int whence = a.getInt();
                return reply(out, h, le(new byte[8]).putLong(fs.lseek(fh, offset, whence)).array());
            }
            case COPY_FILE_RANGE -> {
                long fhIn = a.getLong();
                long offIn = a.getLong();
                a.getLong(); // nodeid_out
                long fhOut = a.getLong();
                long offOut = a.getLong();
                long len = a.getLong();
                long n = fs.copyFileRange(fhIn, offIn, fhOut, offOut, Math.min(len, Integer.MAX_VALUE));
                return reply(out, h, le(new byte[8]).putInt((int) n).putInt(0).array());
            }
            case SYNCFS -> {
                fs.syncfs();
                return ok(out, h);
            }
            default -> {
                return error(out, h, Errno.ENOSYS); // BMAP, IOCTL, POLL, mappings, TMPFILE, STATX, unknown
            }
        }
    }

    // ---- INIT

    private int init(InHeader h, ByteBuffer a, ChainWriter out) {
        int major = a.getInt();
        int minor = a.getInt();
        int maxReadahead = a.remaining() >= 4 ? a.getInt() : 0;
        int flags = a.remaining() >= 4 ? a.getInt() : 0;
        ByteBuffer b = le(new byte[64]);
        if (major < KERNEL_VERSION) {
            return error(out, h, Errno.EPROTO);
        }
        b.putInt(KERNEL_VERSION);
        if (major > KERNEL_VERSION) {
            // §"FUSE_INIT": a newer kernel major gets ours, and asks again.
            return reply(out, h, java.util.Arrays.copyOf(b.array(), 8));
        }
        b.putInt(Math.min(minor, MINOR_VERSION));
        b.putInt(maxReadahead);
        b.putInt(flags & OFFERED_FLAGS);
        b.putShort((short) 16); // max_background
        b.putShort((short) 12); // congestion_threshold
        b.putInt(MAX_WRITE);
        b.putInt(1); // time_gran: nanoseconds
        b.putShort((short) MAX_PAGES);
        b.putShort((short) 0); // map_alignment
        return reply(out, h, b.array());
    }

    // ---- READ and WRITE: data moves between the host file and guest memory directly

    private int read(InHeader h, ByteBuffer a, ChainWriter out) {
        long fh = a.getLong();
        long offset = a.getLong();
        int size = a.getInt();
        if (out.remaining() < OUT_HEADER) {
            return 0;
        }
        if (size < 0 || offset < 0) {
            return error(out, h, Errno.EINVAL);
        }
        List<MemorySegment> header = out.take(OUT_HEADER);
        long room = Math.min(Integer.toUnsignedLong(size), out.remaining());
        List<MemorySegment> data = out.take(room);
        long n;
        try {
            n = fs.read(fh, offset, data);
        } catch (FsException e) {
            fill(header, outHeader(OUT_HEADER, -e.errno, h.unique()));
            return OUT_HEADER;
        }
        fill(header, outHeader(OUT_HEADER + (int) n, 0, h.unique()));
        return OUT_HEADER + (int) n;
    }

    private int write(InHeader h, ChainReader in, long argLen, ChainWriter out) {
        if (argLen < 40) {
            return error(out, h, Errno.EINVAL);
        }
        ByteBuffer w = le(in.readBytes(40));
        long fh = w.getLong();
        long offset = w.getLong();
        long size = Integer.toUnsignedLong(w.getInt());
        if (size != argLen - 40 || size > MAX_WRITE || offset < 0) {
            return error(out, h, Errno.EINVAL);
        }
        long n = fs.write(fh, offset, in.take(size));
        return reply(out, h, le(new byte[8]).putInt((int) n).putInt(0).array());
    }

    // ---- READDIR / READDIRPLUS

    private int readdir(InHeader h, ByteBuffer a, ChainWriter out, boolean plus) {
        long fh = a.getLong();
        long offset = a.getLong();
        int size = a.getInt();
        int room = (int) Math.min(Math.max(0, size), Math.max(0, out.remaining() - OUT_HEADER));
        ByteBuffer buf = le(new byte[room]);
        fs.readdir(fh, offset, e -> {
            int nameLen = e.name().length;
            int entrySize = align8((plus ? ENTRY_OUT_SIZE : 0) + DIRENT_HEADER + nameLen);
            if (entrySize > buf.remaining()) {
                return false;
            }
            boolean dots = (nameLen == 1 && e.name()[0] == '.') || (nameLen == 2 && e.name()[0] == '.' && e.name()[1] == '.');
            if (plus) {
                byte[] entry = new byte[ENTRY_OUT_SIZE];
                if (!dots) {
                    try {
                        entry = entryOut(fs.lookupForReaddir(h.nodeid(), e.name()));
                    } catch (FsException gone) {
                        return true; // vanished since getdents: leave it out
                    }
                }
                buf.put(entry);
            }
            int start = buf.position();
            buf.putLong(e.ino()).putLong(e.off()).putInt(nameLen).putInt(e.type()).put(e.name());
            while ((buf.position() - start) % 8 != 0) {
                buf.put((byte) 0);
            }
            return true;
        });
        return reply(out, h, java.util.Arrays.copyOf(buf.array(), buf.position()));
    }

    static int align8(int n) {
        return (n + 7) & ~7;
    }

    // ---- encoding

    static ByteBuffer le(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
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

    private static PassthroughFs.Lock lock(ByteBuffer a) {
        long start = a.getLong();
        long end = a.getLong();
        int type = a.getInt();
        int pid = a.getInt();
        if (type < PassthroughFs.F_RDLCK || type > PassthroughFs.F_UNLCK) {
            throw new FsException(Errno.EINVAL);
        }
        return new PassthroughFs.Lock(start, end, type, pid);
    }

    static byte[] attr(Stat s) {
        ByteBuffer b = le(new byte[88]);
        b.putLong(s.ino()).putLong(s.size()).putLong(s.blocks());
        b.putLong(s.atimeSec()).putLong(s.mtimeSec()).putLong(s.ctimeSec());
        b.putInt(s.atimeNsec()).putInt(s.mtimeNsec()).putInt(s.ctimeNsec());
        b.putInt(s.mode()).putInt(s.nlink()).putInt(s.uid()).putInt(s.gid()).putInt(s.fuseRdev()).putInt(s.blksize());
        b.putInt(0); // flags
        return b.array();
    }

    static byte[] entryOut(PassthroughFs.Entry e) {
        ByteBuffer b = le(new byte[ENTRY_OUT_SIZE]);
        b.putLong(e.nodeid()).putLong(0 /* generation: node ids are never reused */);
        b.putLong(VALID_SECONDS).putLong(VALID_SECONDS).putInt(0).putInt(0);
        b.put(attr(e.stat()));
        return b.array();
    }

    static byte[] attrOut(Stat s) {
        ByteBuffer b = le(new byte[ATTR_OUT_SIZE]);
        b.putLong(VALID_SECONDS).putInt(0).putInt(0).put(attr(s));
        return b.array();
    }

    static byte[] openOut(long fh) {
        return le(new byte[16]).putLong(fh).putInt(0).putInt(0).array();
    }

    /** struct fuse_statfs_out (struct fuse_kstatfs). */
    static byte[] statfsOut(PassthroughFs.StatFs s) {
        ByteBuffer b = le(new byte[80]);
        b.putLong(s.blocks()).putLong(s.bfree()).putLong(s.bavail()).putLong(s.files()).putLong(s.ffree());
        b.putInt((int) s.bsize()).putInt((int) s.namelen()).putInt((int) s.frsize()).putInt(0);
        return b.array();
    }

    /** GETXATTR/LISTXATTR with size 0: the guest asks how large the value is (struct fuse_getxattr_out). */
    private static int xattrSize(ChainWriter out, InHeader h, int actual) {
        return reply(out, h, le(new byte[8]).putInt(actual).putInt(0).array());
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    static byte[] outHeader(int len, int error, long unique) {
        return le(new byte[OUT_HEADER]).putInt(len).putInt(error).putLong(unique).array();
    }

    private static int ok(ChainWriter out, InHeader h) {
        return reply(out, h, new byte[0]);
    }

    /** Writes header + body; if the guest's buffer is too small for the body, the reply is an error. */
    private static int reply(ChainWriter out, InHeader h, byte[] body) {
        if (out.remaining() < OUT_HEADER) {
            return 0;
        }
        if (out.remaining() < OUT_HEADER + body.length) {
            return error(out, h, Errno.ERANGE);
        }
        out.write(outHeader(OUT_HEADER + body.length, 0, h.unique()));
        out.write(body);
        return OUT_HEADER + body.length;
    }

    private static int error(ChainWriter out, InHeader h, int errno) {
        if (out.remaining() < OUT_HEADER) {
            return 0;
        }
        out.write(outHeader(OUT_HEADER, -errno, h.unique()));
        return OUT_HEADER;
    }

    private static void fill(List<MemorySegment> segments, byte[] bytes) {
        int at = 0;
        for (MemorySegment s : segments) {
            int n = (int) s.byteSize();
            MemorySegment.copy(bytes, at, s, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, n);
            at += n;
        }
    }
}
