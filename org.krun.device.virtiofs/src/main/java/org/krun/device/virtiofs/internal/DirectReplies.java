package org.krun.device.virtiofs.internal;

import static org.krun.device.virtiofs.internal.FuseReply.error;
import static org.krun.device.virtiofs.internal.FuseReply.fill;
import static org.krun.device.virtiofs.internal.FuseReply.outHeader;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.function.ToIntFunction;

import org.krun.posix.Errno;
import org.krun.spi.virtio.ChainWriter;

/**
 * READ and READDIR/READDIRPLUS: replies written straight into the guest's buffers, with no heap buffer of
 * the guest's size in between. The header's place is taken first and filled last, once the length or the
 * error is known; so these handlers answer their own failures, and always with a well-formed reply.
 * Sizes above the negotiated maximum ({@link Fuse#MAX_READ}: max_pages pages) are refused with EINVAL,
 * which no kernel that negotiated them sends.
 */
final class DirectReplies {
    private DirectReplies() {
    }

    /** READ: file data from the host straight into the guest's buffers. */
    static int read(PassthroughFs fs, long unique, FuseRequest.Read r, ChainWriter out, ToIntFunction<Throwable> errno) {
        if (r.size() < 0 || r.size() > Fuse.MAX_READ || r.offset() < 0) {
            return error(out, unique, Errno.EINVAL);
        }
        if (out.remaining() < Fuse.OUT_HEADER) {
            return 0;
        }
        List<MemorySegment> header = out.take(Fuse.OUT_HEADER);
        long n;
        try {
            n = fs.read(r.fh(), r.offset(), out.take(Math.min(r.size(), out.remaining())));
        } catch (Throwable t) {
            fill(header, outHeader(Fuse.OUT_HEADER, -errno.applyAsInt(t), unique));
            return Fuse.OUT_HEADER;
        }
        fill(header, outHeader(Fuse.OUT_HEADER + (int) n, 0, unique));
        return Fuse.OUT_HEADER + (int) n;
    }

    /**
     * READDIR and READDIRPLUS: as many whole entries as fit in {@code size} and the guest's buffers, each
     * written into them as it comes. READDIRPLUS looks each entry up (a lookup count the guest then holds)
     * except "." and "..", and entries it may not look up ({@link PassthroughFs#lookupForReaddir}): those
     * carry node id 0, which the kernel takes as "no attributes for this one" (fs/fuse/readdir.c,
     * fuse_direntplus_link).
     */
    static int readdir(PassthroughFs fs, FuseRequest.Header h, FuseRequest.ReadDir r, ChainWriter out,
            ToIntFunction<Throwable> errno) {
        if (Integer.toUnsignedLong(r.size()) > Fuse.MAX_READ) {
            return error(out, h.unique(), Errno.EINVAL);
        }
        if (out.remaining() < Fuse.OUT_HEADER) {
            return 0;
        }
        List<MemorySegment> header = out.take(Fuse.OUT_HEADER);
        long room = Math.min(r.size(), out.remaining());
        long start = out.position();
        long[] complete = {start}; // the end of the last whole entry
        try {
            fs.readdir(r.fh(), r.offset(), e -> {
                int size = (r.plus() ? Fuse.ENTRY_OUT_SIZE : 0) + FuseReply.align8(Fuse.DIRENT_HEADER + e.name().length);
                if (out.position() - start + size > room) {
                    return false;
                }
                if (!r.plus()) {
                    out.write(FuseReply.dirent(e));
                    complete[0] = out.position();
                    return true;
                }
                PassthroughFs.Entry looked = null;
                if (!dots(e.name())) {
                    try {
                        looked = fs.lookupForReaddir(h.nodeid(), e.name());
                    } catch (FsException gone) {
                        if (gone.errno == Errno.ENOENT) {
                            return true; // vanished since getdents: leave it out
                        }
                    }
                }
                try {
                    out.write(looked == null ? new byte[Fuse.ENTRY_OUT_SIZE] : FuseReply.entryOut(looked));
                    out.write(FuseReply.dirent(e));
                } catch (RuntimeException guestMemory) {
                    if (looked != null) {
                        fs.forget(looked.nodeid(), 1); // the guest never saw it
                    }
                    throw guestMemory;
                }
                complete[0] = out.position();
                return true;
            });
        } catch (Throwable t) {
            if (complete[0] == start) {
                fill(header, outHeader(Fuse.OUT_HEADER, -errno.applyAsInt(t), h.unique()));
                return Fuse.OUT_HEADER;
            }
            // Whole entries went out before the failure: they stand, and the next READDIR resumes after them.
        }
        int length = (int) (complete[0] - start) + Fuse.OUT_HEADER;
        fill(header, outHeader(length, 0, h.unique()));
        return length;
    }

    private static boolean dots(byte[] name) {
        return (name.length == 1 && name[0] == '.') || (name.length == 2 && name[0] == '.' && name[1] == '.');
    }
}
