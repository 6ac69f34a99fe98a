/**
 * Linux system calls through Panama FFM, for every krun bundle that runs on Linux (the core, the KVM
 * backend, devices, the command line). {@link org.krun.posix.Libc} is the only place C functions are
 * linked and errno is captured; {@link org.krun.posix.Posix} and {@link org.krun.posix.PosixIo} hold the
 * calls several bundles share, and a bundle links what only it needs through {@code Libc}. Calls return
 * their result or {@code -errno}; {@link org.krun.posix.PosixException} names the operation and errno.
 *
 * <p>Not part of the krun API: the hypervisor and device SPIs in {@code org.krun.api} stay free of
 * platform types, so backends and devices for other systems do not need this bundle.
 */
@Export
@Version("1.2.0")
package org.krun.posix;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
