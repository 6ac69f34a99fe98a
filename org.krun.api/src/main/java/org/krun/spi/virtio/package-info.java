/**
 * The virtio device SPI: a device bundle registers a {@link org.krun.spi.virtio.VirtioDeviceFactory};
 * the core's virtio-mmio transport owns registers, features and the status state machine, and hands an
 * activated device its {@link org.krun.spi.virtio.Virtqueue}s, guest memory and interrupt through a
 * {@link org.krun.spi.virtio.DeviceContext}. Devices extend {@link org.krun.spi.virtio.AbstractVirtioDevice},
 * which keeps the activation state, configuration space, guest-error logging and requests in flight. The
 * split-virtqueue implementation lives here so every device (and its tests) uses the same one.
 *
 * <p>Roles: {@code @ConsumerType} types ({@link org.krun.spi.virtio.VirtioDevice},
 * {@link org.krun.spi.virtio.VirtioDeviceFactory}, {@link org.krun.spi.virtio.HostConsole},
 * {@link org.krun.spi.virtio.AbstractVirtioDevice}) are implemented or extended by device bundles;
 * {@code @ProviderType} types ({@link org.krun.spi.virtio.DeviceContext},
 * {@link org.krun.spi.virtio.EventLoop}, {@link org.krun.spi.virtio.InterruptTrigger}) by the core only.
 *
 * <p>1.2: snapshots. A device whose state can be saved implements
 * {@link org.krun.spi.virtio.SnapshottableDevice}; a VM with any device that does not is refused a snapshot.
 * The transport saves the queues' addresses and {@link org.krun.spi.virtio.Virtqueue.Indices}. A device
 * serving requests off the loop drains them in its {@code saveState} with
 * {@link org.krun.spi.virtio.AbstractVirtioDevice.Active#awaitIdle}.
 *
 * <p>1.3: {@link org.krun.spi.virtio.WorkerPool}, worker threads that exist only while a device has work.
 *
 * <p>1.5: {@link org.krun.spi.virtio.HostDisplays}, implemented by a device with scanouts so the core can
 * offer them through {@code VirtualMachine.displays()}; {@link org.krun.spi.virtio.HostConsole#carriesSignals}
 * and {@link org.krun.spi.virtio.HostConsole#signal}, the console's port for signals to the command.
 *
 * <p>1.6: shared memory regions (virtio 1.2 §2.10). A device asks for them in
 * {@link org.krun.spi.virtio.VirtioDevice#sharedMemoryRegions()}; the transport places them above guest RAM
 * and maps host memory into them while the VM runs through
 * {@link org.krun.spi.virtio.DeviceContext#sharedMemory(int)}.
 */
@Export
@Version("1.6.0")
package org.krun.spi.virtio;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
