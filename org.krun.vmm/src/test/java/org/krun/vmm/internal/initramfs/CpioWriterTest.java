package org.krun.vmm.internal.initramfs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;

class CpioWriterTest {

    private static byte[] write(List<CpioEntry> entries) throws IOException {
        byte[] out = new byte[(int) CpioWriter.size(entries)];
        Arrays.fill(out, (byte) 0xee); // padding must be written, not assumed
        ByteBuffer b = ByteBuffer.wrap(out);
        CpioWriter.write(entries, b);
        assertEquals(out.length, b.position(), "size() is exactly what write() writes");
        return out;
    }

    @Test
    void fileMemberHasTheExactNewcHeaderNameAndPaddedData() throws IOException {
        byte[] hi = "hi!".getBytes(StandardCharsets.US_ASCII);
        byte[] out = write(List.of(CpioEntry.file("hello", 0644, 0x65000000L, hi)));
        String expected = "070701" // magic
                + "00000001" // ino
                + "000081a4" // mode: regular file, 0644
                + "00000000" + "00000000" // uid, gid
                + "00000001" // nlink
                + "65000000" // mtime
                + "00000003" // filesize
                + "00000000" + "00000000" // devmajor, devminor
                + "00000000" + "00000000" // rdevmajor, rdevminor
                + "00000006" // namesize, NUL included
                + "00000000" // check
                + "hello\0" // 116 bytes: aligned
                + "hi!\0"; // data padded to 4
        assertEquals(expected, new String(out, 0, expected.length(), StandardCharsets.US_ASCII));
        String trailer = "070701" + "00000000" + "00000000" + "00000000" + "00000000" + "00000001" + "00000000"
                + "00000000" + "00000000" + "00000000" + "00000000" + "00000000" + "0000000b" + "00000000"
                + "TRAILER!!!\0" + "\0\0\0"; // 110 + 11 bytes, padded to 124
        int at = expected.length();
        assertEquals(trailer, new String(out, at, out.length - at, StandardCharsets.US_ASCII));
    }

    @Test
    void deviceNodeCarriesItsNumbersInTheRdevFields() throws IOException {
        List<NewcReader.Member> members = NewcReader.read(write(List.of(
                CpioEntry.node("dev/null", CpioEntry.S_IFCHR | 0666, 1, 1, 3),
                CpioEntry.node("dev/sda", CpioEntry.S_IFBLK | 0660, 1, 8, 0x123))));
        NewcReader.Member nul = members.get(0);
        assertEquals(CpioEntry.S_IFCHR, nul.type());
        assertEquals(0666, nul.permissions());
        assertEquals(1, nul.rdevMajor());
        assertEquals(3, nul.rdevMinor());
        assertEquals(0, nul.devMajor());
        assertEquals(0, nul.data().length);
        NewcReader.Member sda = members.get(1);
        assertEquals(CpioEntry.S_IFBLK, sda.type());
        assertEquals(8, sda.rdevMajor());
        assertEquals(0x123, sda.rdevMinor());
    }

    @Test
    void symlinkBodyIsItsTargetWithoutNul() throws IOException {
        NewcReader.Member link = NewcReader.read(write(List.of(
                CpioEntry.symlink("bin/sh", 0, "busybox".getBytes(StandardCharsets.UTF_8))))).get(0);
        assertEquals(CpioEntry.S_IFLNK | 0777, link.mode());
        assertEquals("busybox", link.text());
    }

    @Test
    void directoriesHaveTwoLinksAndEveryMemberItsOwnInode() throws IOException {
        List<NewcReader.Member> members = NewcReader.read(write(List.of(
                CpioEntry.directory("etc", 0755, 0),
                CpioEntry.file("etc/a", 0644, 0, new byte[1]),
                CpioEntry.file("etc/b", 0644, 0, new byte[1]))));
        assertEquals(2, members.get(0).nlink());
        assertEquals(1, members.get(1).nlink());
        assertEquals(List.of(1L, 2L, 3L, 0L), members.stream().map(NewcReader.Member::ino).toList());
    }

    @Test
    void everyNameAndDataLengthPadsCorrectly() throws IOException {
        List<CpioEntry> entries = new ArrayList<>();
        for (int nameLength = 1; nameLength <= 8; nameLength++) {
            for (int dataLength = 0; dataLength <= 5; dataLength++) {
                byte[] data = new byte[dataLength];
                Arrays.fill(data, (byte) ('a' + dataLength));
                entries.add(CpioEntry.file("n".repeat(nameLength) + dataLength, 0600, 0, data));
            }
        }
        List<NewcReader.Member> members = NewcReader.read(write(entries));
        assertEquals(entries.size() + 1, members.size());
        for (int i = 0; i < entries.size(); i++) {
            assertEquals(entries.get(i).name(), members.get(i).name());
            assertArrayEquals(entries.get(i).data(), members.get(i).data());
        }
    }

    @Test
    void multiByteNamesAreSizedInBytes() throws IOException {
        NewcReader.Member m = NewcReader.read(write(List.of(CpioEntry.file("héllo", 0644, 0, new byte[0])))).get(0);
        assertEquals("héllo", m.name());
    }

    @Test
    void emptyArchiveIsJustTheTrailer() throws IOException {
        byte[] out = write(List.of());
        assertEquals(124, out.length);
        assertEquals(List.of(CpioWriter.TRAILER), NewcReader.read(out).stream().map(NewcReader.Member::name).toList());
    }
}
