package org.krun.vmm.internal.bus;

import java.util.Arrays;

/**
 * An address space of non-overlapping device ranges (ports or MMIO), looked up by binary search. Devices
 * are inserted while the VM is built and never change afterwards, so lookups take no lock. Accesses to
 * unclaimed addresses read as all ones (as an absent device on a real bus) and writes vanish.
 */
public final class Bus {

    private record Range(long base, long length, BusDevice device) {
    }

    private final String name;
    private Range[] ranges = new Range[0];
    private long unclaimed;

    public Bus(String name) {
        this.name = name;
    }

    public synchronized void insert(long base, long length, BusDevice device) {
        if (length <= 0) {
            throw new IllegalArgumentException("empty range");
        }
        for (Range r : ranges) {
            if (base < r.base + r.length && r.base < base + length) {
                throw new IllegalArgumentException(name + " range 0x" + Long.toHexString(base) + " overlaps 0x"
                        + Long.toHexString(r.base));
            }
        }
        Range[] next = Arrays.copyOf(ranges, ranges.length + 1);
        next[ranges.length] = new Range(base, length, device);
        Arrays.sort(next, (a, b) -> Long.compareUnsigned(a.base, b.base));
        ranges = next;
    }

    private Range find(long address) {
        Range[] rs = ranges;
        int lo = 0;
        int hi = rs.length - 1;
        while (lo <= hi) {
            int mid = (lo + hi) >>> 1;
            Range r = rs[mid];
            if (Long.compareUnsigned(address, r.base) < 0) {
                hi = mid - 1;
            } else if (Long.compareUnsigned(address - r.base, r.length) >= 0) {
                lo = mid + 1;
            } else {
                return r;
            }
        }
        return null;
    }

    public long read(long address, int size) {
        Range r = find(address);
        if (r == null) {
            unclaimed++;
            return size >= 8 ? -1L : (1L << (8 * size)) - 1;
        }
        return r.device.read(address - r.base, size);
    }

    public void write(long address, int size, long value) {
        Range r = find(address);
        if (r == null) {
            unclaimed++;
            return;
        }
        r.device.write(address - r.base, size, value);
    }

    /** Accesses that hit no device (a diagnostic; racy by design). */
    public long unclaimedAccesses() {
        return unclaimed;
    }
}
