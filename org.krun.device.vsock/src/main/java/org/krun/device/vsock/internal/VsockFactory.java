package org.krun.device.vsock.internal;

import java.util.ArrayList;
import java.util.List;

import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-vsock device for each VM that asks for one; listen maps are bound here, at once. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + VsockSpec.TYPE)
public final class VsockFactory extends AbstractDeviceFactory<VsockSpec> {

    public VsockFactory() {
        super(VsockSpec.TYPE, VsockSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(VsockSpec spec) {
        List<PortMapListener> listeners = new ArrayList<>();
        try {
            for (VsockPort p : spec.ports()) {
                if (p.listen()) {
                    listeners.add(PortMapListener.bind(p));
                }
            }
        } catch (RuntimeException e) {
            listeners.forEach(PortMapListener::close);
            throw e;
        }
        return new VirtioVsock(spec, listeners);
    }
}
