package org.krun.api;

import java.util.Locale;

/**
 * A guest port published on the host ({@code -p HOST:GUEST[/udp]}): connections to (datagrams for) the
 * host's {@code hostPort} reach the guest's {@code guestPort}. Which device carries it depends on the
 * VM's networking (transparent socket impersonation without a NIC, the NIC's backend otherwise).
 */
public record PortForward(int hostPort, int guestPort, Protocol protocol) {

    /** The transport protocol of a forward. */
    public enum Protocol {
        TCP, UDP
    }

    public PortForward {
        if (hostPort < 1 || hostPort > 0xffff || guestPort < 1 || guestPort > 0xffff) {
            throw new VmConfigException("ports must be 1 to 65535: " + hostPort + ":" + guestPort);
        }
        if (protocol == null) {
            throw new VmConfigException("a port forward needs a protocol");
        }
    }

    /** Parses {@code HOST:GUEST}, {@code HOST:GUEST/tcp} or {@code HOST:GUEST/udp}; one port alone is both. */
    public static PortForward parse(String text) {
        String spec = text;
        Protocol protocol = Protocol.TCP;
        int slash = spec.indexOf('/');
        if (slash >= 0) {
            protocol = switch (spec.substring(slash + 1).toLowerCase(Locale.ROOT)) {
                case "tcp" -> Protocol.TCP;
                case "udp" -> Protocol.UDP;
                default -> throw new VmConfigException("port '" + text + "': the protocol is tcp or udp");
            };
            spec = spec.substring(0, slash);
        }
        String[] ports = spec.split(":", -1);
        if (ports.length > 2) {
            throw new VmConfigException("port '" + text + "' is not HOST:GUEST[/udp]");
        }
        try {
            int host = Integer.parseInt(ports[0]);
            int guest = ports.length == 2 ? Integer.parseInt(ports[1]) : host;
            return new PortForward(host, guest, protocol);
        } catch (NumberFormatException e) {
            throw new VmConfigException("port '" + text + "' is not HOST:GUEST[/udp]");
        }
    }

    @Override
    public String toString() {
        return hostPort + ":" + guestPort + (protocol == Protocol.UDP ? "/udp" : "");
    }
}
