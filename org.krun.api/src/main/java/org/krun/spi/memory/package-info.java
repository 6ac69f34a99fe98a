/** Guest physical memory as the VMM and devices see it: host segments placed at guest addresses. */
@Export
@Version("1.0.0")
package org.krun.spi.memory;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
