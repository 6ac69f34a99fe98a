package org.krun.device.vsock.internal;

import java.io.IOException;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The host's DNS resolvers as the guest reaches them through transparent socket impersonation: the
 * {@code nameserver} lines of the host's resolv.conf, with resolvers on the host's loopback (a local
 * caching resolver such as systemd-resolved's 127.0.0.53) named by their host-alias address (192.0.2.53).
 */
final class HostResolvers {
    static final Path HOST_RESOLV_CONF = Path.of("/etc/resolv.conf");
    /** resolv.conf reads at most three nameservers (MAXNS). */
    static final int MAX = 3;

    private HostResolvers() {
    }

    /** The guest's resolv.conf, or null when the host names no resolver. */
    static String resolvConf(Path hostResolvConf) {
        List<String> servers = new ArrayList<>();
        List<String> lines;
        try {
            lines = Files.readAllLines(hostResolvConf);
        } catch (IOException e) {
            return null;
        }
        for (String line : lines) {
            String[] words = line.trim().split("\\s+");
            if (words.length >= 2 && words[0].equals("nameserver") && servers.size() < MAX) {
                String guest = forGuest(words[1]);
                if (guest != null) {
                    servers.add(guest);
                }
            }
        }
        if (servers.isEmpty()) {
            return null;
        }
        StringBuilder sb = new StringBuilder("# krun: the host's resolvers, reached through the VMM\n");
        for (String s : servers) {
            sb.append("nameserver ").append(s).append('\n');
        }
        return sb.toString();
    }

    /** A resolver address as the guest names it; null for one that is not an IP address. */
    static String forGuest(String address) {
        if (!address.matches("[0-9a-fA-F:.]+")) {
            return null; // not a literal address (a scope id, a name): never resolved here
        }
        try {
            byte[] a = InetAddress.getByName(address).getAddress();
            if (a.length == 4 && a[0] == 127) {
                // only 127.0.0.0/24 has a host alias (TSI.md); a resolver elsewhere on 127/8 is unreachable
                return a[1] == 0 && a[2] == 0 ? "192.0.2." + (a[3] & 0xff) : null;
            }
            if (a.length == 16 && InetAddress.getByAddress(a).isLoopbackAddress()) {
                return "2001:db8::1";
            }
            return address;
        } catch (UnknownHostException e) {
            return null;
        }
    }
}
