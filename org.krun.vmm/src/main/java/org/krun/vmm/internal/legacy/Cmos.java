package org.krun.vmm.internal.legacy;

import java.time.Clock;
import java.time.ZonedDateTime;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * The MC146818 CMOS real-time clock at ports 0x70 (index) and 0x71 (data), read-only: the current UTC
 * time in BCD, 24-hour mode, never "update in progress" (the kernel spins on that bit otherwise).
 */
public final class Cmos implements BusDevice {
    public static final int BASE = 0x70;
    public static final int LENGTH = 2;

    static final int SECONDS = 0x00;
    static final int MINUTES = 0x02;
    static final int HOURS = 0x04;
    static final int DAY_OF_WEEK = 0x06;
    static final int DAY_OF_MONTH = 0x07;
    static final int MONTH = 0x08;
    static final int YEAR = 0x09;
    static final int STATUS_A = 0x0a;
    static final int STATUS_B = 0x0b;
    static final int STATUS_C = 0x0c;
    static final int STATUS_D = 0x0d;
    static final int CENTURY = 0x32;

    /** 32.768 kHz time base, 1024 Hz rate; UIP (bit 7) clear. */
    static final int STATUS_A_VALUE = 0x26;
    /** 24-hour mode, BCD. */
    static final int STATUS_B_VALUE = 0x02;
    /** Valid RAM and time. */
    static final int STATUS_D_VALUE = 0x80;

    private final Clock clock;
    private int index;

    public Cmos(Clock clock) {
        this.clock = clock;
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset == 0) {
            return index;
        }
        ZonedDateTime t = ZonedDateTime.now(clock);
        return switch (index) {
            case SECONDS -> bcd(t.getSecond());
            case MINUTES -> bcd(t.getMinute());
            case HOURS -> bcd(t.getHour());
            case DAY_OF_WEEK -> bcd(t.getDayOfWeek().getValue() % 7 + 1);
            case DAY_OF_MONTH -> bcd(t.getDayOfMonth());
            case MONTH -> bcd(t.getMonthValue());
            case YEAR -> bcd(t.getYear() % 100);
            case CENTURY -> bcd(t.getYear() / 100);
            case STATUS_A -> STATUS_A_VALUE;
            case STATUS_B -> STATUS_B_VALUE;
            case STATUS_C -> 0;
            case STATUS_D -> STATUS_D_VALUE;
            default -> 0;
        };
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        if (offset == 0) {
            index = (int) (value & 0x7f); // bit 7 masks NMIs on real hardware
        }
    }

    static int bcd(int v) {
        return ((v / 10) << 4) | (v % 10);
    }

    /** For a snapshot: the selected register (the clock itself is the host's). */
    public synchronized byte[] saveState() {
        return new byte[] {(byte) index};
    }

    public synchronized void restoreState(byte[] state) {
        if (state.length != 1) {
            throw new IllegalArgumentException("CMOS state has " + state.length + " bytes, not 1");
        }
        index = state[0] & 0x7f;
    }
}
