package org.krun.device.balloon.internal;

import java.lang.foreign.MemorySegment;

import org.krun.posix.Posix;

/** Gives guest pages' host memory back to the host; a fake in tests. */
interface PageDiscarder {

    /**
     * Releases the host memory behind {@code pages} (page-aligned, inside the guest RAM mapping); the guest
     * reads zeros there afterwards.
     *
     * @throws org.krun.posix.PosixException when the host refuses
     */
    void discard(MemorySegment pages);

    /**
     * madvise(MADV_DONTNEED) on the guest RAM mapping (anonymous and private): the pages leave the VMM's
     * resident set at once, and KVM drops its mappings of them through its MMU notifier; the next guest
     * access faults in a zero page.
     */
    PageDiscarder MADV_DONTNEED = pages ->
            Posix.check("madvise(MADV_DONTNEED, " + pages.byteSize() + " bytes)", Posix.madvise(pages, Posix.MADV_DONTNEED));
}
