package org.krun.spi.hypervisor;

/**
 * What a hypervisor backend found on this host.
 *
 * @param description a one-line description for logs and benches
 *        ({@code KVM API 12, hardware virtualisation (vmx)})
 * @param hardwareVirtualization whether guest code runs natively at every privilege level; false on
 *        hosts that emulate guest kernel code (kvm-pvm), where guest-speed figures mean little
 * @param maxVcpus the most vCPUs one VM may have
 */
public record HostCapabilities(String description, boolean hardwareVirtualization, int maxVcpus) {
}
