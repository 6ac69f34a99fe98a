package org.krun.device.balloon.internal;

import java.util.Optional;
import java.util.Set;

import org.krun.api.BalloonSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * Creates a virtio-balloon for each VM; every VM gets one with free page reporting unless it turns default
 * devices off, as in libkrun.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + BalloonSpec.TYPE)
public final class BalloonFactory implements VirtioDeviceFactory {
    /** The option of {@code --device balloon}: whether the guest reports free pages (default on). */
    static final String FREE_PAGE_REPORTING = "free-page-reporting";

    @Override
    public String type() {
        return BalloonSpec.TYPE;
    }

    @Override
    public VirtioDevice create(DeviceSpec spec) {
        BalloonSpec balloon;
        if (spec instanceof GenericDeviceSpec g) { // krun run --device balloon[,free-page-reporting=on|off]
            VirtioDeviceFactory.options(g, Set.of(FREE_PAGE_REPORTING));
            balloon = new BalloonSpec(VirtioDeviceFactory.flag(g, FREE_PAGE_REPORTING, true));
        } else {
            balloon = VirtioDeviceFactory.expect(spec, BalloonSpec.class);
        }
        return new VirtioBalloon(balloon, PageDiscarder.MADV_DONTNEED);
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(BalloonSpec.withFreePageReporting());
    }
}
