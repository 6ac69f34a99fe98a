package org.krun.device.net.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.krun.api.NetSpec;
import org.krun.api.PortForward;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.GuestSetup;

/** What a card asks of passt and of the guest's init, and the one-line errors of backends that cannot work. */
class NetFactoryTest {

    @Test
    void passtGetsKrunsFixedNetworkAndThePublishedPorts() {
        NetSpec spec = NetSpec.passt().withPublished(new PortForward(8080, 80, PortForward.Protocol.TCP))
                .withPublished(new PortForward(5353, 53, PortForward.Protocol.UDP));
        List<String> a = Passt.arguments(spec);
        assertEquals(List.of("--foreground", "--quiet", "--fd", "3", "--address", "10.0.2.15", "--netmask", "24",
                "--gateway", "10.0.2.2", "--dns-forward", "10.0.2.3", "--no-dhcp-dns", "--tcp-ports", "8080:80",
                "--udp-ports", "5353:53"), a);
        assertTrue(!a.contains("--dns"), "--dns would make passt forward 10.0.2.3 to itself, not to the host's resolver: " + a);
    }

    @Test
    void aCardsOwnNameServersAreHandedOutAndNotForwarded() {
        List<String> a = Passt.arguments(NetSpec.passt().withDns(List.of(java.net.InetAddress.ofLiteral("10.0.2.2"),
                java.net.InetAddress.ofLiteral("192.0.2.53"))));
        assertEquals(List.of("--foreground", "--quiet", "--fd", "3", "--address", "10.0.2.15", "--netmask", "24",
                "--gateway", "10.0.2.2", "--dns", "10.0.2.2", "--dns", "192.0.2.53"), a);
    }

    @Test
    void theInitIsToldHowToConfigureEachCard() {
        GuestSetup dhcp = NetFactory.guestSetup(NetSpec.passt());
        assertEquals(List.of("krun.net=" + NetSpec.DEFAULT_MAC + ",dhcp"), dhcp.kernelArgs());
        assertEquals(Map.of("/etc/resolv.conf", "# krun: the name servers of network card " + NetSpec.DEFAULT_MAC
                + "\nnameserver 10.0.2.3\n"), dhcp.files());
        assertEquals(Map.of("/etc/hosts", "10.0.2.2 host.krun.internal\n"), dhcp.appends());

        NetSpec fixed = NetSpec.parse("unixgram=/tmp/g.sock,mac=02:00:00:00:00:01,ip=10.9.0.2/24,gw=10.9.0.1");
        assertEquals(List.of("krun.net=02:00:00:00:00:01,10.9.0.2/24,10.9.0.1"), NetFactory.guestSetup(fixed).kernelArgs());
        assertEquals(Map.of(), NetFactory.guestSetup(fixed).files());
        assertEquals(List.of("krun.net=" + NetSpec.DEFAULT_MAC, "sysctl.net.ipv4.tcp_min_tso_segs=44"),
                NetFactory.guestSetup(NetSpec.tap("tap0")).kernelArgs(),
                "a TAP card comes up without an address unless given one; with TSO, the guest's TCP builds 64 KiB frames");
        assertEquals(List.of("krun.net=" + NetSpec.DEFAULT_MAC), NetFactory.guestSetup(NetSpec.tap("tap0").withOffloads(false)).kernelArgs(),
                "without offloads, no TSO frames to size");
    }

    @Test
    void theMtuIsTheBackendsUsualOneUnlessGiven() {
        assertEquals(NetSpec.MAX_MTU, NetFactory.mtu(NetSpec.passt()));
        assertEquals(1500, NetFactory.mtu(NetSpec.tap("tap0")));
        assertEquals(9000, NetFactory.mtu(NetSpec.passt().withMtu(9000)));
    }

    @Test
    void aPeerThatIsNotThereIsAOneLineError(@org.junit.jupiter.api.io.TempDir Path dir) {
        for (NetSpec spec : List.of(NetSpec.unixStream(dir.resolve("none.sock")), NetSpec.unixDgram(dir.resolve("none.sock"), true))) {
            VmConfigException e = assertThrows(VmConfigException.class, () -> new NetFactory().create(spec));
            assertTrue(e.getMessage().contains("nothing listens there") && !e.getMessage().contains("\n"), e.getMessage());
        }
    }
}
