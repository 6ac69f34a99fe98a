package org.krun.spi.hypervisor;

import java.lang.foreign.MemorySegment;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * One VM as the hypervisor sees it. The core creates exactly one per {@code VirtualMachine} and closes
 * it when the VM stops; closing releases every host resource the backend acquired for it.
 */
@ConsumerType
public interface HypervisorVm extends AutoCloseable {

    /**
     * Makes {@code host} guest RAM at {@code guestAddress} in memory slot {@code slot}. The segment stays owned
     * by the caller and must outlive this VM, or the slot's {@link #unmapMemory}.
     */
    void mapMemory(int slot, long guestAddress, MemorySegment host);

    /**
     * How many memory slots this VM has, numbered from 0 ({@link #mapMemory} takes any of them), when this
     * backend can also add and remove slots while the VM runs ({@link #unmapMemory}); 0 when it cannot, and
     * the core then refuses devices' shared memory mappings with one line.
     *
     * @since 1.2
     */
    default int memorySlots() {
        return 0;
    }

    /**
     * Removes the memory at {@code slot} that {@link #mapMemory} put there, while vCPUs may be running: once
     * this returns the guest no longer reaches the host memory, which the caller may then free.
     *
     * @throws UnsupportedOperationException when the backend cannot ({@link #memorySlots()} is 0)
     * @since 1.2
     */
    default void unmapMemory(int slot) {
        throw new UnsupportedOperationException("this hypervisor backend cannot unmap memory from a VM");
    }

    /** Creates the interrupt controllers and timer the platform needs (x86: PIC, IOAPIC, LAPICs, PIT). */
    void createInterruptControllers();

    /** Creates vCPU {@code index} (0 is the boot processor). */
    Vcpu createVcpu(int index);

    /**
     * Signals {@code notifier} when the guest writes to {@code address} (with {@code datamatch}, only for
     * that value), without a vCPU exit.
     *
     * @return false when this backend cannot (the notifier's {@link Notifier.Handle#kind()} is not one its
     *         hypervisor knows); the write then reaches the core as an ordinary exit
     */
    boolean registerIoEvent(IoEventAddress address, Notifier notifier);

    /** Undoes a successful {@link #registerIoEvent}. */
    void unregisterIoEvent(IoEventAddress address, Notifier notifier);

    /**
     * Raises interrupt line {@code gsi} (edge) each time {@code notifier} is signalled, without going
     * through the VMM's threads.
     *
     * @return false when this backend cannot; the core then raises the line with {@link #setIrqLine}
     */
    boolean registerInterrupt(Notifier notifier, int gsi);

    /** Undoes a successful {@link #registerInterrupt}. */
    void unregisterInterrupt(Notifier notifier, int gsi);

    /** Sets interrupt line {@code gsi} to {@code level}. */
    void setIrqLine(int gsi, boolean level);

    /**
     * The VM-wide state besides memory and vCPUs (x86: PIC, IOAPIC, PIT, the guest clock) as an opaque
     * blob of this backend, versioned by the backend. Called while every vCPU is paused outside
     * {@link Vcpu#run()}.
     *
     * @throws UnsupportedOperationException when the backend cannot ({@link Hypervisor#supportsSnapshots()})
     * @since 1.1
     */
    default byte[] saveState() {
        throw new UnsupportedOperationException("this hypervisor backend cannot save VM state");
    }

    /**
     * Restores what {@link #saveState()} gave (by a backend of the same kind), after
     * {@link #createInterruptControllers()} and before any vCPU runs.
     *
     * @throws IllegalArgumentException when the blob is not one this backend wrote (one line)
     * @since 1.1
     */
    default void restoreState(byte[] state) {
        throw new UnsupportedOperationException("this hypervisor backend cannot restore VM state");
    }

    @Override
    void close();
}
