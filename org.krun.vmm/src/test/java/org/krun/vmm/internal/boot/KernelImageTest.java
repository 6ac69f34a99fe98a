package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;
import org.krun.spi.memory.GuestMemory;

class KernelImageTest {
    private static final long RAM = 4 << 20;
    private static final byte DIRT = (byte) 0xee;
    private static final int PT_LOAD = 1;
    private static final int PT_NOTE = 4;
    /** Where vmlinux links itself; the loader must use p_paddr, not this. */
    private static final long KERNEL_VIRTUAL = 0xffff_ffff_8000_0000L;

    @TempDir
    Path dir;
    private TestMemory ram;
    private GuestMemory mem;

    @BeforeEach
    void setUp() {
        ram = new TestMemory(RAM, DIRT);
        mem = ram.memory;
    }

    @AfterEach
    void tearDown() {
        ram.close();
    }

    // --- synthetic images ---

    private record Segment(int type, long paddr, byte[] data, long memsz) {
    }

    private static byte[] pattern(int length, int seed) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed + i * 7);
        }
        return b;
    }

    /** An ELF64 file: header, program headers, then each segment's file data at a 4 KiB boundary. */
    private static byte[] elf(int elfClass, int machine, long entry, Segment... segments) {
        int phoff = 64;
        int dataStart = 0x1000;
        int size = dataStart + Arrays.stream(segments).mapToInt(s -> (s.data().length + 0xfff) & ~0xfff).sum();
        ByteBuffer b = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, 0x464c457f); // \x7fELF
        b.put(4, (byte) elfClass);
        b.put(5, (byte) 1); // little-endian
        b.put(6, (byte) 1); // EV_CURRENT
        b.putShort(16, (short) 2); // ET_EXEC
        b.putShort(18, (short) machine);
        b.putInt(20, 1);
        b.putLong(24, entry);
        b.putLong(32, phoff);
        b.putShort(52, (short) 64);
        b.putShort(54, (short) 56);
        b.putShort(56, (short) segments.length);
        int offset = dataStart;
        for (int i = 0; i < segments.length; i++) {
            Segment s = segments[i];
            int ph = phoff + 56 * i;
            b.putInt(ph, s.type());
            b.putInt(ph + 4, 7); // RWX
            b.putLong(ph + 8, offset);
            b.putLong(ph + 16, KERNEL_VIRTUAL + s.paddr());
            b.putLong(ph + 24, s.paddr());
            b.putLong(ph + 32, s.data().length);
            b.putLong(ph + 40, s.memsz());
            b.putLong(ph + 48, 0x1000);
            b.put(offset, s.data());
            offset += (s.data().length + 0xfff) & ~0xfff;
        }
        return b.array();
    }

    private static final int HEADER_END = 0x202 + 0x66;

    /** A bzImage: boot sector and setup header, setup sectors, then the protected-mode kernel. */
    private static byte[] bzImage(int setupSects, int version, int xloadflags, long initSize, byte[] kernel) {
        int sects = setupSects == 0 ? 4 : setupSects;
        ByteBuffer b = ByteBuffer.allocate((sects + 1) * 512 + kernel.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0x1f1; i < HEADER_END; i++) {
            b.put(i, (byte) (i * 3)); // header fields the loader copies without reading
        }
        b.put(0x1f1, (byte) setupSects);
        b.putShort(0x1fe, (short) 0xaa55);
        b.put(0x200, (byte) 0xeb); // jmp over the header ...
        b.put(0x201, (byte) 0x66); // ... which ends at 0x202 + this
        b.putInt(0x202, 0x53726448); // "HdrS"
        b.putShort(0x206, (short) version);
        b.putShort(0x236, (short) xloadflags);
        b.putInt(0x260, (int) initSize);
        b.put((sects + 1) * 512, kernel);
        return b.array();
    }

    private Path file(String name, byte[] content) throws IOException {
        return Files.write(dir.resolve(name), content);
    }

    private byte[] guest(long address, int length) {
        byte[] b = new byte[length];
        mem.read(address, b, 0, length);
        return b;
    }

    private static void assertAll(byte expected, byte[] actual) {
        for (int i = 0; i < actual.length; i++) {
            if (actual[i] != expected) {
                throw new AssertionError("byte " + i + " is " + actual[i] + ", expected " + expected);
            }
        }
    }

    private VmConfigException loadFails(Path kernel) {
        VmConfigException e = assertThrows(VmConfigException.class, () -> KernelImage.load(kernel, mem));
        assertFalse(e.getMessage().contains("\n"), "one line: " + e.getMessage());
        return e;
    }

    // --- ELF vmlinux ---

    @Test
    void elfSegmentsAreLoadedAtTheirPhysicalAddressesWithZeroedBss() throws IOException {
        byte[] text = pattern(0x1234, 1);
        byte[] data = pattern(0x10, 2);
        Path kernel = file("vmlinux", elf(2, 62, 0x100_0000L,
                new Segment(PT_LOAD, 0x100000, text, 0x2000),
                new Segment(PT_NOTE, 0x300000, pattern(0x20, 3), 0x20),
                new Segment(PT_LOAD, 0x200000, data, 0x1000)));

        KernelImage.Loaded loaded = KernelImage.load(kernel, mem);

        assertEquals(0x100_0000L, loaded.entry(), "e_entry");
        assertEquals(0x201000, loaded.end(), "end of the highest segment in memory");
        assertFalse(loaded.isBzImage());
        assertNull(loaded.setupHeader());
        assertArrayEquals(text, guest(0x100000, text.length));
        assertAll((byte) 0, guest(0x100000 + text.length, 0x2000 - text.length));
        assertArrayEquals(data, guest(0x200000, data.length));
        assertAll((byte) 0, guest(0x200000 + data.length, 0x1000 - data.length));
        assertAll(DIRT, guest(0x300000, 0x20)); // not PT_LOAD
        assertEquals(DIRT, mem.getByte(0x100000 - 1));
        assertEquals(DIRT, mem.getByte(0x102000));
        assertEquals(DIRT, mem.getByte(0x201000));
    }

    /** One ELF note: namesz, descsz, type, the name with its NUL padded to 4, the description padded to 4. */
    private static byte[] note(String owner, int type, byte[] desc) {
        byte[] name = (owner + "\0").getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        int nameLen = (name.length + 3) & ~3;
        int descLen = (desc.length + 3) & ~3;
        ByteBuffer b = ByteBuffer.allocate(12 + nameLen + descLen).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(name.length).putInt(desc.length).putInt(type).put(name);
        b.position(12 + nameLen);
        b.put(desc);
        return b.array();
    }

    @Test
    void aVmlinuxIsToldFromOtherElfProgramsByItsLinuxNotes() throws IOException {
        byte[] gnu = note("GNU", 3, pattern(20, 5));
        byte[] linux = note("Linux", 0x100, new byte[4]);
        byte[] notes = ByteBuffer.allocate(gnu.length + linux.length).put(gnu).put(linux).array();
        Path vmlinux = file("vmlinux-notes", elf(2, 62, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(16, 0), 16),
                new Segment(PT_NOTE, 0x300000, notes, notes.length)));
        assertTrue(KernelImage.load(vmlinux, mem).linux(), "GNU then Linux notes");
        Path gnuOnly = file("program-gnu", elf(2, 62, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(16, 0), 16),
                new Segment(PT_NOTE, 0x300000, gnu, gnu.length)));
        assertFalse(KernelImage.load(gnuOnly, mem).linux(), "a build id alone");
        Path garbage = file("program-garbage-notes", elf(2, 62, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(16, 0), 16),
                new Segment(PT_NOTE, 0x300000, pattern(0x20, 3), 0x20)));
        assertFalse(KernelImage.load(garbage, mem).linux(), "malformed notes are not Linux's, and no error");
        Path none = file("program", elf(2, 62, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(16, 0), 16)));
        assertFalse(KernelImage.load(none, mem).linux());
    }

    @Test
    void elf32IsRefused() throws IOException {
        Path kernel = file("vmlinux32", elf(1, 62, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(16, 0), 16)));
        assertTrue(loadFails(kernel).getMessage().contains("64-bit"));
        assertAll(DIRT, guest(0x100000, 16));
    }

    @Test
    void elfForAnotherArchitectureIsRefused() throws IOException {
        Path kernel = file("vmlinux-arm64", elf(2, 183, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(16, 0), 16)));
        assertTrue(loadFails(kernel).getMessage().contains("x86_64"));
    }

    @Test
    void elfSegmentOutsideGuestRamIsRefused() throws IOException {
        Path kernel = file("vmlinux-big", elf(2, 62, 0x100000,
                new Segment(PT_LOAD, RAM - 0x1000, pattern(16, 0), 0x2000)));
        VmConfigException e = loadFails(kernel);
        assertTrue(e.getMessage().contains("0x3ff000") && e.getMessage().contains("more memory"), e.getMessage());
    }

    @Test
    void elfWithoutLoadableSegmentsIsRefused() throws IOException {
        Path kernel = file("vmlinux-empty", elf(2, 62, 0x100000, new Segment(PT_NOTE, 0x100000, pattern(16, 0), 16)));
        assertTrue(loadFails(kernel).getMessage().contains("no loadable segments"));
    }

    @Test
    void truncatedElfIsRefused() throws IOException {
        byte[] whole = elf(2, 62, 0x100000, new Segment(PT_LOAD, 0x100000, pattern(0x800, 0), 0x800));
        Path kernel = file("vmlinux-cut", Arrays.copyOf(whole, 0x1400));
        assertTrue(loadFails(kernel).getMessage().contains("truncated"));
    }

    // --- bzImage ---

    @Test
    void bzImageProtectedModePartGoesTo1MibWithEntryAt0x200() throws IOException {
        byte[] kernel = pattern(0x1800, 5);
        byte[] image = bzImage(2, 0x020f, 1, 0x4000, kernel);
        Path file = file("bzImage", image);

        KernelImage.Loaded loaded = KernelImage.load(file, mem);

        assertEquals(0x100200, loaded.entry(), "64-bit entry: startup_64 at +0x200");
        assertEquals(0x104000, loaded.end(), "init_size reserves more than the file holds");
        assertTrue(loaded.isBzImage());
        assertTrue(loaded.linux(), "a bzImage is Linux's format");
        assertArrayEquals(Arrays.copyOfRange(image, 0x1f1, HEADER_END), loaded.setupHeader(),
                "setup header from 0x1f1 to the end the jump at 0x200 gives");
        assertArrayEquals(kernel, guest(0x100000, kernel.length), "the part after (setup_sects + 1) sectors");
        assertEquals(DIRT, mem.getByte(0x100000 + kernel.length));
        assertEquals(DIRT, mem.getByte(0x100000 - 1));
    }

    @Test
    void bzImageWithZeroSetupSectsMeansFour() throws IOException {
        byte[] kernel = pattern(0x400, 9);
        KernelImage.Loaded loaded = KernelImage.load(file("bzImage-old", bzImage(0, 0x020f, 1, 0, kernel)), mem);
        assertArrayEquals(kernel, guest(0x100000, kernel.length));
        assertEquals(0x100400, loaded.end());
    }

    @Test
    void bzImageWithout64BitEntryIsRefused() throws IOException {
        Path file = file("bzImage32", bzImage(2, 0x020f, 0, 0x4000, pattern(0x100, 0)));
        assertTrue(loadFails(file).getMessage().contains("64-bit entry"));
        assertAll(DIRT, guest(0x100000, 0x100));
    }

    @Test
    void bzImageOlderThanBootProtocol212IsRefused() throws IOException {
        Path file = file("bzImage-211", bzImage(2, 0x020b, 1, 0x4000, pattern(0x100, 0)));
        assertTrue(loadFails(file).getMessage().contains("2.b"));
    }

    @Test
    void bzImageThatDoesNotFitIsRefused() throws IOException {
        Path file = file("bzImage-huge", bzImage(2, 0x020f, 1, RAM, pattern(0x100, 0)));
        assertTrue(loadFails(file).getMessage().contains("more memory"));
    }

    // --- neither ---

    @Test
    void fileThatIsNeitherElfNorBzImageIsRefused() throws IOException {
        Path file = file("README", "not a kernel\n".repeat(100).getBytes(StandardCharsets.US_ASCII));
        VmConfigException e = loadFails(file);
        assertTrue(e.getMessage().contains("neither") && e.getMessage().contains(file.toString()), e.getMessage());
    }

    @Test
    void emptyFileIsRefused() throws IOException {
        assertTrue(loadFails(file("empty", new byte[0])).getMessage().contains("neither"));
    }

    @Test
    void missingFileIsRefused() {
        Path missing = dir.resolve("no-such-kernel");
        assertTrue(loadFails(missing).getMessage().contains(missing.toString()));
    }
}
