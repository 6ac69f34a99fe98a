/**
 * The hypervisor SPI: what a backend bundle (KVM, HVF, WHPX, Nitro) implements. The core drives VMs
 * only through these types; exits come back as {@link org.krun.spi.hypervisor.VcpuExit} records and the
 * core dispatches them to its buses, so backends never see devices.
 */
@Export
@Version("1.0.0")
package org.krun.spi.hypervisor;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
