/** A copy of the shape of org.krun.spi.hypervisor's Notifier, to change incompatibly. */
@Export
@Version("1.0.0")
package org.krun.baseline.probe;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
