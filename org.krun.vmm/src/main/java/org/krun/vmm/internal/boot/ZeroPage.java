package org.krun.vmm.internal.boot;

import java.util.List;

import org.krun.spi.memory.GuestMemory;

/** The zero page (struct boot_params, arch/x86/include/uapi/asm/bootparam.h) handed to the kernel in RSI. */
public final class ZeroPage {
    static final int EXT_RAMDISK_IMAGE = 0x0c0;
    static final int EXT_RAMDISK_SIZE = 0x0c4;
    static final int EXT_CMD_LINE_PTR = 0x0c8;
    static final int E820_ENTRIES = 0x1e8;
    static final int BOOT_FLAG = 0x1fe;
    static final int HEADER = 0x202;
    static final int VERSION = 0x206;
    static final int TYPE_OF_LOADER = 0x210;
    static final int LOADFLAGS = 0x211;
    static final int RAMDISK_IMAGE = 0x218;
    static final int RAMDISK_SIZE = 0x21c;
    static final int CMD_LINE_PTR = 0x228;
    static final int KERNEL_ALIGNMENT = 0x230;
    static final int CMDLINE_SIZE = 0x238;
    static final int E820_TABLE = 0x2d0;
    static final int E820_MAX = 128;
    static final int SIZE = 4096;

    static final int LOADED_HIGH = 0x01;
    static final int CAN_USE_HEAP = 0x80;

    private ZeroPage() {
    }

    /**
     * Writes the zero page at {@link X86Layout#ZERO_PAGE_ADDRESS}.
     *
     * @param setupHeader the bzImage's setup header (copied in place), or null for a vmlinux
     * @param initrdAddress 0 when there is no initrd
     */
    public static void write(GuestMemory mem, byte[] setupHeader, long cmdlineAddress, int cmdlineSize,
            long initrdAddress, long initrdSize, List<E820.Entry> e820) {
        long zp = X86Layout.ZERO_PAGE_ADDRESS;
        mem.fill(zp, SIZE, (byte) 0);
        if (setupHeader != null) {
            mem.write(zp + KernelImage.SETUP_HEADER_START, setupHeader);
        } else {
            mem.setShort(zp + BOOT_FLAG, (short) 0xaa55);
            mem.setInt(zp + HEADER, KernelImage.HDRS_MAGIC);
            mem.setShort(zp + VERSION, (short) 0x020f);
            mem.setInt(zp + KERNEL_ALIGNMENT, 0x0100_0000);
        }
        mem.setByte(zp + TYPE_OF_LOADER, (byte) 0xff); // "undefined" loader
        mem.setByte(zp + LOADFLAGS, (byte) ((mem.getByte(zp + LOADFLAGS) | LOADED_HIGH | CAN_USE_HEAP) & 0xff));
        mem.setInt(zp + CMD_LINE_PTR, (int) cmdlineAddress);
        mem.setInt(zp + EXT_CMD_LINE_PTR, (int) (cmdlineAddress >>> 32));
        mem.setInt(zp + CMDLINE_SIZE, cmdlineSize);
        if (initrdAddress != 0) {
            mem.setInt(zp + RAMDISK_IMAGE, (int) initrdAddress);
            mem.setInt(zp + EXT_RAMDISK_IMAGE, (int) (initrdAddress >>> 32));
            mem.setInt(zp + RAMDISK_SIZE, (int) initrdSize);
            mem.setInt(zp + EXT_RAMDISK_SIZE, (int) (initrdSize >>> 32));
        }
        if (e820.size() > E820_MAX) {
            throw new IllegalArgumentException("too many e820 entries");
        }
        mem.setByte(zp + E820_ENTRIES, (byte) e820.size());
        for (int i = 0; i < e820.size(); i++) {
            E820.Entry e = e820.get(i);
            long at = zp + E820_TABLE + 20L * i;
            mem.setLong(at, e.address());
            mem.setLong(at + 8, e.size());
            mem.setInt(at + 16, e.type());
        }
    }
}
