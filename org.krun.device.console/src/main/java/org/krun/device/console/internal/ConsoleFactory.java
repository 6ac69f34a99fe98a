package org.krun.device.console.internal;

import org.krun.api.ConsoleSpec;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-console for each VM. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + ConsoleSpec.TYPE)
public final class ConsoleFactory extends AbstractDeviceFactory<ConsoleSpec> {

    public ConsoleFactory() {
        super(ConsoleSpec.TYPE, ConsoleSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(ConsoleSpec spec) {
        return new VirtioConsole(spec);
    }
}
