package org.krun.spi.hypervisor;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * One virtual CPU. {@link #run()} is called only from the vCPU's own thread; {@link #kick()} from any.
 */
@ConsumerType
public interface Vcpu extends AutoCloseable {

    int index();

    /** Puts the boot processor in 64-bit long mode at the kernel entry point. */
    void setBootState(X86BootState state);

    /**
     * Runs the guest until it exits to the VMM. For {@link VcpuExit.IoIn} and {@link VcpuExit.MmioRead}
     * the caller must call {@link #completeRead(long)} before the next {@code run()}.
     */
    VcpuExit run();

    /** Supplies the value of the pending read exit. */
    void completeRead(long value);

    /**
     * Makes a running (or the next) {@link #run()} return {@link VcpuExit.Interrupted} promptly. Safe from
     * any thread.
     */
    void kick();

    /**
     * This vCPU's whole architectural state (registers, FPU, MSRs, local APIC, pending events, run state)
     * as an opaque blob of this backend. Called (from any thread) only while the vCPU's thread waits outside
     * {@link #run()} after {@link VcpuExit.Interrupted} (never in the middle of a string I/O exit); the backend first
     * completes an I/O or MMIO exit whose read the core answered, so the state is consistent.
     *
     * @throws UnsupportedOperationException when the backend cannot ({@link Hypervisor#supportsSnapshots()})
     * @since 1.1
     */
    default byte[] saveState() {
        throw new UnsupportedOperationException("this hypervisor backend cannot save vCPU state");
    }

    /**
     * Restores what {@link #saveState()} gave, on a vCPU created the same way (same index, same VM shape),
     * before its first {@link #run()}.
     *
     * @throws IllegalArgumentException when the blob is not one this backend wrote (one line)
     * @since 1.1
     */
    default void restoreState(byte[] state) {
        throw new UnsupportedOperationException("this hypervisor backend cannot restore vCPU state");
    }

    /** Called on the vCPU's thread before its first {@link #run()}. */
    void attachThread();

    @Override
    void close();
}
