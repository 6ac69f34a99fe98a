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

    /** Called on the vCPU's thread before its first {@link #run()}. */
    void attachThread();

    @Override
    void close();
}
