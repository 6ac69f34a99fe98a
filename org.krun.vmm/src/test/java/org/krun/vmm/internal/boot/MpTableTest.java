package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** Checks the table as Linux's arch/x86/kernel/mpparse.c reads it (Intel MP spec 1.4, chapter 4). */
class MpTableTest {
    private static final long ADDRESS = 0x9fc00;

    private static String ascii(ByteBuffer b, int at, int length) {
        byte[] s = new byte[length];
        b.get(at, s);
        return new String(s, StandardCharsets.US_ASCII);
    }

    private static int sum(ByteBuffer b, int from, int length) {
        int s = 0;
        for (int i = from; i < from + length; i++) {
            s += b.get(i);
        }
        return s & 0xff;
    }

    private static ByteBuffer table(int cpus) {
        return ByteBuffer.wrap(MpTable.build(cpus, ADDRESS)).order(ByteOrder.LITTLE_ENDIAN);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 64})
    void floatingPointerPointsAtTheTableRightAfterIt(int cpus) {
        ByteBuffer b = table(cpus);
        assertEquals("_MP_", ascii(b, 0, 4));
        assertEquals(ADDRESS + 16, b.getInt(4) & 0xffffffffL, "physical address pointer");
        assertEquals(1, b.get(8), "length in 16-byte units");
        assertEquals(4, b.get(9), "spec revision 1.4");
        assertEquals(0, sum(b, 0, 16), "checksum");
        for (int i = 11; i < 16; i++) {
            assertEquals(0, b.get(i), "feature byte " + (i - 10) + ": a configuration table is present");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 64})
    void configurationTableHeaderDescribesTheWholeTable(int cpus) {
        ByteBuffer b = table(cpus);
        int length = b.getShort(16 + 4) & 0xffff;
        assertEquals("PCMP", ascii(b, 16, 4));
        assertEquals(b.capacity() - 16, length, "base table length");
        assertEquals(MpTable.size(cpus), b.capacity());
        assertEquals(4, b.get(16 + 6), "spec revision");
        assertEquals(0, sum(b, 16, length), "checksum");
        assertEquals("KRUN    ", ascii(b, 16 + 8, 8));
        assertEquals("MICROVM     ", ascii(b, 16 + 16, 12));
        assertEquals(cpus + 1 + 1 + 24 + 2, b.getShort(16 + 34), "entry count");
        assertEquals(0xfee00000L, b.getInt(16 + 36) & 0xffffffffL, "local APIC address");
        assertEquals(0, b.getShort(16 + 40), "no extended table");
    }

    private record Entry(int type, ByteBuffer bytes) {
    }

    private static List<Entry> entries(ByteBuffer b) {
        List<Entry> out = new ArrayList<>();
        int at = 16 + 44;
        while (at < b.capacity()) {
            int type = b.get(at);
            int size = type == 0 ? 20 : 8;
            out.add(new Entry(type, b.slice(at, size).order(ByteOrder.LITTLE_ENDIAN)));
            at += size;
        }
        assertEquals(b.capacity(), at, "entries end with the table");
        return out;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 3, 64})
    void entriesListCpusThenBusThenIoApicThenInterrupts(int cpus) {
        List<Entry> entries = entries(table(cpus));
        assertEquals(cpus + 28, entries.size());
        int ioapicId = cpus;
        for (int cpu = 0; cpu < cpus; cpu++) {
            ByteBuffer e = entries.get(cpu).bytes();
            assertEquals(0, entries.get(cpu).type());
            assertEquals(cpu, e.get(1), "local APIC id");
            assertEquals(cpu == 0 ? 3 : 1, e.get(3), "enabled, bootstrap processor only for CPU 0");
        }
        Entry bus = entries.get(cpus);
        assertEquals(1, bus.type());
        assertEquals(0, bus.bytes().get(1), "bus id");
        assertEquals("ISA   ", ascii(bus.bytes(), 2, 6));

        Entry ioapic = entries.get(cpus + 1);
        assertEquals(2, ioapic.type());
        assertEquals(ioapicId, ioapic.bytes().get(1), "IOAPIC id after the last local APIC id");
        assertEquals(1, ioapic.bytes().get(3), "enabled");
        assertEquals(0xfec00000L, ioapic.bytes().getInt(4) & 0xffffffffL);

        for (int pin = 0; pin < 24; pin++) {
            ByteBuffer e = entries.get(cpus + 2 + pin).bytes();
            assertEquals(3, e.get(0), "I/O interrupt entry");
            assertEquals(0, e.get(1), "INT");
            assertEquals(0, e.get(4), "source bus: ISA");
            assertEquals(pin, e.get(5), "source IRQ");
            assertEquals(ioapicId, e.get(6), "destination IOAPIC");
            assertEquals(pin, e.get(7), "IOAPIC pin");
        }
        ByteBuffer lint0 = entries.get(cpus + 26).bytes();
        assertEquals(4, lint0.get(0));
        assertEquals(3, lint0.get(1), "ExtINT");
        assertEquals(0, lint0.get(6), "to the bootstrap processor's local APIC");
        assertEquals(0, lint0.get(7), "LINT0");
        ByteBuffer lint1 = entries.get(cpus + 27).bytes();
        assertEquals(4, lint1.get(0));
        assertEquals(1, lint1.get(1), "NMI");
        assertEquals((byte) 0xff, lint1.get(6), "to every local APIC");
        assertEquals(1, lint1.get(7), "LINT1");
    }

    @Test
    void writePutsTheFloatingPointerWhereLinuxScansForIt() {
        try (TestMemory t = new TestMemory(0x100000, (byte) 0xee)) {
            MpTable.write(t.memory, 2);
            byte[] got = new byte[MpTable.size(2)];
            t.memory.read(ADDRESS, got, 0, got.length);
            assertEquals(ByteBuffer.wrap(MpTable.build(2, ADDRESS)), ByteBuffer.wrap(got));
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0, -1, 255})
    void cpuCountOutsideTheApicIdRangeIsRefused(int cpus) {
        assertThrows(IllegalArgumentException.class, () -> MpTable.build(cpus, ADDRESS));
    }
}
