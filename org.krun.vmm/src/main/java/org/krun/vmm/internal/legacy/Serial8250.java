package org.krun.vmm.internal.legacy;

import java.io.IOException;
import java.io.OutputStream;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * Enough of a 16550 UART at 0x3f8 for the kernel's early console ({@code earlyprintk=serial}): the
 * transmitter is always empty and every byte written goes to {@code out}. No interrupts, no input.
 */
public final class Serial8250 implements BusDevice {
    public static final int COM1 = 0x3f8;
    public static final int LENGTH = 8;
    static final int THR = 0;
    static final int IIR = 2;
    static final int LCR = 3;
    static final int LSR = 5;
    static final int SCR = 7;
    static final int LCR_DLAB = 0x80;
    static final int IIR_NO_INTERRUPT = 0x01;
    /** Transmitter holding register empty, transmitter empty. */
    static final int LSR_TX_IDLE = 0x60;

    private final OutputStream out;
    private int lcr;
    private int scratch;

    public Serial8250(OutputStream out) {
        this.out = out;
    }

    @Override
    public synchronized long read(long offset, int size) {
        return switch ((int) offset) {
            case IIR -> IIR_NO_INTERRUPT;
            case LCR -> lcr;
            case LSR -> LSR_TX_IDLE;
            case SCR -> scratch;
            default -> 0;
        };
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        int v = (int) (value & 0xff);
        switch ((int) offset) {
            case THR -> {
                if ((lcr & LCR_DLAB) == 0) {
                    try {
                        out.write(v);
                        if (v == '\n') {
                            out.flush();
                        }
                    } catch (IOException e) {
                        // the early console is best effort
                    }
                }
            }
            case LCR -> lcr = v;
            case SCR -> scratch = v;
            default -> {
            }
        }
    }

    /** For a snapshot: the line control and scratch registers (nothing else of the UART keeps state). */
    public synchronized byte[] saveState() {
        return new byte[] {(byte) lcr, (byte) scratch};
    }

    public synchronized void restoreState(byte[] state) {
        if (state.length != 2) {
            throw new IllegalArgumentException("serial 8250 state has " + state.length + " bytes, not 2");
        }
        lcr = state[0] & 0xff;
        scratch = state[1] & 0xff;
    }
}
