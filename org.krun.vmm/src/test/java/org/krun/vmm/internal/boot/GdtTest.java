package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;
import org.krun.spi.hypervisor.X86BootState;
import org.krun.spi.memory.GuestMemory;

class GdtTest {

    @Test
    void bootDescriptorsHaveTheValuesLinuxLoadersUse() {
        // The same table as Firecracker's and libkrun's configure_segments.
        assertArrayEquals(new long[] {0, 0x00af9b000000ffffL, 0x00cf93000000ffffL, 0x008f8b000000ffffL}, Gdt.ENTRIES);
    }

    @Test
    void entryPlacesEveryBaseLimitAndFlagBitWhereTheCpuReadsIt() {
        // limit 15:0 | base 23:0 | access | limit 19:16 | flags | base 31:24
        assertEquals(0x12_4a_93_345678_bcdeL, Gdt.entry(0x4093, 0x12345678L, 0xabcde));
    }

    @Test
    void codeSegmentIsFlat64BitRing0() {
        assertEquals(new X86BootState.Segment(0, 0xffffffff, 0x08, 0xb, true, 0, false, true, true, true), Gdt.code());
    }

    @Test
    void dataSegmentIsFlatWritableRing0() {
        assertEquals(new X86BootState.Segment(0, 0xffffffff, 0x10, 0x3, true, 0, true, true, false, true), Gdt.data());
    }

    @Test
    void tssSegmentIsABusy64BitTss() {
        assertEquals(new X86BootState.Segment(0, 0xffffffff, 0x18, 0xb, true, 0, false, false, false, true), Gdt.tss());
    }

    @Test
    void segmentDecodesWhatEntryEncodes() {
        X86BootState.Segment s = Gdt.segment(Gdt.entry(0x40f3, 0x12345678L, 0xabcde), 0x2b);
        assertEquals(new X86BootState.Segment(0x12345678L, 0xabcde, 0x2b, 0x3, true, 3, true, true, false, false), s,
                "byte granularity keeps the limit unscaled");
    }

    @Test
    void writePutsTheTableAt0x500AndAnEmptyIdtAfterIt() {
        try (TestMemory t = new TestMemory(0x1000, (byte) 0xff)) {
            GuestMemory mem = t.memory;
            Gdt.write(mem);
            for (int i = 0; i < 4; i++) {
                assertEquals(Gdt.ENTRIES[i], mem.getLong(0x500 + 8L * i));
            }
            assertEquals(0, mem.getLong(0x520));
            assertEquals(new X86BootState.DescriptorTable(0x500, 31), Gdt.gdtr());
            assertEquals(new X86BootState.DescriptorTable(0x520, 7), Gdt.idtr());
        }
    }
}
