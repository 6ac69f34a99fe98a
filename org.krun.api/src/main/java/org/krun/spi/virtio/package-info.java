/**
 * The virtio device SPI: a device bundle registers a {@link org.krun.spi.virtio.VirtioDeviceFactory};
 * the core's virtio-mmio transport owns registers, features and the status state machine, and hands an
 * activated device its {@link org.krun.spi.virtio.Virtqueue}s, guest memory and interrupt through a
 * {@link org.krun.spi.virtio.DeviceContext}. The split-virtqueue implementation lives here so every
 * device (and its tests) uses the same one.
 */
@Export
@Version("1.0.0")
package org.krun.spi.virtio;

import org.osgi.annotation.bundle.Export;
import org.osgi.annotation.versioning.Version;
