package org.krun.vmm.internal.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Clock;
import java.time.Instant;
import java.time.ZoneOffset;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class CmosTest {
    /** A Thursday, one second before midnight UTC. */
    private final Cmos cmos = new Cmos(Clock.fixed(Instant.parse("2024-02-29T23:59:58Z"), ZoneOffset.UTC));

    private int register(int index) {
        cmos.write(0, 1, index);
        return (int) cmos.read(1, 1);
    }

    @Test
    void timeAndDateReadAsBcd() {
        assertEquals(0x58, register(0x00), "seconds");
        assertEquals(0x59, register(0x02), "minutes");
        assertEquals(0x23, register(0x04), "hours, 24-hour");
        assertEquals(0x05, register(0x06), "day of week, Sunday = 1");
        assertEquals(0x29, register(0x07), "day of month");
        assertEquals(0x02, register(0x08), "month");
        assertEquals(0x24, register(0x09), "year");
        assertEquals(0x20, register(0x32), "century");
    }

    @Test
    void statusRegistersSayBcd24HourValidAndNoUpdateInProgress() {
        assertEquals(0, register(0x0a) & 0x80, "UIP clear");
        assertEquals(0x02, register(0x0b) & 0x06, "24-hour (bit 1), BCD (bit 2 clear)");
        assertEquals(0, register(0x0c));
        assertEquals(0x80, register(0x0d), "valid RAM and time");
    }

    @Test
    void updateInProgressIsNeverSetOnRepeatedReads() {
        for (int i = 0; i < 10_000; i++) {
            assertEquals(0, register(0x0a) & 0x80);
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {0x80, 0x84})
    void nmiMaskBitOfTheIndexIsIgnored(int index) {
        cmos.write(0, 1, index);
        assertEquals(index & 0x7f, cmos.read(0, 1));
        assertEquals(index == 0x84 ? 0x23 : 0x58, cmos.read(1, 1));
    }

    @Test
    void unknownRegistersReadZero() {
        assertEquals(0, register(0x10));
        assertEquals(0, register(0x7f));
    }

    @Test
    void bcdEncodesTwoDecimalDigits() {
        assertEquals(0x00, Cmos.bcd(0));
        assertEquals(0x09, Cmos.bcd(9));
        assertEquals(0x10, Cmos.bcd(10));
        assertEquals(0x99, Cmos.bcd(99));
    }
}
