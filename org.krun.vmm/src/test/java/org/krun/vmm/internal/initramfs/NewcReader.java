package org.krun.vmm.internal.initramfs;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Reads a newc cpio archive the way the kernel's init/initramfs.c does, checking the format's rules as it
 * goes: the magic, 4-byte alignment of every header and every body, NUL-terminated names, and a
 * TRAILER!!! member at the end.
 */
final class NewcReader {

    record Member(String name, long ino, int mode, int uid, int gid, int nlink, long mtime, int devMajor,
            int devMinor, int rdevMajor, int rdevMinor, long check, byte[] data) {
        int type() {
            return mode & CpioEntry.S_IFMT;
        }

        int permissions() {
            return mode & 07777;
        }

        String text() {
            return new String(data, StandardCharsets.UTF_8);
        }
    }

    /** The archive members in order, TRAILER!!! included; {@code end} gets the offset after it. */
    static List<Member> read(byte[] archive, int start, int[] end) {
        List<Member> out = new ArrayList<>();
        int at = start;
        while (true) {
            assertEquals(0, (at - start) % 4, "member at " + at + " is 4-byte aligned");
            String header = new String(archive, at, 110, StandardCharsets.US_ASCII);
            assertEquals("070701", header.substring(0, 6), "magic at " + at);
            long[] f = new long[13];
            for (int i = 0; i < 13; i++) {
                f[i] = Long.parseLong(header.substring(6 + 8 * i, 14 + 8 * i), 16);
            }
            int nameSize = (int) f[11];
            assertEquals(0, archive[at + 110 + nameSize - 1], "name is NUL-terminated");
            String name = new String(archive, at + 110, nameSize - 1, StandardCharsets.UTF_8);
            int dataAt = pad4(at + 110 + nameSize - start) + start;
            for (int i = at + 110 + nameSize; i < dataAt; i++) {
                assertEquals(0, archive[i], "name padding of " + name + " is zero");
            }
            int size = (int) f[6];
            byte[] data = new byte[size];
            System.arraycopy(archive, dataAt, data, 0, size);
            int next = pad4(dataAt + size - start) + start;
            for (int i = dataAt + size; i < next; i++) {
                assertEquals(0, archive[i], "data padding of " + name + " is zero");
            }
            out.add(new Member(name, f[0], (int) f[1], (int) f[2], (int) f[3], (int) f[4], f[5], (int) f[7],
                    (int) f[8], (int) f[9], (int) f[10], f[12], data));
            at = next;
            if (name.equals(CpioWriter.TRAILER)) {
                end[0] = at;
                return out;
            }
        }
    }

    static List<Member> read(byte[] archive) {
        int[] end = new int[1];
        List<Member> members = read(archive, 0, end);
        assertEquals(archive.length, end[0], "the archive ends with its trailer");
        return members;
    }

    private static int pad4(int n) {
        return (n + 3) & ~3;
    }
}
