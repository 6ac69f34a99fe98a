package org.krun.device.rng.internal;

import java.util.Optional;
import java.util.Set;

import org.krun.api.DeviceSpec;
import org.krun.api.EntropySpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-rng for each VM; every VM gets one unless it turns default devices off. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + EntropySpec.TYPE)
public final class RngFactory extends AbstractDeviceFactory<EntropySpec> {

    public RngFactory() {
        super(EntropySpec.TYPE, EntropySpec.class);
    }

    @Override
    protected VirtioDevice newDevice(EntropySpec spec) {
        return new VirtioRng(GetRandom.INSTANCE);
    }

    /** {@code krun run --device rng}: no options. */
    @Override
    protected EntropySpec fromOptions(GenericDeviceSpec options) {
        VirtioDeviceFactory.options(options, Set.of());
        return new EntropySpec();
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(new EntropySpec());
    }
}
