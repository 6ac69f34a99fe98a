package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class HostResolversTest {

    @ParameterizedTest(name = "{0} -> {1}")
    @CsvSource(nullValues = "none", value = {
        "127.0.0.53, 192.0.2.53",
        "127.0.0.1, 192.0.2.1",
        "127.1.2.3, none",
        "::1, 2001:db8::1",
        "10.0.0.2, 10.0.0.2",
        "2001:4860:4860::8888, 2001:4860:4860::8888",
        "fe80::1%eth0, none",
        "dns.example, none",
    })
    void hostLoopbackResolversAreNamedByTheirHostAlias(String host, String guest) {
        assertEquals(guest, HostResolvers.forGuest(host));
    }

    @Test
    void theGuestGetsAtMostThreeOfTheHostsNameserversAndNothingElse(@TempDir Path dir) throws Exception {
        Path conf = dir.resolve("resolv.conf");
        Files.writeString(conf, """
                # managed by someone
                search corp.example
                nameserver 127.0.0.53
                options edns0 trust-ad
                nameserver 10.1.1.1
                nameserver fe80::1%eth0
                nameserver 10.2.2.2
                nameserver 10.3.3.3
                """);
        assertEquals("# krun: the host's resolvers, reached through the VMM\n"
                + "nameserver 192.0.2.53\nnameserver 10.1.1.1\nnameserver 10.2.2.2\n", HostResolvers.resolvConf(conf));
    }

    @Test
    void aHostWithoutResolversGivesTheGuestNoResolvConf(@TempDir Path dir) throws Exception {
        Path conf = dir.resolve("resolv.conf");
        Files.writeString(conf, "search example\n");
        assertNull(HostResolvers.resolvConf(conf));
        assertNull(HostResolvers.resolvConf(dir.resolve("missing")));
    }
}
