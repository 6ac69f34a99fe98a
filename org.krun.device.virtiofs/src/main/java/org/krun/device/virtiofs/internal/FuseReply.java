package org.krun.device.virtiofs.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.List;

import org.krun.posix.Errno;
import org.krun.spi.virtio.ChainWriter;

/**
 * Replies into the writable part of a chain: struct fuse_out_header then the body, and the body structs
 * (include/uapi/linux/fuse.h). A reply is written whole or not at all: a body that does not fit becomes
 * an ERANGE error, a chain without room for a header gets nothing (used length 0).
 */
final class FuseReply {
    private FuseReply() {
    }

    static byte[] outHeader(int len, int error, long unique) {
        return FuseRequest.le(new byte[Fuse.OUT_HEADER]).putInt(len).putInt(error).putLong(unique).array();
    }

    static int ok(ChainWriter out, long unique) {
        return reply(out, unique, new byte[0]);
    }

    /** Writes header + body; returns the used length. */
    static int reply(ChainWriter out, long unique, byte[] body) {
        if (out.remaining() < Fuse.OUT_HEADER) {
            return 0;
        }
        if (out.remaining() < Fuse.OUT_HEADER + body.length) {
            return error(out, unique, Errno.ERANGE);
        }
        out.write(outHeader(Fuse.OUT_HEADER + body.length, 0, unique));
        out.write(body);
        return Fuse.OUT_HEADER + body.length;
    }

    static int error(ChainWriter out, long unique, int errno) {
        if (out.remaining() < Fuse.OUT_HEADER) {
            return 0;
        }
        out.write(outHeader(Fuse.OUT_HEADER, -errno, unique));
        return Fuse.OUT_HEADER;
    }

    /** Copies {@code bytes} into guest buffers taken from a chain (a header reserved before its body). */
    static void fill(List<MemorySegment> segments, byte[] bytes) {
        int at = 0;
        for (MemorySegment s : segments) {
            int n = (int) s.byteSize();
            MemorySegment.copy(bytes, at, s, JAVA_BYTE, 0, n);
            at += n;
        }
    }

    // ---- bodies

    static byte[] attr(Stat s) {
        ByteBuffer b = FuseRequest.le(new byte[88]);
        b.putLong(s.ino()).putLong(s.size()).putLong(s.blocks());
        b.putLong(s.atimeSec()).putLong(s.mtimeSec()).putLong(s.ctimeSec());
        b.putInt(s.atimeNsec()).putInt(s.mtimeNsec()).putInt(s.ctimeNsec());
        b.putInt(s.mode()).putInt(s.nlink()).putInt(s.uid()).putInt(s.gid()).putInt(s.fuseRdev()).putInt(s.blksize());
        b.putInt(daxEligible(s) ? Fuse.FUSE_ATTR_DAX : 0); // flags
        return b.array();
    }

    /**
     * Whether a {@code dax=inode} mount maps the file through the DAX window: executables (a regular file with
     * an execute bit), which is what a run starts, and which are few at a time. Every file mapped through
     * the window holds at least one 2 MiB piece of it while in use, and a process whose mapped files need
     * more pieces than the window has makes the guest's kernel recycle pieces on every fault (a Mesa program,
     * 32 libraries with libLLVM's 112 MiB, never got through eglInitialize with every file in a 64 MiB
     * window): libraries and data (usually without execute bits) go through the guest's page cache. Ignored
     * by the guest for other mounts.
     */
    static boolean daxEligible(Stat s) {
        return s.isRegular() && (s.mode() & 0111) != 0;
    }

    /** struct fuse_entry_out. */
    static byte[] entryOut(PassthroughFs.Entry e) {
        ByteBuffer b = FuseRequest.le(new byte[Fuse.ENTRY_OUT_SIZE]);
        b.putLong(e.nodeid()).putLong(0 /* generation: node ids are never reused */);
        b.putLong(Fuse.VALID_SECONDS).putLong(Fuse.VALID_SECONDS).putInt(0).putInt(0);
        b.put(attr(e.stat()));
        return b.array();
    }

    /** struct fuse_attr_out. */
    static byte[] attrOut(Stat s) {
        ByteBuffer b = FuseRequest.le(new byte[Fuse.ATTR_OUT_SIZE]);
        b.putLong(Fuse.VALID_SECONDS).putInt(0).putInt(0).put(attr(s));
        return b.array();
    }

    /** struct fuse_open_out. */
    static byte[] openOut(long fh) {
        return openOut(new PassthroughFs.OpenFile(fh, false));
    }

    /** struct fuse_open_out of a file, with FOPEN_KEEP_CACHE when the guest may keep its cached pages. */
    static byte[] openOut(PassthroughFs.OpenFile f) {
        return FuseRequest.le(new byte[16]).putLong(f.fh()).putInt(f.keepCache() ? Fuse.FOPEN_KEEP_CACHE : 0).putInt(0)
                .array();
    }

    /** CREATE's reply: struct fuse_entry_out then struct fuse_open_out. */
    static byte[] createOut(PassthroughFs.Opened o) {
        byte[] entry = entryOut(o.entry());
        byte[] open = openOut(o.fh());
        byte[] r = java.util.Arrays.copyOf(entry, entry.length + open.length);
        System.arraycopy(open, 0, r, entry.length, open.length);
        return r;
    }

    /** struct fuse_statfs_out (struct fuse_kstatfs). */
    static byte[] statfsOut(PassthroughFs.StatFs s) {
        ByteBuffer b = FuseRequest.le(new byte[80]);
        b.putLong(s.blocks()).putLong(s.bfree()).putLong(s.bavail()).putLong(s.files()).putLong(s.ffree());
        b.putInt((int) s.bsize()).putInt((int) s.namelen()).putInt((int) s.frsize()).putInt(0);
        return b.array();
    }

    /** struct fuse_lk_out. */
    static byte[] lkOut(PassthroughFs.Lock l) {
        return FuseRequest.le(new byte[24]).putLong(l.start()).putLong(l.end()).putInt(l.type()).putInt(l.pid()).array();
    }

    /** struct fuse_write_out, and COPY_FILE_RANGE's reply. */
    static byte[] writeOut(long size) {
        return FuseRequest.le(new byte[8]).putInt((int) size).putInt(0).array();
    }

    /** struct fuse_getxattr_out: GETXATTR/LISTXATTR with size 0, the guest asks how large the value is. */
    static byte[] xattrSizeOut(int size) {
        return FuseRequest.le(new byte[8]).putInt(size).putInt(0).array();
    }

    /** struct fuse_lseek_out. */
    static byte[] lseekOut(long offset) {
        return FuseRequest.le(new byte[8]).putLong(offset).array();
    }

    /** struct fuse_dirent: ino, off, namelen, type, name, padded to 8 bytes. */
    static byte[] dirent(PassthroughFs.DirEntry e) {
        int size = align8(Fuse.DIRENT_HEADER + e.name().length);
        ByteBuffer b = FuseRequest.le(new byte[size]);
        b.putLong(e.ino()).putLong(e.off()).putInt(e.name().length).putInt(e.type()).put(e.name());
        return b.array();
    }

    static int align8(int n) {
        return (n + 7) & ~7;
    }
}
