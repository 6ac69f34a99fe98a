package org.krun.device.rng.internal;

import java.util.Optional;
import java.util.Set;

import org.krun.api.DeviceSpec;
import org.krun.api.EntropySpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-rng for each VM; every VM gets one unless it turns default devices off. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + EntropySpec.TYPE)
public final class RngFactory implements VirtioDeviceFactory {

    @Override
    public String type() {
        return EntropySpec.TYPE;
    }

    @Override
    public VirtioDevice create(DeviceSpec spec) {
        if (spec instanceof GenericDeviceSpec g) {
            VirtioDeviceFactory.options(g, Set.of()); // krun run --device rng
        } else {
            VirtioDeviceFactory.expect(spec, EntropySpec.class);
        }
        return new VirtioRng(GetRandom.INSTANCE);
    }

    @Override
    public Optional<DeviceSpec> defaultSpec() {
        return Optional.of(new EntropySpec());
    }
}
