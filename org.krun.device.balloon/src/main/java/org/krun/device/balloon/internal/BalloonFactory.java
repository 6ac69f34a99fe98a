package org.krun.device.balloon.internal;

import java.util.Optional;
import java.util.Set;

import org.krun.api.BalloonSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * Creates a virtio-balloon for each VM; every VM gets one with free page reporting unless it turns default
 * devices off, as in libkrun.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + BalloonSpec.TYPE)
public final class BalloonFactory extends AbstractDeviceFactory<BalloonSpec> {
    /** The option of {@code --device balloon}: whether the guest reports free pages (default on). */
    static final String FREE_PAGE_REPORTING = "free-page-reporting";

    public BalloonFactory() {
        super(BalloonSpec.TYPE, BalloonSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(BalloonSpec spec) {
        return new VirtioBalloon(spec, PageDiscarder.MADV_DONTNEED);
    }

    /** {@code krun run --device balloon[,free-page-reporting=on|off]}. */
    @Override
    protected BalloonSpec fromOptions(GenericDeviceSpec options) {
        VirtioDeviceFactory.options(options, Set.of(FREE_PAGE_REPORTING));
        return new BalloonSpec(VirtioDeviceFactory.flag(options, FREE_PAGE_REPORTING, true));
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(BalloonSpec.withFreePageReporting());
    }
}
