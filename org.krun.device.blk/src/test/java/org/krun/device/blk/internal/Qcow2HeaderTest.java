package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

import org.junit.jupiter.api.Test;

/** Header checks that need no qemu-img: values a hand-made (or damaged) image may carry. */
class Qcow2HeaderTest {

    private static final long FILE = 1 << 20;

    /** A version 3 header: 64 KiB clusters, L1 at 64 KiB, refcount table at 128 KiB, 16-bit refcounts. */
    private static ByteBuffer header(long size, int l1Size) {
        ByteBuffer b = ByteBuffer.allocate(Qcow2Header.READ_SIZE).order(ByteOrder.BIG_ENDIAN);
        b.putInt(0, Qcow2Header.MAGIC).putInt(4, 3).putInt(20, 16).putLong(24, size).putInt(36, l1Size)
                .putLong(40, 65536).putLong(48, 131072).putInt(56, 1).putInt(96, 4).putInt(100, 104);
        return b;
    }

    @Test
    void aWellFormedHeaderIsAccepted() throws Exception {
        Qcow2Header h = Qcow2Header.parse(header(1L << 30, 2).array(), FILE, true);
        assertEquals(1L << 30, h.size());
        assertEquals(65536, h.clusterSize());
    }

    @Test
    void aVirtualSizeNearTheLargestLongNeedsItsL1TableAndDoesNotWrapAround() {
        // Rounding the needed L1 entries up as (size + coverage - 1) / coverage overflowed to a negative
        // count, so an empty L1 table passed and the first request indexed past it.
        Qcow2Exception e = assertThrows(Qcow2Exception.class,
                () -> Qcow2Header.parse(header(Long.MAX_VALUE - 4095, 0).array(), FILE, true));
        assertTrue(e.getMessage().contains("too small"), e.getMessage());
    }
}
