package org.krun.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;

import org.junit.jupiter.api.Test;

class NetSpecTest {

    @Test
    void parsesEachBackend() {
        assertEquals(NetSpec.passt(), NetSpec.parse("passt"));
        assertEquals(NetSpec.Backend.UNIX_STREAM, NetSpec.parse("unixstream=/run/passt.sock").backend());
        assertEquals(Optional.of(Path.of("/run/passt.sock")), NetSpec.parse("unixstream=/run/passt.sock").path());
        NetSpec gram = NetSpec.parse("unixgram=/tmp/gv.sock,vfkit");
        assertEquals(NetSpec.Backend.UNIX_DGRAM, gram.backend());
        assertTrue(gram.vfkit());
        assertFalse(NetSpec.parse("unixgram=/tmp/gv.sock").vfkit());
        NetSpec tap = NetSpec.parse("tap=krun0");
        assertEquals(Optional.of("krun0"), tap.tapName());
        assertFalse(tap.dhcp(), "a TAP has no DHCP server unless the user runs one");
        assertTrue(NetSpec.passt().dhcp());
    }

    @Test
    void relativeSocketPathsBecomeAbsolute() {
        assertTrue(NetSpec.parse("unixstream=rel.sock").path().orElseThrow().isAbsolute());
    }

    @Test
    void optionsSetAddressingMacMtuAndOffloads() {
        NetSpec s = NetSpec.parse("tap=t0,mac=02:00:00:AA:bb:01,ip=10.9.0.2/24,gw=10.9.0.1,dns=10.9.0.1,dns=::1,mtu=9000,offload=off");
        assertEquals(Optional.of("02:00:00:aa:bb:01"), s.mac());
        assertEquals("10.9.0.2/24 via 10.9.0.1", s.ipv4().orElseThrow().toString());
        assertFalse(s.dhcp());
        assertEquals(List.of(InetAddress.ofLiteral("10.9.0.1"), InetAddress.ofLiteral("::1")), s.dns());
        assertEquals(OptionalInt.of(9000), s.mtu());
        assertFalse(s.offloads());
        assertTrue(NetSpec.parse("tap=t0,dhcp").dhcp());
        assertTrue(NetSpec.parse("passt,ip=10.0.2.20/24").ipv4().isPresent());
        assertFalse(NetSpec.parse("passt,ip=10.0.2.20/24").dhcp(), "a static address replaces DHCP");
    }

    @Test
    void publishedPortsGoOnlyToPasst() {
        NetSpec p = NetSpec.passt().withPublished(PortForward.parse("8080:80")).withPublished(PortForward.parse("53/udp"));
        assertEquals(2, p.published().size());
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> NetSpec.tap("t0").withPublished(PortForward.parse("8080:80")));
        assertTrue(e.getMessage().contains("passt"), e.getMessage());
        assertThrows(VmConfigException.class, () -> p.withPublished(PortForward.parse("8080:81")));
    }

    @Test
    void defaultMacsCountUpFromLibkrunsAddress() {
        assertEquals(NetSpec.DEFAULT_MAC, NetSpec.defaultMac(0));
        assertEquals("5a:94:ef:e4:0c:ef", NetSpec.defaultMac(1));
    }

    @Test
    void badInputIsAOneLineError() {
        for (String bad : List.of("bridge", "passt=x", "unixstream", "unixstream=", "tap=", "tap=waytoolongname0123",
                "tap=a/b", "passt,mac=01:00:00:00:00:01", "passt,mac=00:00:00:00:00:00", "passt,mac=zz:00:00:00:00:01",
                "passt,mac=5a:94", "passt,ip=10.0.0.1", "passt,ip=10.0.0.1/33", "passt,ip=::1/64", "passt,gw=10.0.0.1",
                "passt,dns=example.org", "passt,mtu=20", "passt,mtu=70000", "passt,mtu=x", "passt,offload=maybe",
                "passt,vfkit", "tap=t0,colour=blue", "tap=t0,mac")) {
            VmConfigException e = assertThrows(VmConfigException.class, () -> NetSpec.parse(bad), bad);
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
            assertTrue(e.getMessage().startsWith("network '" + bad + "'"), e.getMessage());
        }
    }

    @Test
    void anEmbeddersDescriptorIsAUnixStream() {
        NetSpec s = NetSpec.unixStream(7);
        assertEquals(OptionalInt.of(7), s.fd());
        assertEquals(Optional.empty(), s.path());
        assertThrows(VmConfigException.class, () -> NetSpec.unixStream(-1));
    }
}
