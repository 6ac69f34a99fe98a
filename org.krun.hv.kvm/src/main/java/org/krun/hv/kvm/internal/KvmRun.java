package org.krun.hv.kvm.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;

/** The vCPU's shared struct kvm_run (linux/kvm.h), mapped from the vCPU fd. */
final class KvmRun {
    static final int EXIT_UNKNOWN = 0;
    static final int EXIT_EXCEPTION = 1;
    static final int EXIT_IO = 2;
    static final int EXIT_HYPERCALL = 3;
    static final int EXIT_DEBUG = 4;
    static final int EXIT_HLT = 5;
    static final int EXIT_MMIO = 6;
    static final int EXIT_IRQ_WINDOW_OPEN = 7;
    static final int EXIT_SHUTDOWN = 8;
    static final int EXIT_FAIL_ENTRY = 9;
    static final int EXIT_INTR = 10;
    static final int EXIT_INTERNAL_ERROR = 17;
    static final int EXIT_SYSTEM_EVENT = 24;

    static final int IO_DIRECTION_IN = 0;
    static final int IO_DIRECTION_OUT = 1;

    static final int SYSTEM_EVENT_SHUTDOWN = 1;
    static final int SYSTEM_EVENT_RESET = 2;
    static final int SYSTEM_EVENT_CRASH = 3;

    // struct kvm_run offsets
    private static final long IMMEDIATE_EXIT = 1;
    private static final long EXIT_REASON = 8;
    private static final long UNION = 32;
    // union: io
    private static final long IO_DIRECTION = UNION;
    private static final long IO_SIZE = UNION + 1;
    private static final long IO_PORT = UNION + 2;
    private static final long IO_COUNT = UNION + 4;
    private static final long IO_DATA_OFFSET = UNION + 8;
    // union: mmio
    private static final long MMIO_PHYS_ADDR = UNION;
    private static final long MMIO_DATA = UNION + 8;
    private static final long MMIO_LEN = UNION + 16;
    private static final long MMIO_IS_WRITE = UNION + 20;
    // union: internal / system_event / fail_entry
    private static final long INTERNAL_SUBERROR = UNION;
    private static final long INTERNAL_NDATA = UNION + 4;
    private static final long INTERNAL_DATA = UNION + 8;

    final MemorySegment run;

    KvmRun(MemorySegment run) {
        this.run = run;
    }

    int exitReason() {
        return run.get(JAVA_INT, EXIT_REASON);
    }

    void setImmediateExit(boolean on) {
        run.set(JAVA_BYTE, IMMEDIATE_EXIT, (byte) (on ? 1 : 0));
    }

    int ioDirection() {
        return run.get(JAVA_BYTE, IO_DIRECTION);
    }

    int ioSize() {
        return run.get(JAVA_BYTE, IO_SIZE);
    }

    int ioPort() {
        return run.get(JAVA_SHORT, IO_PORT) & 0xffff;
    }

    int ioCount() {
        return run.get(JAVA_INT, IO_COUNT);
    }

    long ioDataOffset() {
        return run.get(JAVA_LONG, IO_DATA_OFFSET);
    }

    long mmioAddress() {
        return run.get(JAVA_LONG, MMIO_PHYS_ADDR);
    }

    int mmioLength() {
        return run.get(JAVA_INT, MMIO_LEN);
    }

    boolean mmioIsWrite() {
        return run.get(JAVA_BYTE, MMIO_IS_WRITE) != 0;
    }

    long mmioData() {
        return readData(MMIO_DATA, mmioLength());
    }

    void setMmioData(long value) {
        writeData(MMIO_DATA, mmioLength(), value);
    }

    long readData(long offset, int size) {
        return switch (size) {
            case 1 -> run.get(JAVA_BYTE, offset) & 0xffL;
            case 2 -> run.get(JAVA_SHORT.withByteAlignment(1), offset) & 0xffffL;
            case 4 -> run.get(JAVA_INT.withByteAlignment(1), offset) & 0xffffffffL;
            case 8 -> run.get(JAVA_LONG.withByteAlignment(1), offset);
            default -> {
                long v = 0;
                for (int i = 0; i < Math.min(size, 8); i++) {
                    v |= (run.get(JAVA_BYTE, offset + i) & 0xffL) << (8 * i);
                }
                yield v;
            }
        };
    }

    void writeData(long offset, int size, long value) {
        for (int i = 0; i < Math.min(size, 8); i++) {
            run.set(JAVA_BYTE, offset + i, (byte) (value >>> (8 * i)));
        }
    }

    int internalSuberror() {
        return run.get(JAVA_INT, INTERNAL_SUBERROR);
    }

    String internalData() {
        int n = Math.min(run.get(JAVA_INT, INTERNAL_NDATA), 16);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < n; i++) {
            sb.append(i == 0 ? "" : " ").append("0x").append(Long.toHexString(run.get(JAVA_LONG, INTERNAL_DATA + 8L * i)));
        }
        return sb.toString();
    }

    int systemEventType() {
        return run.get(JAVA_INT, UNION);
    }

    long failEntryReason() {
        return run.get(JAVA_LONG, UNION);
    }
}
