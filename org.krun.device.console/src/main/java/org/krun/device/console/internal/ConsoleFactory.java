package org.krun.device.console.internal;

import org.krun.api.ConsoleSpec;
import org.krun.api.DeviceSpec;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-console for each VM. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + ConsoleSpec.TYPE)
public final class ConsoleFactory implements VirtioDeviceFactory {

    @Override
    public String type() {
        return ConsoleSpec.TYPE;
    }

    @Override
    public VirtioDevice create(DeviceSpec spec) {
        ConsoleSpec console = VirtioDeviceFactory.expect(spec, ConsoleSpec.class);
        return new VirtioConsole(console);
    }
}
