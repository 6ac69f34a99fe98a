package org.krun.device.vsock.internal;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

import org.krun.api.DeviceSpec;
import org.krun.api.PortForward;
import org.krun.api.VmConfig;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * Creates a virtio-vsock device for each VM that asks for one; listen maps are bound here, at once, and
 * published ports are checked free. Every VM without a network card gets one by default, with transparent
 * socket impersonation as its networking, as libkrun gives every VM its implicit vsock device.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + VsockSpec.TYPE)
public final class VsockFactory extends AbstractDeviceFactory<VsockSpec> {

    public VsockFactory() {
        super(VsockSpec.TYPE, VsockSpec.class);
    }

    /** The network card device type (virtio-net): a VM that has one networks through it instead. */
    static final String NET_TYPE = "net";

    /**
     * Socket impersonation for a VM without a network card: IPv4 and IPv6, and unix sockets too where the
     * guest's root is the host's own (there a guest path names the same socket as on the host).
     */
    @Override
    public Optional<DeviceSpec> defaultSpec(VmConfig config) {
        if (config.devices().stream().anyMatch(d -> d.type().equals(NET_TYPE))) {
            return Optional.empty();
        }
        boolean hostRoot = config.root().map(r -> r.toAbsolutePath().normalize().equals(Path.of("/"))).orElse(false);
        return Optional.of(VsockSpec.create().withTsi(hostRoot ? VsockSpec.Tsi.INET_AND_UNIX : VsockSpec.Tsi.INET));
    }

    @Override
    protected VirtioDevice newDevice(VsockSpec spec) {
        for (PortForward p : spec.published()) {
            PublishedPorts.checkFree(p);
        }
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
