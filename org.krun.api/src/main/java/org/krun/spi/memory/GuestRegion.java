package org.krun.spi.memory;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/** A range of guest physical memory backed by a host segment. */
public record GuestRegion(long guestAddress, MemorySegment host) {

    public GuestRegion {
        Objects.requireNonNull(host, "host");
        if (guestAddress < 0 || Long.remainderUnsigned(guestAddress, 4096) != 0) {
            throw new IllegalArgumentException("guest address must be page aligned: 0x" + Long.toHexString(guestAddress));
        }
    }

    public long size() {
        return host.byteSize();
    }

    /** The first guest address after this region. */
    public long end() {
        return guestAddress + host.byteSize();
    }

    public boolean contains(long address, long length) {
        return address >= guestAddress && length >= 0 && address - guestAddress <= host.byteSize() - length;
    }
}
