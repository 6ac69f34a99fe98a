package org.krun.spi.hypervisor;

import java.lang.foreign.MemorySegment;

import org.krun.spi.posix.EventFd;
import org.osgi.annotation.versioning.ProviderType;

/**
 * One VM as the hypervisor sees it. The core creates exactly one per {@code VirtualMachine} and closes
 * it when the VM stops; closing releases every host resource the backend acquired for it.
 */
@ProviderType
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
     * Signals {@code fd} when the guest writes to {@code address} (with {@code datamatch}, only for
     * that value), without a vCPU exit.
     */
    void registerIoEvent(IoEventAddress address, EventFd fd);

    void unregisterIoEvent(IoEventAddress address, EventFd fd);

    /** Raises interrupt line {@code gsi} (edge) each time {@code fd} is signalled. */
    void registerIrqFd(EventFd fd, int gsi);

    void unregisterIrqFd(EventFd fd, int gsi);

    /** Sets interrupt line {@code gsi} to {@code level}. */
    void setIrqLine(int gsi, boolean level);

    @Override
    void close();
}
