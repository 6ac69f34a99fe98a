package org.krun.device.rng.internal;

import java.lang.foreign.MemorySegment;

/** Where the device's random bytes come from: the host kernel, or a fake in tests. */
interface EntropySource {

    /**
     * Fills all of {@code destination} (native memory: here, guest RAM) with random bytes.
     *
     * @throws org.krun.posix.PosixException when the host cannot provide them
     */
    void fill(MemorySegment destination);
}
