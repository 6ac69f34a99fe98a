/**
 * The hypervisor SPI: what a backend bundle (KVM, HVF, WHPX, Nitro) implements. The core drives VMs
 * only through these types; exits come back as {@link org.krun.spi.hypervisor.VcpuExit} records and the
 * core dispatches them to its buses, so backends never see devices. Nothing here is platform-specific:
 * host event primitives cross as {@link org.krun.spi.hypervisor.Notifier}s.
 *
 * <p>Roles: {@code @ConsumerType} types ({@link org.krun.spi.hypervisor.Hypervisor},
 * {@link org.krun.spi.hypervisor.HypervisorVm}, {@link org.krun.spi.hypervisor.Vcpu}) are implemented by
 * backend bundles, so a new abstract method is a major change (new methods come with defaults);
 * {@code @ProviderType} types ({@link org.krun.spi.hypervisor.Notifier}) are implemented by the core only.
 *
 * <p>1.1: snapshots. A backend that can save and restore state says so in
 * {@link org.krun.spi.hypervisor.Hypervisor#supportsSnapshots()}; state crosses as opaque blobs that only a
 * backend of the same kind restores.
 *
 * <p>1.2: memory slots added and removed while the VM runs ({@link org.krun.spi.hypervisor.HypervisorVm#memorySlots()},
 * {@link org.krun.spi.hypervisor.HypervisorVm#unmapMemory}), for devices' shared memory regions.
 */
@Export
@Version("1.2.0")
package org.krun.spi.hypervisor;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
