package org.krun.device.balloon.internal;

import java.util.Optional;

import org.krun.api.BalloonSpec;
import org.krun.api.DeviceSpec;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * Creates a virtio-balloon for each VM; every VM gets one with free page reporting unless it turns default
 * devices off, as in libkrun.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + BalloonSpec.TYPE)
public final class BalloonFactory implements VirtioDeviceFactory {

    @Override
    public String type() {
        return BalloonSpec.TYPE;
    }

    @Override
    public VirtioDevice create(DeviceSpec spec) {
        BalloonSpec balloon = VirtioDeviceFactory.expect(spec, BalloonSpec.class);
        return new VirtioBalloon(balloon, PageDiscarder.MADV_DONTNEED);
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(BalloonSpec.withFreePageReporting());
    }
}
