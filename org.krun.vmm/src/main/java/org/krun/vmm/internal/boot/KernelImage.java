package org.krun.vmm.internal.boot;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

import org.krun.api.VmConfigException;
import org.krun.spi.memory.GuestMemory;

/**
 * Loads a Linux kernel into guest memory for 64-bit entry: an ELF {@code vmlinux} by its PT_LOAD segments
 * at their physical addresses, or a {@code bzImage}'s protected-mode part at 1 MiB (Linux boot protocol
 * 2.12+, 64-bit entry at +0x200).
 */
public final class KernelImage {

    /** What the loader placed. */
    public record Loaded(long entry, long end, byte[] setupHeader, boolean linux) {
        /** Whether this is a bzImage, whose setup header goes into the zero page. */
        public boolean isBzImage() {
            return setupHeader != null;
        }
    }

    static final int ELF_MAGIC = 0x464c457f;
    static final int PT_LOAD = 1;
    static final int PT_NOTE = 4;
    /** The most note bytes read to tell a Linux vmlinux (krun's has 136). */
    static final int MAX_NOTES = 64 << 10;
    static final int EM_X86_64 = 62;
    static final int HDRS_MAGIC = 0x53726448;
    static final int SETUP_HEADER_START = 0x1f1;
    static final int XLF_KERNEL_64 = 1;

    private KernelImage() {
    }

    public static Loaded load(Path file, GuestMemory mem) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            ByteBuffer head = ByteBuffer.allocate(0x400).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, head, 0);
            head.flip();
            if (head.limit() >= 64 && head.getInt(0) == ELF_MAGIC) {
                return loadElf(file, ch, head, mem);
            }
            if (head.limit() >= 0x260 && head.getInt(0x202) == HDRS_MAGIC) {
                return loadBzImage(file, ch, head, mem);
            }
            throw new VmConfigException("kernel " + file + " is neither an ELF vmlinux nor a bzImage");
        } catch (IOException e) {
            throw new VmConfigException("cannot read kernel " + file + ": " + e.getMessage(), e);
        }
    }

    private static Loaded loadElf(Path file, FileChannel ch, ByteBuffer h, GuestMemory mem) throws IOException {
        if (h.get(4) != 2 || h.get(5) != 1 || (h.getShort(18) & 0xffff) != EM_X86_64) {
            throw new VmConfigException("kernel " + file + " is not a 64-bit little-endian x86_64 ELF");
        }
        long entry = h.getLong(24);
        long phoff = h.getLong(32);
        int phentsize = h.getShort(54) & 0xffff;
        int phnum = h.getShort(56) & 0xffff;
        if (phentsize < 56 || phnum == 0 || phnum > 64) {
            throw new VmConfigException("kernel " + file + " has a malformed ELF program header table");
        }
        ByteBuffer ph = ByteBuffer.allocate(phentsize * phnum).order(ByteOrder.LITTLE_ENDIAN);
        readFully(ch, ph, phoff);
        long end = 0;
        boolean loaded = false;
        boolean linux = false;
        for (int i = 0; i < phnum; i++) {
            int base = i * phentsize;
            if (ph.getInt(base) == PT_NOTE) {
                linux |= hasLinuxNote(ch, ph.getLong(base + 8), ph.getLong(base + 32));
                continue;
            }
            if (ph.getInt(base) != PT_LOAD) {
                continue;
            }
            long offset = ph.getLong(base + 8);
            long paddr = ph.getLong(base + 24);
            long filesz = ph.getLong(base + 32);
            long memsz = ph.getLong(base + 40);
            if (filesz > memsz || !mem.contains(paddr, memsz)) {
                throw new VmConfigException("kernel segment at 0x" + Long.toHexString(paddr) + " (" + memsz
                        + " bytes) does not fit in guest RAM; give the VM more memory");
            }
            readInto(ch, offset, filesz, mem, paddr);
            mem.fill(paddr + filesz, memsz - filesz, (byte) 0);
            end = Math.max(end, paddr + memsz);
            loaded = true;
        }
        if (!loaded) {
            throw new VmConfigException("kernel " + file + " has no loadable segments");
        }
        return new Loaded(entry, end, null, linux);
    }

    /**
     * Whether the notes at {@code offset} include one of owner "Linux" (a vmlinux has them: ELF notes of the
     * kernel build), as opposed to other ELF programs loaded as a kernel.
     */
    private static boolean hasLinuxNote(FileChannel ch, long offset, long size) throws IOException {
        if (size <= 0 || size > MAX_NOTES) {
            return false;
        }
        ByteBuffer b = ByteBuffer.allocate((int) size).order(ByteOrder.LITTLE_ENDIAN);
        readFully(ch, b, offset);
        b.flip();
        int at = 0;
        while (at + 12 <= b.limit()) {
            long namesz = b.getInt(at) & 0xffffffffL;
            long descsz = b.getInt(at + 4) & 0xffffffffL;
            long name = at + 12L;
            if (name + namesz > b.limit()) {
                return false;
            }
            if (namesz == 6) {
                byte[] n = new byte[5];
                b.get((int) name, n);
                if (new String(n, java.nio.charset.StandardCharsets.US_ASCII).equals("Linux")) {
                    return true;
                }
            }
            long next = name + ((namesz + 3) & ~3L) + ((descsz + 3) & ~3L);
            if (next > Integer.MAX_VALUE) {
                return false;
            }
            at = (int) next;
        }
        return false;
    }

    private static Loaded loadBzImage(Path file, FileChannel ch, ByteBuffer h, GuestMemory mem) throws IOException {
        int version = h.getShort(0x206) & 0xffff;
        int xloadflags = h.getShort(0x236) & 0xffff;
        if (version < 0x020c || (xloadflags & XLF_KERNEL_64) == 0) {
            throw new VmConfigException("bzImage " + file + " has no 64-bit entry point (boot protocol "
                    + Integer.toHexString(version >> 8) + "." + Integer.toHexString(version & 0xff) + ")");
        }
        int setupSects = h.get(0x1f1) & 0xff;
        if (setupSects == 0) {
            setupSects = 4;
        }
        long kernelOffset = (setupSects + 1) * 512L;
        long size = ch.size() - kernelOffset;
        long initSize = h.getInt(0x260) & 0xffffffffL;
        long load = X86Layout.BZIMAGE_LOAD_ADDRESS;
        if (size <= 0 || !mem.contains(load, Math.max(size, initSize))) {
            throw new VmConfigException("bzImage " + file + " does not fit in guest RAM; give the VM more memory");
        }
        readInto(ch, kernelOffset, size, mem, load);
        int headerEnd = 0x202 + (h.get(0x201) & 0xff);
        byte[] header = new byte[headerEnd - SETUP_HEADER_START];
        h.get(SETUP_HEADER_START, header);
        return new Loaded(load + 0x200, load + Math.max(size, initSize), header, true);
    }

    private static void readInto(FileChannel ch, long offset, long length, GuestMemory mem, long address)
            throws IOException {
        ByteBuffer dst = mem.slice(address, length).asByteBuffer();
        readFully(ch, dst, offset);
        if (dst.hasRemaining()) {
            throw new VmConfigException("kernel file is truncated");
        }
    }

    private static void readFully(FileChannel ch, ByteBuffer dst, long position) throws IOException {
        long pos = position;
        while (dst.hasRemaining()) {
            int n = ch.read(dst, pos);
            if (n < 0) {
                break;
            }
            pos += n;
        }
    }
}
