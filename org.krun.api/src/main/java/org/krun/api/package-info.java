/**
 * The krun API: describe a microVM with {@link org.krun.api.VmConfig}, create it through the
 * {@link org.krun.api.Krun} service, and drive it through its {@link org.krun.api.VirtualMachine} handle.
 *
 * <h2>How this API is versioned</h2>
 * <p>Every exported package of bundle {@code org.krun.api} carries its own semantic version (OSGi
 * semantic versioning): a change that breaks callers or implementers raises the major version, a
 * compatible addition the minor version, and bnd's baselining fails the build when a change and its
 * version disagree.
 * <p>Roles say who may implement a type: {@code @ProviderType} types ({@link org.krun.api.Krun},
 * {@link org.krun.api.VirtualMachine}) are implemented only by krun's core, so methods may be added to
 * them in minor versions; {@code @ConsumerType} types ({@link org.krun.api.DeviceSpec}) may be
 * implemented by anyone, so adding an abstract method to them is a major change.
 * <p>Value types that may grow ({@link org.krun.api.VmConfig}, {@link org.krun.api.DiskSpec},
 * {@link org.krun.api.ConsoleSpec}) are made only through builders and factories, never through public
 * constructors, so new properties are compatible additions. The small records ({@link org.krun.api.GuestMount},
 * {@link org.krun.api.Rlimit}, {@link org.krun.api.VmExit} and the device specs whose components are
 * their whole meaning) keep their components within a major version.
 */
@Export
@Version("1.7.0")
package org.krun.api;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
