package org.krun.device.virtiofs.internal;

import static org.krun.device.virtiofs.internal.FuseReply.error;
import static org.krun.device.virtiofs.internal.FuseReply.ok;
import static org.krun.device.virtiofs.internal.FuseReply.reply;

import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.Arrays;
import java.util.function.Consumer;

import org.krun.device.virtiofs.internal.FuseRequest.*;
import org.krun.posix.Errno;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.RateLimitedLog;
import org.krun.spi.virtio.ShortChainException;

/**
 * A FUSE server (include/uapi/linux/fuse.h, protocol 7.31 as spoken here) over a {@link PassthroughFs},
 * for one virtio-fs activation: one request in from a descriptor chain's readable part, decoded by
 * {@link FuseRequest#parse}, then executed by the handler of its family, one reply out into the chain's
 * writable part.
 *
 * <p>The guest is untrusted: short headers, lengths that disagree with the chain, unknown opcodes, bad
 * node ids and sizes beyond what INIT negotiated get error replies (or no reply when not even a header
 * arrived), and whatever fails while serving (an {@link Error} included) is answered with EIO: a request
 * always gets its chain back. Nothing is allocated by a size the guest chose beyond the negotiated
 * maximums; READ and READDIR write straight into guest memory.
 */
final class FuseServer {
    private static final System.Logger LOG = System.getLogger(FuseServer.class.getName());
    /** Largest COPY_FILE_RANGE done in one request (it may copy less; the guest asks again for the rest). */
    static final long MAX_COPY = 16L << 20;

    private final PassthroughFs fs;
    /** The activation's DAX window, or null when the device has none (SETUPMAPPING is then ENOSYS). */
    private final DaxWindow dax;
    private final LockWaits waits = new LockWaits();
    private final Consumer<String> guestErrors;
    private final Consumer<String> hostErrors;

    /** A server whose guest and host errors go to this class's logger, at most one every 10 s each. */
    FuseServer(PassthroughFs fs) {
        this(fs, null);
    }

    /** A server with a DAX window ({@code dax} may be null) whose errors go to this class's logger. */
    FuseServer(PassthroughFs fs, DaxWindow dax) {
        this(fs, dax, new RateLimitedLog(m -> LOG.log(Level.WARNING, m), Duration.ofSeconds(10))::warn,
                new RateLimitedLog(m -> LOG.log(Level.ERROR, m), Duration.ofSeconds(10))::warn);
    }

    /** @param guestErrors and {@code hostErrors}: rate-limited sinks (the device's) */
    FuseServer(PassthroughFs fs, DaxWindow dax, Consumer<String> guestErrors, Consumer<String> hostErrors) {
        this.fs = fs;
        this.dax = dax;
        this.guestErrors = guestErrors;
        this.hostErrors = hostErrors;
    }

    PassthroughFs fs() {
        return fs;
    }

    /** The DAX window, or null. */
    DaxWindow dax() {
        return dax;
    }

    LockWaits waits() {
        return waits;
    }

    /**
     * Serves one request from a request queue. Returns the number of bytes written into the chain's
     * writable part (the used length), 0 when there is nothing to reply (FORGET, INTERRUPT, or a request
     * too broken to answer).
     */
    int handle(ChainReader in, ChainWriter out) {
        Header h = header(in);
        if (h == null) {
            return 0; // not even a header: no unique to answer to
        }
        return handle(h, in, out);
    }

    /**
     * Serves one request from the hiprio queue, on the VM's event loop: only FORGET, BATCH_FORGET and
     * INTERRUPT belong there (virtio 1.2 §5.11.6.2: "The driver MUST not submit normal requests on the
     * hiprio queue"), and none of them waits or replies. Anything else is refused with EINVAL, unexecuted,
     * so nothing on this queue can block the loop.
     */
    int handleHighPriority(ChainReader in, ChainWriter out) {
        Header h = header(in);
        if (h == null) {
            return 0;
        }
        if (!Fuse.isHighPriority(h.opcode())) {
            guestErrors.accept("opcode " + h.opcode() + " on the hiprio queue refused (it carries only FORGET,"
                    + " BATCH_FORGET and INTERRUPT)");
            return failed(h, out, new FsException(Errno.EINVAL));
        }
        return handle(h, in, out);
    }

    private int handle(Header h, ChainReader in, ChainWriter out) {
        try {
            return execute(h, FuseRequest.parse(h, in), out);
        } catch (Throwable t) {
            return failed(h, out, t);
        }
    }

    /** Whether the chain holds a request that may wait for a lock (SETLKW): such requests get threads of their own. */
    static boolean mayWait(ChainReader in) {
        Header h = header(in);
        return h != null && h.opcode() == Fuse.SETLKW;
    }

    /** The device is resetting or closing: every lock wait ends now with EINTR, and every later one at once. */
    void cancelWaits() {
        waits.cancelAll();
    }

    private static Header header(ChainReader in) {
        try {
            return in.remaining() < Fuse.IN_HEADER ? null : Header.read(in);
        } catch (GuestMemoryException | ShortChainException e) {
            return null;
        }
    }

    /** The reply to a request that threw {@code t}: its errno, EINVAL for a broken chain, EIO (logged) for anything else. */
    private int failed(Header h, ChainWriter out, Throwable t) {
        int errno = errno(h, t);
        if (out.position() != 0) {
            return 0; // a reply had begun: no header can be put in front of it any more
        }
        try {
            return error(out, h.unique(), errno);
        } catch (RuntimeException e) {
            return 0; // the reply buffer itself is outside guest RAM
        }
    }

    private int errno(Header h, Throwable t) {
        return switch (t) {
            case FsException e -> e.errno;
            case GuestMemoryException e -> Errno.EINVAL;
            case ShortChainException e -> Errno.EINVAL;
            default -> {
                hostErrors.accept("opcode " + h.opcode() + " failed: " + t);
                yield Errno.EIO;
            }
        };
    }

    // ---- execution: one line per request, one handler per family

    private int execute(Header h, FuseRequest request, ChainWriter out) {
        long u = h.unique();
        long node = h.nodeid();
        return switch (request) {
            // session
            case Init r -> {
                dropMappings(); // a new connection knows none of the old one's
                yield init(u, r, out);
            }
            case Destroy _ -> {
                dropMappings(); // the guest's kernel sends no REMOVEMAPPING once it has said DESTROY
                yield ok(out, u);
            }
            case Interrupt r -> interrupt(r);
            case StatFs _ -> reply(out, u, FuseReply.statfsOut(fs.statfs()));
            case SyncFs _ -> run(() -> fs.syncfs(), out, u);
            case Unsupported r -> error(out, u, Errno.ENOSYS);
            // nodes and names
            case Lookup r -> reply(out, u, FuseReply.entryOut(fs.lookup(node, r.name())));
            case Forget r -> forget(r);
            case GetAttr _ -> reply(out, u, FuseReply.attrOut(fs.getattr(node)));
            case SetAttr r -> reply(out, u, FuseReply.attrOut(fs.setattr(node, r.attr())));
            case Access r -> run(() -> fs.access(node, r.mask()), out, u);
            case ReadLink _ -> reply(out, u, fs.readlink(node));
            case Symlink r -> reply(out, u, FuseReply.entryOut(fs.symlink(node, r.name(), r.target(), h.caller())));
            case Mknod r -> reply(out, u, FuseReply.entryOut(fs.mknod(node, r.name(), r.mode(), r.rdev(), h.caller())));
            case Mkdir r -> reply(out, u, FuseReply.entryOut(fs.mkdir(node, r.name(), r.mode(), h.caller())));
            case Unlink r -> run(() -> fs.unlink(node, r.name(), r.directory()), out, u);
            case Rename r -> run(() -> fs.rename(node, r.oldName(), r.newParent(), r.newName(), r.flags()), out, u);
            case Link r -> reply(out, u, FuseReply.entryOut(fs.link(r.oldNodeid(), node, r.name())));
            // open files and directories
            case Open r -> reply(out, u, r.directory() ? FuseReply.openOut(fs.opendir(node))
                    : FuseReply.openOut(fs.openFile(node, r.flags())));
            case Create r -> reply(out, u, FuseReply.createOut(fs.create(node, r.name(), r.flags(), r.mode(), h.caller())));
            case Read r -> DirectReplies.read(fs, u, r, out, t -> errno(h, t));
            case Write r -> reply(out, u, FuseReply.writeOut(fs.write(r.fh(), r.offset(), r.data())));
            case Release r -> release(u, r, out);
            case Flush r -> flush(u, r, out);
            case Fsync r -> run(() -> fs.fsync(r.fh(), r.dataOnly()), out, u);
            case Fallocate r -> run(() -> fs.fallocate(r.fh(), r.mode(), r.offset(), r.length()), out, u);
            case Lseek r -> reply(out, u, FuseReply.lseekOut(fs.lseek(r.fh(), r.offset(), r.whence())));
            case CopyFileRange r -> reply(out, u, FuseReply.writeOut(
                    fs.copyFileRange(r.fhIn(), r.offIn(), r.fhOut(), r.offOut(), Math.clamp(r.length(), 0, MAX_COPY))));
            case ReadDir r -> DirectReplies.readdir(fs, h, r, out, t -> errno(h, t));
            // extended attributes
            case SetXattr r -> run(() -> fs.setxattr(node, r.name(), r.value(), r.flags()), out, u);
            case GetXattr r -> getxattr(h, r, out);
            case ListXattr r -> listxattr(h, r, out);
            case RemoveXattr r -> run(() -> fs.removexattr(node, r.name()), out, u);
            // locks
            case GetLk r -> reply(out, u, FuseReply.lkOut(fs.locks().getlk(r.fh(), r.owner(), r.lock())));
            case SetLk r -> setlk(h, r, out);
            // DAX window
            case SetupMapping r -> setupMapping(h, r, out);
            case RemoveMapping r -> removeMapping(u, r, out);
        };
    }

    private static int run(Runnable operation, ChainWriter out, long unique) {
        operation.run();
        return ok(out, unique);
    }

    // ---- session

    private int init(long unique, Init r, ChainWriter out) {
        ByteBuffer b = FuseRequest.le(new byte[64]);
        if (r.major() < Fuse.KERNEL_VERSION) {
            return error(out, unique, Errno.EPROTO);
        }
        b.putInt(Fuse.KERNEL_VERSION);
        if (r.major() > Fuse.KERNEL_VERSION) {
            // §"FUSE_INIT": a newer kernel major gets ours, and asks again.
            return reply(out, unique, Arrays.copyOf(b.array(), 8));
        }
        b.putInt(Math.min(r.minor(), Fuse.MINOR_VERSION));
        b.putInt(r.maxReadahead());
        // A share with a DAX window says per file which ones a dax=inode mount maps (FUSE_ATTR_DAX).
        boolean inodeDax = dax != null && (r.flags() & Fuse.FUSE_INIT_EXT) != 0
                && (r.flags2() & Fuse.FLAGS2_HAS_INODE_DAX) != 0;
        b.putInt((r.flags() & Fuse.OFFERED_FLAGS) | (inodeDax ? Fuse.FUSE_INIT_EXT : 0));
        b.putShort((short) 16); // max_background
        b.putShort((short) 12); // congestion_threshold
        b.putInt(Fuse.MAX_WRITE);
        b.putInt(1); // time_gran: nanoseconds
        b.putShort((short) Fuse.MAX_PAGES);
        b.putShort((short) Fuse.MAP_ALIGNMENT_SHIFT); // map_alignment: pages
        b.putInt(inodeDax ? Fuse.FLAGS2_HAS_INODE_DAX : 0); // flags2
        return reply(out, unique, b.array());
    }

    /** INTERRUPT: ends the lock wait of that request, if it waits or comes to wait; never replied to. */
    private int interrupt(Interrupt r) {
        waits.interrupt(r.unique());
        return 0;
    }

    /** FORGET and BATCH_FORGET: never replied to. */
    private int forget(Forget r) {
        for (int i = 0; i < r.nodeids().length; i++) {
            fs.forget(r.nodeids()[i], r.counts()[i]);
        }
        return 0;
    }

    // ---- DAX window

    /**
     * SETUPMAPPING: the node's file (the kernel sends fh -1 and names the node) at foffset, mapped at
     * moffset in the window, readable and, with FLAG_WRITE, writable. Checked against the window before
     * the file is opened; a range already mapped exactly is replaced.
     */
    private int setupMapping(Header h, SetupMapping r, ChainWriter out) {
        if (dax == null) {
            return error(out, h.unique(), Errno.ENOSYS);
        }
        if ((r.flags() & ~(Fuse.SETUPMAPPING_FLAG_READ | Fuse.SETUPMAPPING_FLAG_WRITE)) != 0) {
            throw new FsException(Errno.EINVAL);
        }
        boolean writable = (r.flags() & Fuse.SETUPMAPPING_FLAG_WRITE) != 0;
        dax.check(r.moffset(), r.len(), r.foffset());
        int fd = fs.openForMapping(h.nodeid(), writable);
        try {
            dax.map(r.moffset(), r.len(), fd, r.foffset(), writable);
        } finally {
            HostFs.close(fd);
        }
        return ok(out, h.unique());
    }

    private void dropMappings() {
        if (dax != null) {
            dax.removeAll();
        }
    }

    /** REMOVEMAPPING: every entry must name a mapping exactly; those before a bad one are removed. */
    private int removeMapping(long unique, RemoveMapping r, ChainWriter out) {
        if (dax == null) {
            return error(out, unique, Errno.ENOSYS);
        }
        for (int i = 0; i < r.moffsets().length; i++) {
            dax.remove(r.moffsets()[i], r.lengths()[i]);
        }
        return ok(out, unique);
    }

    // ---- open files

    private int release(long unique, Release r, ChainWriter out) {
        if (r.directory()) {
            fs.releasedir(r.fh());
        } else {
            if ((r.releaseFlags() & Fuse.FUSE_RELEASE_FLOCK_UNLOCK) != 0) {
                try {
                    fs.locks().flock(r.fh(), FileLocks.LOCK_UN, null);
                } catch (FsException e) {
                    // the handle goes away next anyway
                }
            }
            fs.release(r.fh());
            waits.wakeAll(); // its locks went with it
        }
        return ok(out, unique);
    }

    /** FLUSH: the guest closed a descriptor of the file, which drops its process's POSIX locks (fcntl(2)). */
    private int flush(long unique, Flush r, ChainWriter out) {
        fs.flush(r.fh());
        fs.locks().releaseOwner(r.fh(), r.lockOwner());
        waits.wakeAll();
        return ok(out, unique);
    }

    // ---- extended attributes

    /** GETXATTR: size 0 asks for the value's size; otherwise the value, in a buffer of at most 64 KiB as the kernel clamps it. */
    private int getxattr(Header h, GetXattr r, ChainWriter out) {
        if (r.size() == 0) {
            return reply(out, h.unique(), FuseReply.xattrSizeOut(fs.getxattrSize(h.nodeid(), r.name())));
        }
        int size = (int) Math.min(Integer.toUnsignedLong(r.size()), Fuse.MAX_XATTR);
        return reply(out, h.unique(), fs.getxattr(h.nodeid(), r.name(), size));
    }

    private int listxattr(Header h, ListXattr r, ChainWriter out) {
        byte[] list = fs.listxattr(h.nodeid());
        if (r.size() == 0) {
            return reply(out, h.unique(), FuseReply.xattrSizeOut(list.length));
        }
        if (list.length > Integer.toUnsignedLong(r.size())) {
            throw new FsException(Errno.ERANGE);
        }
        return reply(out, h.unique(), list);
    }

    // ---- locks

    /** SETLK and SETLKW, POSIX or BSD (FUSE_LK_FLOCK); a waiting one ends early with EINTR on INTERRUPT, reset or close. */
    private int setlk(Header h, SetLk r, ChainWriter out) {
        try (LockWaits.Wait wait = r.sleep() ? waits.begin(h.unique()) : null) {
            if (r.flock()) {
                int op = switch (r.lock().type()) {
                    case PassthroughFs.F_RDLCK -> FileLocks.LOCK_SH;
                    case PassthroughFs.F_WRLCK -> FileLocks.LOCK_EX;
                    default -> FileLocks.LOCK_UN;
                };
                fs.locks().flock(r.fh(), op, wait);
            } else {
                fs.locks().setlk(r.fh(), r.owner(), r.lock(), wait);
            }
        }
        if (r.lock().type() == PassthroughFs.F_UNLCK) {
            waits.wakeAll();
        }
        return ok(out, h.unique());
    }
}
