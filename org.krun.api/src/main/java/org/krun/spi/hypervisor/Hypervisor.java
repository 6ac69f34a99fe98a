package org.krun.spi.hypervisor;

import java.util.List;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * A hypervisor backend, registered as a service only where its platform is present.
 * Service property {@code krun.hypervisor} carries {@link #name()}.
 */
@ConsumerType
public interface Hypervisor {

    /** The service property naming the backend. */
    String NAME_PROPERTY = "krun.hypervisor";

    /** A short name ({@code kvm}). */
    String name();

    /** What this host offers, for logs, benches and the guest command line. */
    HostCapabilities capabilities();

    /**
     * Creates an empty VM: no memory, no vCPUs yet.
     *
     * @throws org.krun.api.KrunException when the host refuses (permissions, limits)
     */
    HypervisorVm createVm(int vcpuCount);

    /**
     * What the host needs in the guest kernel's command line to run guests at all (for example
     * switching off CPU features the host cannot virtualise). Empty on ordinary hosts.
     */
    default List<String> guestKernelArgs() {
        return List.of();
    }

    /**
     * Whether this backend can save and restore VM and vCPU state ({@link HypervisorVm#saveState()},
     * {@link Vcpu#saveState()}). False by default: the core then refuses snapshots with one line.
     *
     * @since 1.1
     */
    default boolean supportsSnapshots() {
        return false;
    }

    /**
     * What a restored guest would notice of this host's CPU: a short stable string (for KVM a digest of
     * the CPUID the host supports). A snapshot taken on a host with another signature is refused, since
     * the guest kernel chose its code paths from the CPU features it saw at boot.
     *
     * @since 1.1
     */
    default String hostCpuSignature() {
        return "";
    }
}
