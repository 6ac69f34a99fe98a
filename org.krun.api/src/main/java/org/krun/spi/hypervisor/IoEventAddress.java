package org.krun.spi.hypervisor;

import java.util.OptionalLong;

/**
 * A guest write that an ioeventfd answers: a port or an MMIO address, an access length, and optionally
 * the only value that triggers it.
 */
public sealed interface IoEventAddress {

    long address();

    int length();

    OptionalLong datamatch();

    /** A port I/O write. */
    record Pio(long address, int length, OptionalLong datamatch) implements IoEventAddress {
    }

    /** An MMIO write. */
    record Mmio(long address, int length, OptionalLong datamatch) implements IoEventAddress {
    }
}
