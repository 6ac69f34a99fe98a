package org.krun.vmm.internal.snapshot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.CRC32C;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SnapshotFileTest {
    @TempDir
    Path dir;

    private static SnapshotState sample() {
        return new SnapshotState("kvm", "kvm-cpuid-0123", "64 MiB, 1 vCPU, devices [virtio-console (type 3)]", 64L << 20,
                new byte[] {1, 2, 3}, List.of(new byte[] {4, 5}, new byte[0]), List.of(new byte[] {6}, new byte[] {7, 8}),
                List.of(new byte[0], new byte[] {9}), Map.of("serial", new byte[] {0, 0}, "cmos", new byte[] {0x0b}));
    }

    private static void assertSame(SnapshotState expected, SnapshotState actual) {
        assertEquals(expected.backend(), actual.backend());
        assertEquals(expected.cpuSignature(), actual.cpuSignature());
        assertEquals(expected.shape(), actual.shape());
        assertEquals(expected.ramBytes(), actual.ramBytes());
        assertArrayEquals(expected.vm(), actual.vm());
        assertEquals(expected.vcpus().size(), actual.vcpus().size());
        for (int i = 0; i < expected.vcpus().size(); i++) {
            assertArrayEquals(expected.vcpus().get(i), actual.vcpus().get(i));
        }
        for (int i = 0; i < expected.transports().size(); i++) {
            assertArrayEquals(expected.transports().get(i), actual.transports().get(i));
            assertArrayEquals(expected.devices().get(i), actual.devices().get(i));
        }
        assertEquals(expected.legacy().keySet(), actual.legacy().keySet());
        expected.legacy().forEach((k, v) -> assertArrayEquals(v, actual.legacy().get(k), k));
    }

    @Test
    void stateRoundTripsThroughTheFile() {
        Path file = dir.resolve(SnapshotFile.STATE_FILE);
        SnapshotState s = sample();
        SnapshotFile.write(file, s);
        assertSame(s, SnapshotFile.read(file));
        assertTrue(Files.notExists(dir.resolve(SnapshotFile.STATE_FILE + ".tmp")));
    }

    @Test
    void missingFileIsOneLine() {
        Path file = dir.resolve("nothing");
        SnapshotException e = assertThrows(SnapshotException.class, () -> SnapshotFile.read(file));
        assertEquals("snapshot state " + file + " does not exist", e.getMessage());
    }

    @Test
    void everyTruncationIsRefusedWithOneLine() {
        byte[] whole = SnapshotFile.encode(sample());
        for (int n = 0; n < whole.length; n++) {
            byte[] cut = Arrays.copyOf(whole, n);
            SnapshotException e = assertThrows(SnapshotException.class, () -> SnapshotFile.decode(cut), "length " + n);
            assertTrue(e.getMessage().startsWith("is truncated") || e.getMessage().startsWith("is not a krun"), e.getMessage());
            assertTrue(!e.getMessage().contains("\n"));
        }
    }

    @Test
    void aFlippedBitIsACorruptFile() {
        byte[] whole = SnapshotFile.encode(sample());
        for (int i = 20; i < whole.length; i++) {
            byte[] bad = whole.clone();
            bad[i] ^= 0x10;
            SnapshotException e = assertThrows(SnapshotException.class, () -> SnapshotFile.decode(bad), "byte " + i);
            assertTrue(e.getMessage().startsWith("is corrupt") || e.getMessage().startsWith("is truncated"), e.getMessage());
        }
    }

    @Test
    void otherFormatVersionsAndFilesAreNamed() {
        byte[] whole = SnapshotFile.encode(sample());
        byte[] v2 = whole.clone();
        ByteBuffer.wrap(v2).putInt(8, 2);
        assertEquals("has format version 2; this krun reads version 1",
                assertThrows(SnapshotException.class, () -> SnapshotFile.decode(v2)).getMessage());
        byte[] other = "#!/bin/sh\necho not a snapshot, no indeed\n".getBytes();
        assertEquals("is not a krun snapshot state file",
                assertThrows(SnapshotException.class, () -> SnapshotFile.decode(other)).getMessage());
    }

    /**
     * A file whose checksum is right but whose counts and lengths lie (a hostile or buggy writer): refused
     * without allocating what the lengths claim.
     */
    @Test
    void hugeCountsAndLengthsWithAValidChecksumAreRefusedWithoutAllocating() {
        for (int field : new int[] {-1, Integer.MAX_VALUE, 0x7fff_fff0}) {
            ByteBuffer body = ByteBuffer.allocate(64);
            body.putShort((short) 3).put("kvm".getBytes()).putShort((short) 0).putShort((short) 0).putLong(4096);
            body.putInt(field); // the VM blob's length
            byte[] b = Arrays.copyOf(body.array(), body.position() + 8);
            SnapshotException e = assertThrows(SnapshotException.class, () -> SnapshotFile.decode(file(b)));
            assertTrue(e.getMessage().startsWith("is corrupt"), e.getMessage());
        }
        ByteBuffer body = ByteBuffer.allocate(64);
        body.putShort((short) 0).putShort((short) 0).putShort((short) 0).putLong(4096).putInt(0).putInt(Integer.MAX_VALUE);
        byte[] b = Arrays.copyOf(body.array(), body.position());
        assertEquals("is corrupt (2147483647 vCPUs)", assertThrows(SnapshotException.class, () -> SnapshotFile.decode(file(b))).getMessage());
    }

    @Test
    void randomBytesNeverCrashTheReader() {
        Random r = new Random(14);
        for (int i = 0; i < 2000; i++) {
            byte[] junk = new byte[r.nextInt(200)];
            r.nextBytes(junk);
            if (i % 2 == 0 && junk.length > 16) {
                System.arraycopy(SnapshotFile.MAGIC, 0, junk, 0, 8);
                ByteBuffer.wrap(junk).putInt(8, SnapshotFile.FORMAT_VERSION);
            }
            assertThrows(SnapshotException.class, () -> SnapshotFile.decode(junk));
        }
    }

    @Test
    void anOversizedFileIsRefusedBeforeItIsRead() throws Exception {
        Path file = dir.resolve(SnapshotFile.STATE_FILE);
        try (var raf = new java.io.RandomAccessFile(file.toFile(), "rw")) {
            raf.setLength(SnapshotFile.MAX_STATE_FILE + 1); // sparse: nothing is written
        }
        SnapshotException e = assertThrows(SnapshotException.class, () -> SnapshotFile.read(file));
        assertEquals("snapshot state " + file + " is " + (SnapshotFile.MAX_STATE_FILE + 1)
                + " bytes: not a krun snapshot state file", e.getMessage());
    }

    /** A state file around {@code body}, with the right checksum. */
    private static byte[] file(byte[] body) {
        CRC32C crc = new CRC32C();
        crc.update(body);
        return ByteBuffer.allocate(16 + body.length + 4).put(SnapshotFile.MAGIC).putInt(SnapshotFile.FORMAT_VERSION)
                .putInt(body.length).put(body).putInt((int) crc.getValue()).array();
    }
}
