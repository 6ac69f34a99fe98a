package org.krun.spi.memory;

/** A guest physical access that falls outside guest RAM: the guest's mistake, never the host's. */
public final class GuestMemoryException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public GuestMemoryException(long address, long length) {
        super("guest access outside RAM: 0x" + Long.toHexString(address) + " (+" + length + ")");
    }
}
