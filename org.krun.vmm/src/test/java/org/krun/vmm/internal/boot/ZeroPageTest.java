package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.spi.memory.GuestMemory;

class ZeroPageTest {
    private static final long ZP = 0x7000;
    private static final List<E820.Entry> E820_MAP = List.of(
            new E820.Entry(0, 0x9fc00, E820.TYPE_RAM),
            new E820.Entry(0x100000, 0x7f00000, E820.TYPE_RAM),
            new E820.Entry(0x1_0000_0000L, 0x4000_0000L, E820.TYPE_RESERVED));

    private static int u8(GuestMemory m, long offset) {
        return m.getByte(ZP + offset) & 0xff;
    }

    private static int u16(GuestMemory m, long offset) {
        return m.getShort(ZP + offset) & 0xffff;
    }

    private static long u32(GuestMemory m, long offset) {
        return m.getInt(ZP + offset) & 0xffffffffL;
    }

    @Test
    void vmlinuxGetsAMinimalSetupHeader() {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0xee)) {
            GuestMemory m = t.memory;
            ZeroPage.write(m, null, 0x20000, 123, 0, 0, E820_MAP);
            assertEquals(0xaa55, u16(m, 0x1fe), "boot_flag");
            assertEquals(0x53726448L, u32(m, 0x202), "header \"HdrS\"");
            assertEquals(0x020f, u16(m, 0x206), "version");
            assertEquals(0x0100_0000L, u32(m, 0x230), "kernel_alignment");
            assertEquals(0xff, u8(m, 0x210), "type_of_loader");
            assertEquals(0x81, u8(m, 0x211), "loadflags: LOADED_HIGH | CAN_USE_HEAP");
            assertEquals(0x20000, u32(m, 0x228), "cmd_line_ptr");
            assertEquals(0, u32(m, 0x0c8), "ext_cmd_line_ptr");
            assertEquals(123, u32(m, 0x238), "cmdline_size");
            assertEquals(0, u32(m, 0x218), "ramdisk_image");
            assertEquals(0, u32(m, 0x21c), "ramdisk_size");
        }
    }

    @Test
    void wholePageIsClearedFirst() {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0xee)) {
            ZeroPage.write(t.memory, null, 0x20000, 1, 0, 0, List.of());
            assertEquals(0, u8(t.memory, 0), "screen_info");
            assertEquals(0, u8(t.memory, 0x1e8), "e820_entries");
            assertEquals(0, u8(t.memory, 0xfff), "last byte");
            assertEquals((byte) 0xee, t.memory.getByte(ZP + 0x1000), "the page after is not touched");
            assertEquals((byte) 0xee, t.memory.getByte(ZP - 1), "the byte before is not touched");
        }
    }

    @Test
    void e820MapIsWrittenAs20ByteEntries() {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0xee)) {
            GuestMemory m = t.memory;
            ZeroPage.write(m, null, 0x20000, 1, 0, 0, E820_MAP);
            assertEquals(3, u8(m, 0x1e8), "e820_entries");
            for (int i = 0; i < 3; i++) {
                long at = 0x2d0 + 20L * i;
                assertEquals(E820_MAP.get(i).address(), m.getLong(ZP + at));
                assertEquals(E820_MAP.get(i).size(), m.getLong(ZP + at + 8));
                assertEquals(E820_MAP.get(i).type(), m.getInt(ZP + at + 16));
            }
            assertEquals(0, m.getLong(ZP + 0x2d0 + 60), "nothing after the last entry");
        }
    }

    @Test
    void bzImageSetupHeaderIsCopiedInPlaceAndLoaderFieldsOverwriteIt() {
        byte[] header = new byte[0x268 - 0x1f1];
        for (int i = 0; i < header.length; i++) {
            header[i] = (byte) (i + 1);
        }
        header[0x211 - 0x1f1] = 0x20; // loadflags: QUIET_FLAG, kept
        try (TestMemory t = new TestMemory(0x10000, (byte) 0xee)) {
            GuestMemory m = t.memory;
            ZeroPage.write(m, header, 0x20000, 77, 0, 0, List.of());
            assertEquals(1, u8(m, 0x1f1), "setup_sects from the image");
            assertEquals(header[0x206 - 0x1f1] & 0xff | (header[0x207 - 0x1f1] & 0xff) << 8, u16(m, 0x206),
                    "version from the image");
            assertEquals(header[header.length - 1], m.getByte(ZP + 0x267), "last header byte");
            assertEquals(0, u8(m, 0x268), "nothing copied past the header");
            assertEquals(0xff, u8(m, 0x210), "type_of_loader");
            assertEquals(0xa1, u8(m, 0x211), "loadflags: the image's bits plus LOADED_HIGH | CAN_USE_HEAP");
            assertEquals(0x20000, u32(m, 0x228));
            assertEquals(77, u32(m, 0x238));
        }
    }

    @Test
    void initrdAndCommandLineAbove4GibUseTheExtendedFields() {
        try (TestMemory t = new TestMemory(0x10000, (byte) 0xee)) {
            GuestMemory m = t.memory;
            ZeroPage.write(m, null, 0x2_0002_0000L, 1, 0x1_2345_6000L, 0x1_0000_0010L, List.of());
            assertEquals(0x0002_0000L, u32(m, 0x228), "cmd_line_ptr");
            assertEquals(2, u32(m, 0x0c8), "ext_cmd_line_ptr");
            assertEquals(0x2345_6000L, u32(m, 0x218), "ramdisk_image");
            assertEquals(1, u32(m, 0x0c0), "ext_ramdisk_image");
            assertEquals(0x10, u32(m, 0x21c), "ramdisk_size");
            assertEquals(1, u32(m, 0x0c4), "ext_ramdisk_size");
        }
    }

    @Test
    void moreThan128E820EntriesAreRefused() {
        List<E820.Entry> many = new ArrayList<>();
        for (int i = 0; i < 129; i++) {
            many.add(new E820.Entry(0x1_0000_0000L * (i + 1), 0x1000, E820.TYPE_RAM));
        }
        try (TestMemory t = new TestMemory(0x10000, (byte) 0)) {
            assertThrows(IllegalArgumentException.class, () -> ZeroPage.write(t.memory, null, 0x20000, 1, 0, 0, many));
        }
    }
}
