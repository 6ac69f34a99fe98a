package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.PortForward;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.api.VsockSpec;
import org.krun.spi.virtio.VirtioDevice;

class VsockFactoryTest {
    private final VsockFactory factory = new VsockFactory();

    private static VmConfig.Builder config() {
        return VmConfig.builder().kernel(Path.of("/k")).command("/bin/true");
    }

    @Test
    void aVmWithoutANetworkCardGetsInetImpersonationByDefault() {
        assertEquals(Optional.of(VsockSpec.create().withTsi(VsockSpec.Tsi.INET)),
                factory.defaultSpec(config().root(Path.of("/srv/root")).build()));
        assertEquals(Optional.of(VsockSpec.create().withTsi(VsockSpec.Tsi.INET)), factory.defaultSpec(config().build()));
    }

    @Test
    void aVmWhoseRootIsTheHostsOwnTreeGetsUnixImpersonationToo() {
        assertEquals(Optional.of(VsockSpec.create().withTsi(VsockSpec.Tsi.INET_AND_UNIX)),
                factory.defaultSpec(config().root(Path.of("/")).build()));
        assertEquals(Optional.of(VsockSpec.create().withTsi(VsockSpec.Tsi.INET_AND_UNIX)),
                factory.defaultSpec(config().root(Path.of("/usr/..")).build()));
    }

    @Test
    void aVmWithANetworkCardHasNoDefaultVsockDevice() {
        DeviceSpec nic = new GenericDeviceSpec("net", Map.of());
        assertEquals(Optional.empty(), factory.defaultSpec(config().device(nic).build()));
    }

    @Test
    void publishingAHostPortSomeoneHoldsFailsWhenTheVmIsMade() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                DatagramSocket udp = new DatagramSocket(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0))) {
            int port = taken.getLocalPort();
            VmConfigException e = assertThrows(VmConfigException.class, () -> factory.create(VsockSpec.create()
                    .withTsi(VsockSpec.Tsi.INET).withPublished(new PortForward(port, 80, PortForward.Protocol.TCP))));
            assertEquals("cannot publish port " + port + ":80: host port " + port + " (tcp) is in use", e.getMessage());
            int udpPort = udp.getLocalPort();
            VmConfigException u = assertThrows(VmConfigException.class, () -> factory.create(VsockSpec.create()
                    .withTsi(VsockSpec.Tsi.INET).withPublished(new PortForward(udpPort, 53, PortForward.Protocol.UDP))));
            assertTrue(u.getMessage().endsWith("(udp) is in use"), u.getMessage());
        }
    }

    @Test
    void aFreePublishedPortIsLeftFreeForTheGuestsListener() throws Exception {
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        try (VirtioDevice d = factory.create(VsockSpec.create().withTsi(VsockSpec.Tsi.INET)
                .withPublished(new PortForward(port, 80, PortForward.Protocol.TCP)))) {
            try (ServerSocket again = new ServerSocket(port)) {
                assertEquals(port, again.getLocalPort(), "the check holds no socket");
            }
        }
    }
}
