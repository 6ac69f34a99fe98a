package org.krun.vmm.internal.bus;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class BusTest {

    /** Answers reads with a tag and its offset, and records writes. */
    private record Recorder(long tag, List<String> writes) implements BusDevice {
        Recorder(long tag) {
            this(tag, new ArrayList<>());
        }

        @Override
        public long read(long offset, int size) {
            return tag + offset;
        }

        @Override
        public void write(long offset, int size, long value) {
            writes.add(offset + "/" + size + "=" + Long.toHexString(value));
        }
    }

    @Test
    void accessesReachTheDeviceOwningTheAddressAtItsOffset() {
        Bus bus = new Bus("pio");
        Recorder serial = new Recorder(0x1000);
        Recorder i8042 = new Recorder(0x2000);
        Recorder cmos = new Recorder(0x3000);
        bus.insert(0x3f8, 8, serial);
        bus.insert(0x60, 5, i8042);
        bus.insert(0x70, 2, cmos);

        assertEquals(0x1000, bus.read(0x3f8, 1));
        assertEquals(0x1007, bus.read(0x3ff, 1));
        assertEquals(0x2004, bus.read(0x64, 1));
        assertEquals(0x3001, bus.read(0x71, 1));
        bus.write(0x64, 1, 0xfe);
        bus.write(0x3fd, 2, 0x1234);
        assertEquals(List.of("4/1=fe"), i8042.writes());
        assertEquals(List.of("5/2=1234"), serial.writes());
        assertEquals(0, bus.unclaimedAccesses());
    }

    @Test
    void addressesAboveTheSignedRangeAreLookedUpUnsigned() {
        Bus bus = new Bus("mmio");
        bus.insert(0xd000_0000L, 0x1000, new Recorder(0));
        bus.insert(0xffff_ffff_ffff_f000L, 0x1000, new Recorder(0x100000));
        assertEquals(0x100010, bus.read(0xffff_ffff_ffff_f010L, 4));
        assertEquals(0x10, bus.read(0xd000_0010L, 4));
    }

    @ParameterizedTest
    @CsvSource({"1, ff", "2, ffff", "4, ffffffff", "8, ffffffffffffffff"})
    void unclaimedReadsAreAllOnesOfTheAccessSize(int size, String expected) {
        Bus bus = new Bus("pio");
        bus.insert(0x60, 5, new Recorder(0));
        assertEquals(Long.parseUnsignedLong(expected, 16), bus.read(0x65, size));
        assertEquals(1, bus.unclaimedAccesses());
    }

    @Test
    void unclaimedWritesVanish() {
        Bus bus = new Bus("pio");
        Recorder dev = new Recorder(0);
        bus.insert(0x60, 5, dev);
        bus.write(0x5f, 1, 1);
        bus.write(0x65, 1, 1);
        assertTrue(dev.writes().isEmpty());
        assertEquals(2, bus.unclaimedAccesses());
    }

    @ParameterizedTest(name = "[0x{0}, +{1})")
    @CsvSource({
        "100, 10", // identical
        "108, 10", // overlapping the end
        "f8, 10",  // overlapping the start
        "104, 4",  // inside
        "f0, 40",  // around
        "10f, 1",  // last byte
    })
    void overlappingRangesAreRefused(String base, long length) {
        Bus bus = new Bus("mmio");
        bus.insert(0x100, 0x10, new Recorder(0));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> bus.insert(Long.parseLong(base, 16), length, new Recorder(1)));
        assertTrue(e.getMessage().contains("mmio") && e.getMessage().contains("overlaps 0x100"), e.getMessage());
    }

    @Test
    void adjacentRangesAreFine() {
        Bus bus = new Bus("mmio");
        bus.insert(0x100, 0x10, new Recorder(0x1000));
        bus.insert(0xf0, 0x10, new Recorder(0x2000));
        bus.insert(0x110, 0x10, new Recorder(0x3000));
        assertEquals(0x200f, bus.read(0xff, 1));
        assertEquals(0x1000, bus.read(0x100, 1));
        assertEquals(0x100f, bus.read(0x10f, 1));
        assertEquals(0x3000, bus.read(0x110, 1));
    }

    @Test
    void emptyRangesAreRefused() {
        Bus bus = new Bus("pio");
        assertThrows(IllegalArgumentException.class, () -> bus.insert(0x60, 0, new Recorder(0)));
    }
}
