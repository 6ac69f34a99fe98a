package org.krun.vmm.internal.boot;

import java.util.ArrayList;
import java.util.List;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;

/** The guest's BIOS memory map (e820), derived from guest RAM (DESIGN.md §3). */
public final class E820 {
    public static final int TYPE_RAM = 1;
    public static final int TYPE_RESERVED = 2;

    /** One e820 entry. */
    public record Entry(long address, long size, int type) {
    }

    private E820() {
    }

    /**
     * RAM [0, 0x9fc00), RAM [1 MiB, end of the low region), and every region above as RAM; the MP table
     * page and the legacy hole stay out of the map.
     */
    public static List<Entry> of(GuestMemory mem) {
        List<Entry> out = new ArrayList<>();
        for (GuestRegion r : mem.regions()) {
            if (r.guestAddress() == 0) {
                out.add(new Entry(0, Math.min(X86Layout.BASE_MEMORY_END, r.end()), TYPE_RAM));
                if (r.end() > X86Layout.HIGH_MEMORY_START) {
                    out.add(new Entry(X86Layout.HIGH_MEMORY_START, r.end() - X86Layout.HIGH_MEMORY_START, TYPE_RAM));
                }
            } else {
                out.add(new Entry(r.guestAddress(), r.size(), TYPE_RAM));
            }
        }
        return out;
    }
}
