/**
 * An example of embedding krun: {@link org.krun.example.embedding.ParallelVms} runs several VMs at once
 * in one JVM and collects what each printed and how each ended.
 *
 * <p>Its implementation (a DS component in this bundle) shows the whole life of a
 * {@link org.krun.api.VirtualMachine} handle: {@code Krun.create} with a configuration whose console writes
 * into buffers, {@code start}, input through {@code consoleInput} (closing it is end-of-file),
 * {@code exit()} as a future to wait on many VMs at once, {@code kill} for one that overstays, and
 * {@code close} to release it. Nothing here is specific to one device or backend: the API bundle is all
 * an embedder needs at compile time.
 */
@Export
@Version("0.1.0")
package org.krun.example.embedding;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
