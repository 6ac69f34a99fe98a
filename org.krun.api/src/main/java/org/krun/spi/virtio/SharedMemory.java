package org.krun.spi.virtio;

import java.lang.foreign.MemorySegment;

import org.osgi.annotation.versioning.ProviderType;

/**
 * A {@link SharedMemoryRegion} as the transport placed it in guest-physical memory, through which a device
 * makes host memory visible to the guest while the VM runs (a hypervisor memory slot per mapping). Every
 * mapping is removed when the device is reset and when the VM ends, whether or not the device unmapped it;
 * the device must keep the host memory of a mapping alive until it {@link Mapping#close() unmaps} it or its
 * reset returns.
 *
 * <p>Thread-safe: devices may map and unmap from their own threads.
 *
 * @since 1.6
 */
@ProviderType
public interface SharedMemory {

    /** The region's shmid. */
    int id();

    /** Where the region starts in guest-physical memory (page-aligned). */
    long guestAddress();

    /** The region's length in bytes. */
    long size();

    /** The mappings in place now. */
    int mappings();

    /**
     * Makes {@code host} visible to the guest at {@code offset} into the region, read-write.
     *
     * @param host page-aligned, a whole number of pages; owned by the caller, kept alive until unmapped
     * @throws IllegalArgumentException (one line) when {@code offset} or {@code host} is not page-aligned, the
     *         range leaves the region, or overlaps a mapping in place
     * @throws IllegalStateException (one line) when every mapping this VM may hold is in use
     * @throws UnsupportedOperationException when the hypervisor cannot map memory into a running VM
     */
    Mapping map(long offset, MemorySegment host);

    /** One host range mapped into the region. */
    interface Mapping extends AutoCloseable {

        /** Where the mapping starts in the region. */
        long offset();

        /** Its length in bytes. */
        long size();

        /** Removes the mapping from the guest; after this returns the host memory may be freed. Idempotent. */
        @Override
        void close();
    }
}
