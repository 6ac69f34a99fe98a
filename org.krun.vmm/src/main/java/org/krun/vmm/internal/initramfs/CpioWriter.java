package org.krun.vmm.internal.initramfs;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.StandardOpenOption;
import java.util.List;

/**
 * Writes the "newc" cpio format the Linux initramfs unpacker reads (Documentation/driver-api/
 * early-userspace/buffer-format.rst): a 110-byte ASCII header per member, the NUL-terminated name and the
 * data, each padded to 4 bytes, ending with the TRAILER!!! member.
 */
final class CpioWriter {
    static final int HEADER_SIZE = 110;
    static final String TRAILER = "TRAILER!!!";

    private CpioWriter() {
    }

    /** Exact size of the archive holding {@code entries}. */
    static long size(List<CpioEntry> entries) {
        long total = 0;
        for (CpioEntry e : entries) {
            total += memberSize(e.name(), e.size());
        }
        return total + memberSize(TRAILER, 0);
    }

    private static long memberSize(String name, long dataSize) {
        return pad4(HEADER_SIZE + name.getBytes(StandardCharsets.UTF_8).length + 1) + pad4(dataSize);
    }

    static long pad4(long n) {
        return (n + 3) & ~3L;
    }

    /**
     * Writes the archive into {@code out}, which must have {@link #size} bytes left. A host file whose size
     * changed since it was listed is an error: the archive's layout was computed from the listing.
     */
    static void write(List<CpioEntry> entries, ByteBuffer out) throws IOException {
        int ino = 1;
        for (CpioEntry e : entries) {
            writeMember(out, ino++, e);
        }
        writeMember(out, 0, new CpioEntry(TRAILER, 0, 0, 0, 0, 0, 0, null, null, 0));
    }

    private static void writeMember(ByteBuffer out, int ino, CpioEntry e) throws IOException {
        byte[] name = e.name().getBytes(StandardCharsets.UTF_8);
        boolean isDir = (e.mode() & CpioEntry.S_IFMT) == CpioEntry.S_IFDIR;
        String header = "070701" + hex(ino) + hex(e.mode()) + hex(e.uid()) + hex(e.gid()) + hex(isDir ? 2 : 1)
                + hex(e.mtime()) + hex(e.size()) + hex(0) + hex(0) + hex(e.rdevMajor()) + hex(e.rdevMinor())
                + hex(name.length + 1) + hex(0);
        int start = out.position();
        out.put(header.getBytes(StandardCharsets.US_ASCII));
        out.put(name);
        out.put((byte) 0);
        padTo4(out, start);
        int dataStart = out.position();
        if (e.data() != null) {
            out.put(e.data());
        } else if (e.source() != null) {
            copyFile(e, out);
        }
        padTo4(out, dataStart);
    }

    private static void copyFile(CpioEntry e, ByteBuffer out) throws IOException {
        ByteBuffer window = out.slice(out.position(), (int) e.size());
        try (FileChannel ch = FileChannel.open(e.source(), StandardOpenOption.READ)) {
            long pos = 0;
            while (window.hasRemaining()) {
                int n = ch.read(window, pos);
                if (n < 0) {
                    throw new IOException(e.source() + " shrank while the initramfs was built");
                }
                pos += n;
            }
        }
        out.position(out.position() + (int) e.size());
    }

    private static void padTo4(ByteBuffer out, int start) {
        while (((out.position() - start) & 3) != 0) {
            out.put((byte) 0);
        }
    }

    private static String hex(long v) {
        String s = Long.toHexString(v & 0xffffffffL);
        return "00000000".substring(s.length()) + s;
    }
}
