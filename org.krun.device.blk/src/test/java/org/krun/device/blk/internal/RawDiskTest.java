package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.posix.PosixIo;
import org.krun.posix.Posix;

/** The raw backend and its file against real host files. */
class RawDiskTest {
    private static final int SIZE = 4 << 20;

    @TempDir
    Path dir;

    private Path image(byte[] content) throws IOException {
        Path p = dir.resolve("disk-" + System.nanoTime() + ".img");
        Files.write(p, content);
        return p;
    }

    @Test
    void writesLandInTheFileAndReadBackFromScatteredBuffers() throws Exception {
        Path p = image(new byte[SIZE]);
        byte[] data = BlkRequests.pattern(3 * 4096, 7);
        try (RawDisk disk = RawDisk.open(DiskFile.open(p, true, false, false)); Arena arena = Arena.ofConfined()) {
            assertEquals(SIZE, disk.capacity());
            disk.write(8192, HostFiles.nativeCopy(arena, data, 1000)); // odd pieces: vectored I/O, not page-sized
            List<MemorySegment> back = HostFiles.buffer(arena, data.length, 4096);
            disk.read(8192, back);
            assertArrayEquals(data, HostFiles.bytes(back));
        }
        assertArrayEquals(data, Arrays.copyOfRange(Files.readAllBytes(p), 8192, 8192 + data.length));
    }

    @Test
    void moreBuffersThanOneSystemCallTakes() throws Exception {
        Path p = image(new byte[SIZE]);
        byte[] data = BlkRequests.pattern(3000 * 512, 8);
        try (RawDisk disk = RawDisk.open(DiskFile.open(p, true, false, false)); Arena arena = Arena.ofConfined()) {
            disk.write(0, HostFiles.nativeCopy(arena, data, 512)); // 3000 buffers > IOV_MAX
            List<MemorySegment> back = HostFiles.buffer(arena, data.length, 512);
            disk.read(0, back);
            assertArrayEquals(data, HostFiles.bytes(back));
        }
    }

    @Test
    void capacityIsTheFileSizeInWholeSectors() throws Exception {
        try (RawDisk disk = RawDisk.open(DiskFile.open(image(new byte[1000]), true, false, false))) {
            assertEquals(512, disk.capacity());
        }
        IOException tooSmall = assertThrows(IOException.class,
                () -> RawDisk.open(DiskFile.open(image(new byte[100]), true, false, false)));
        assertTrue(tooSmall.getMessage().contains("smaller than one 512-byte sector"), tooSmall.getMessage());
    }

    @Test
    void discardPunchesHolesTheHostReclaims() throws Exception {
        Path p = image(BlkRequests.pattern(SIZE, 9)); // fully allocated
        long before = HostFiles.allocatedBlocks(p);
        try (RawDisk disk = RawDisk.open(DiskFile.open(p, true, false, false)); Arena arena = Arena.ofConfined()) {
            disk.discard(1 << 20, 2 << 20);
            List<MemorySegment> back = HostFiles.buffer(arena, 2 << 20, 1 << 20);
            disk.read(1 << 20, back);
            assertArrayEquals(new byte[2 << 20], HostFiles.bytes(back), "punched holes read as zeroes");
        }
        long after = HostFiles.allocatedBlocks(p);
        assertTrue(after <= before - (2 << 20) / 512, "allocated 512-byte blocks " + before + " -> " + after);
        assertEquals(SIZE, Files.size(p), "the file keeps its size");
    }

    @Test
    void writeZeroesUnmapsOnlyWhenAllowed() throws Exception {
        Path p = image(BlkRequests.pattern(SIZE, 10));
        long full = HostFiles.allocatedBlocks(p);
        try (RawDisk disk = RawDisk.open(DiskFile.open(p, true, false, false)); Arena arena = Arena.ofConfined()) {
            disk.writeZeroes(0, 1 << 20, false);
            assertTrue(HostFiles.allocatedBlocks(p) >= full, "without unmap the range stays allocated");
            disk.writeZeroes(2 << 20, 1 << 20, true);
            assertTrue(HostFiles.allocatedBlocks(p) <= full - (1 << 20) / 512, "with unmap it is deallocated");
            disk.writeZeroes(3 << 20, 1536, false); // not block-aligned
            List<MemorySegment> back = HostFiles.buffer(arena, SIZE, 1 << 20);
            disk.read(0, back);
            byte[] b = HostFiles.bytes(back);
            assertArrayEquals(new byte[1 << 20], Arrays.copyOfRange(b, 0, 1 << 20));
            assertArrayEquals(new byte[1 << 20], Arrays.copyOfRange(b, 2 << 20, 3 << 20));
            assertArrayEquals(new byte[1536], Arrays.copyOfRange(b, 3 << 20, (3 << 20) + 1536));
            byte[] orig = BlkRequests.pattern(SIZE, 10);
            assertArrayEquals(Arrays.copyOfRange(orig, 1 << 20, 2 << 20), Arrays.copyOfRange(b, 1 << 20, 2 << 20),
                    "the rest is untouched");
            assertEquals(orig[(3 << 20) + 1536], b[(3 << 20) + 1536]);
        }
    }

    @Test
    void readOnlyOpensTheFileReadOnly() throws Exception {
        Path p = image(new byte[SIZE]);
        try (DiskFile f = DiskFile.open(p, false, false, false); Arena arena = Arena.ofConfined()) {
            assertEquals(Posix.O_RDONLY, HostFiles.openFlags(f.fd()) & 3);
            IOException e = assertThrows(IOException.class, () -> f.write(0, HostFiles.buffer(arena, 512, 512)));
            assertTrue(e.getMessage().contains("EBADF"), e.getMessage());
        }
    }

    @Test
    void directAndSyncFlagsReachTheDescriptor() throws Exception {
        Path p = image(new byte[SIZE]);
        try (DiskFile f = DiskFile.open(p, true, true, true)) {
            int flags = HostFiles.openFlags(f.fd());
            assertEquals(PosixIo.O_DIRECT, flags & PosixIo.O_DIRECT);
            assertEquals(PosixIo.O_DSYNC, flags & PosixIo.O_DSYNC);
        }
    }

    @Test
    void directIoServesAlignedAndMisalignedBuffers() throws Exception {
        Path p = image(new byte[SIZE]);
        byte[] data = BlkRequests.pattern(16384, 11);
        try (RawDisk disk = RawDisk.open(DiskFile.open(p, true, true, false)); Arena arena = Arena.ofConfined()) {
            disk.write(4096, HostFiles.nativeCopy(arena, data, 4096)); // page-aligned: O_DIRECT
            MemorySegment odd = arena.allocate(4096 + 1).asSlice(1, 4096); // misaligned: the buffered path
            MemorySegment.copy(data, 0, odd, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, 4096);
            disk.write(65536, List.of(odd));
            List<MemorySegment> back = HostFiles.buffer(arena, data.length, 4096);
            disk.read(4096, back);
            assertArrayEquals(data, HostFiles.bytes(back));
            MemorySegment oddBack = arena.allocate(4096 + 3).asSlice(3, 4096);
            disk.read(65536, List.of(oddBack));
            assertArrayEquals(Arrays.copyOf(data, 4096), oddBack.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE));
            disk.flush();
        }
        byte[] file = Files.readAllBytes(p);
        assertArrayEquals(data, Arrays.copyOfRange(file, 4096, 4096 + data.length));
        assertArrayEquals(Arrays.copyOf(data, 4096), Arrays.copyOfRange(file, 65536, 65536 + 4096));
    }

    @Test
    void aWritableImageIsLockedAgainstOtherUsers() throws Exception {
        Path p = image(new byte[SIZE]);
        try (DiskFile first = DiskFile.open(p, true, false, false)) {
            IOException e = assertThrows(IOException.class, () -> DiskFile.open(p, true, false, false));
            assertTrue(e.getMessage().contains("in use"), e.getMessage());
            assertThrows(IOException.class, () -> DiskFile.open(p, false, false, false));
        }
        try (DiskFile a = DiskFile.open(p, false, false, false); DiskFile b = DiskFile.open(p, false, false, false)) {
            assertThrows(IOException.class, () -> DiskFile.open(p, true, false, false), "readers keep writers out");
        }
        DiskFile.open(p, true, false, false).close(); // all released
    }

    @Test
    void closeReleasesTheDescriptors() throws Exception {
        Path p = image(new byte[SIZE]);
        int before = HostFiles.openDescriptors();
        DiskFile f = DiskFile.open(p, true, true, false);
        assertEquals(before + 2, HostFiles.openDescriptors(), "direct: a direct and a buffered descriptor");
        f.close();
        f.close();
        assertEquals(before, HostFiles.openDescriptors());
    }

    @Test
    void readingPastTheEndFailsUnlessZeroesAreWanted() throws Exception {
        Path p = image(BlkRequests.pattern(1024, 12));
        try (DiskFile f = DiskFile.open(p, true, false, false); Arena arena = Arena.ofConfined()) {
            List<MemorySegment> buf = HostFiles.nativeCopy(arena, BlkRequests.pattern(2048, 13), 2048);
            IOException e = assertThrows(IOException.class, () -> f.read(0, buf, false));
            assertTrue(e.getMessage().contains("end of file"), e.getMessage());
            f.read(0, buf, true);
            byte[] b = HostFiles.bytes(buf);
            assertArrayEquals(BlkRequests.pattern(1024, 12), Arrays.copyOf(b, 1024));
            assertArrayEquals(new byte[1024], Arrays.copyOfRange(b, 1024, 2048));
        }
    }
}
