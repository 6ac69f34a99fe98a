package org.krun.device.console.internal;

import org.krun.api.ConsoleSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.VmConfigException;
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
        if (!(spec instanceof ConsoleSpec console)) {
            throw new VmConfigException("the console device takes a ConsoleSpec, not " + spec.getClass().getSimpleName());
        }
        return new VirtioConsole(console);
    }
}
