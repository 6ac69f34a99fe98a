/**
 * Thin, errno-checked access to the POSIX calls that the core, hypervisor backends and devices share
 * (file descriptors, eventfd, memory mappings, ioctl), through Panama FFM.
 */
@Export
@Version("0.1.0")
package org.krun.spi.posix;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
