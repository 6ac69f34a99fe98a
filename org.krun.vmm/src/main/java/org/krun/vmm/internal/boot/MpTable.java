package org.krun.vmm.internal.boot;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;

import org.krun.spi.memory.GuestMemory;

/**
 * An Intel MultiProcessor Specification 1.4 table: how a kernel without ACPI finds its CPUs, the IOAPIC
 * and how ISA interrupts are wired. Floating pointer, then the configuration table with one processor
 * entry per vCPU, an ISA bus, the IOAPIC, one I/O interrupt entry per IOAPIC pin (identity mapped) and the
 * local interrupts (LINT0 ExtINT, LINT1 NMI).
 */
public final class MpTable {
    static final int FLOATING_POINTER_SIZE = 16;
    static final int HEADER_SIZE = 44;
    static final int PROCESSOR_ENTRY_SIZE = 20;
    static final int OTHER_ENTRY_SIZE = 8;

    static final int ENTRY_PROCESSOR = 0;
    static final int ENTRY_BUS = 1;
    static final int ENTRY_IOAPIC = 2;
    static final int ENTRY_IO_INTERRUPT = 3;
    static final int ENTRY_LOCAL_INTERRUPT = 4;

    static final int INT_TYPE_INT = 0;
    static final int INT_TYPE_NMI = 1;
    static final int INT_TYPE_EXTINT = 3;

    static final int CPU_ENABLED = 1;
    static final int CPU_BOOTSTRAP = 2;
    static final int APIC_VERSION = 0x14;
    static final int IOAPIC_VERSION = 0x11;
    /** Family 6 (any modern x86), reported for every processor entry. */
    static final int CPU_SIGNATURE = 0x600;
    /** CPUID.1 EDX: FPU and APIC present. */
    static final int CPU_FEATURES = 0x201;

    private MpTable() {
    }

    /** Size of the whole structure for {@code cpus} processors. */
    public static int size(int cpus) {
        return FLOATING_POINTER_SIZE + configTableSize(cpus);
    }

    static int configTableSize(int cpus) {
        return HEADER_SIZE + cpus * PROCESSOR_ENTRY_SIZE
                + OTHER_ENTRY_SIZE * (1 /* bus */ + 1 /* ioapic */ + X86Layout.IOAPIC_PINS + 2 /* LINT0/1 */);
    }

    /** Builds the table as it lies at {@code address}. */
    public static byte[] build(int cpus, long address) {
        if (cpus < 1 || cpus > 254) {
            throw new IllegalArgumentException("MP table supports 1..254 CPUs");
        }
        int ioapicId = cpus; // after the last local APIC id
        ByteBuffer b = ByteBuffer.allocate(size(cpus)).order(ByteOrder.LITTLE_ENDIAN);
        long tableAddress = address + FLOATING_POINTER_SIZE;

        // floating pointer structure
        b.put("_MP_".getBytes(StandardCharsets.US_ASCII));
        b.putInt((int) tableAddress);
        b.put((byte) 1); // length in 16-byte units
        b.put((byte) 4); // spec revision 1.4
        b.put((byte) 0); // checksum, below
        b.put(new byte[5]); // feature bytes: 0 = configuration table present
        b.put(10, checksum(b.array(), 0, FLOATING_POINTER_SIZE));

        // configuration table header
        int start = b.position();
        int entries = cpus + 1 + 1 + X86Layout.IOAPIC_PINS + 2;
        b.put("PCMP".getBytes(StandardCharsets.US_ASCII));
        b.putShort((short) configTableSize(cpus));
        b.put((byte) 4);
        b.put((byte) 0); // checksum, below
        b.put("KRUN    ".getBytes(StandardCharsets.US_ASCII));
        b.put("MICROVM     ".getBytes(StandardCharsets.US_ASCII));
        b.putInt(0); // OEM table pointer
        b.putShort((short) 0); // OEM table size
        b.putShort((short) entries);
        b.putInt((int) X86Layout.LAPIC_ADDRESS);
        b.putShort((short) 0); // extended table length
        b.put((byte) 0); // extended table checksum
        b.put((byte) 0);

        for (int cpu = 0; cpu < cpus; cpu++) {
            b.put((byte) ENTRY_PROCESSOR);
            b.put((byte) cpu); // local APIC id
            b.put((byte) APIC_VERSION);
            b.put((byte) (CPU_ENABLED | (cpu == 0 ? CPU_BOOTSTRAP : 0)));
            b.putInt(CPU_SIGNATURE);
            b.putInt(CPU_FEATURES);
            b.putLong(0);
        }

        b.put((byte) ENTRY_BUS);
        b.put((byte) 0);
        b.put("ISA   ".getBytes(StandardCharsets.US_ASCII));

        b.put((byte) ENTRY_IOAPIC);
        b.put((byte) ioapicId);
        b.put((byte) IOAPIC_VERSION);
        b.put((byte) 1); // enabled
        b.putInt((int) X86Layout.IOAPIC_ADDRESS);

        for (int pin = 0; pin < X86Layout.IOAPIC_PINS; pin++) {
            b.put((byte) ENTRY_IO_INTERRUPT);
            b.put((byte) INT_TYPE_INT);
            b.putShort((short) 0); // polarity and trigger: conforming to the bus
            b.put((byte) 0); // source bus
            b.put((byte) pin); // source bus IRQ
            b.put((byte) ioapicId);
            b.put((byte) pin); // IOAPIC pin
        }

        localInterrupt(b, INT_TYPE_EXTINT, 0, 0);
        localInterrupt(b, INT_TYPE_NMI, 0xff, 1);

        b.put(start + 7, checksum(b.array(), start, configTableSize(cpus)));
        return b.array();
    }

    private static void localInterrupt(ByteBuffer b, int type, int destinationApic, int lint) {
        b.put((byte) ENTRY_LOCAL_INTERRUPT);
        b.put((byte) type);
        b.putShort((short) 0);
        b.put((byte) 0); // source bus
        b.put((byte) 0); // source bus IRQ
        b.put((byte) destinationApic); // 0xff: every local APIC
        b.put((byte) lint);
    }

    /** The byte that makes {@code data[from, from + length)} sum to zero. */
    static byte checksum(byte[] data, int from, int length) {
        int sum = 0;
        for (int i = from; i < from + length; i++) {
            sum += data[i];
        }
        return (byte) -sum;
    }

    public static void write(GuestMemory mem, int cpus) {
        mem.write(X86Layout.MPTABLE_ADDRESS, build(cpus, X86Layout.MPTABLE_ADDRESS));
    }
}
