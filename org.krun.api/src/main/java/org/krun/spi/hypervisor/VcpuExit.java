package org.krun.spi.hypervisor;

/** Why {@link Vcpu#run()} returned. */
public sealed interface VcpuExit {

    /** The guest reads {@code size} bytes from I/O port {@code port}; answer with {@link Vcpu#completeRead(long)}. */
    record IoIn(int port, int size) implements VcpuExit {
    }

    /** The guest writes {@code value} ({@code size} bytes) to I/O port {@code port}. */
    record IoOut(int port, int size, long value) implements VcpuExit {
    }

    /** The guest reads {@code size} bytes at MMIO {@code address}; answer with {@link Vcpu#completeRead(long)}. */
    record MmioRead(long address, int size) implements VcpuExit {
    }

    /** The guest writes {@code value} ({@code size} bytes) at MMIO {@code address}. */
    record MmioWrite(long address, int size, long value) implements VcpuExit {
    }

    /** The vCPU halted with interrupts the hypervisor does not handle itself. */
    record Halted() implements VcpuExit {
    }

    /** The guest reset the machine (triple fault or an explicit reset). */
    record Shutdown(String cause) implements VcpuExit {
    }

    /** {@link Vcpu#kick()} or a signal interrupted the run. */
    record Interrupted() implements VcpuExit {
    }

    /** The guest cannot continue: emulation failure, entry failure, or an exit the backend does not know. */
    record Failed(String reason) implements VcpuExit {
    }

    VcpuExit HALTED = new Halted();
    VcpuExit INTERRUPTED = new Interrupted();
}
