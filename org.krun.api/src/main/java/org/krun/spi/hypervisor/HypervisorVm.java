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
     * Makes {@code host} guest RAM at {@code guestAddress}. The segment stays owned by the caller and
     * must outlive this VM.
     */
    void mapMemory(int slot, long guestAddress, MemorySegment host);

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

    @Override
    void close();
}
