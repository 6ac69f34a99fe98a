/**
 * The krun API: describe a microVM with {@link org.krun.api.VmConfig}, create it through the
 * {@link org.krun.api.Krun} service, and drive it through its {@link org.krun.api.VirtualMachine} handle.
 */
@Export
@Version("1.0.0")
package org.krun.api;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
