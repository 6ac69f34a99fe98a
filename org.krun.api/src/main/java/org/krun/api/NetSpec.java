package org.krun.api;

import java.net.Inet4Address;
import java.net.InetAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Locale;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * A network card (virtio-net) and what stands behind it: a {@link Backend} that carries the guest's Ethernet
 * frames, the card's MAC address, and how the guest configures its interface (DHCP, or a static IPv4
 * address). A VM with a card networks through it instead of transparent socket impersonation, as libkrun's
 * VMs do; several cards become eth0, eth1, ... in the order given.
 *
 * <p>Made by {@link #passt()}, {@link #unixStream(Path)}, {@link #unixDgram(Path, boolean)}, {@link #tap(String)}
 * or {@link #parse(String)}, refined with the {@code with...} methods. Immutable.
 */
public final class NetSpec implements DeviceSpec {

    /** The device type of virtio-net. */
    public static final String TYPE = "net";
    /** libkrun's MAC address, the first card's unless told otherwise. */
    public static final String DEFAULT_MAC = "5a:94:ef:e4:0c:ee";
    /** The largest MTU a card takes (passt's: the largest 802.3 frame less its header, in 32-bit words). */
    public static final int MAX_MTU = 65520;
    /** The smallest MTU IPv4 allows. */
    public static final int MIN_MTU = 68;

    /** What carries the guest's frames on the host. */
    public enum Backend {
        /** Debian's {@code passt}, started by krun on a socket pair: user-mode networking, no privileges. */
        PASST,
        /** A unix stream socket, each frame behind its length (4 bytes, big-endian), as QEMU's stream netdev and passt speak. */
        UNIX_STREAM,
        /** A unix datagram socket, one frame per datagram, as gvproxy, vmnet-helper and vfkit speak. */
        UNIX_DGRAM,
        /** A TAP device of the host with virtio-net headers (needs CAP_NET_ADMIN). */
        TAP
    }

    /**
     * A static IPv4 address of the guest's interface.
     *
     * @param address the guest's address
     * @param prefixLength its network's prefix length (1 to 32)
     * @param gateway the default route's gateway, if any
     */
    public record Ipv4(Inet4Address address, int prefixLength, Optional<Inet4Address> gateway) {
        public Ipv4 {
            Objects.requireNonNull(address, "address");
            Objects.requireNonNull(gateway, "gateway");
            if (prefixLength < 1 || prefixLength > 32) {
                throw new VmConfigException("IPv4 prefix length " + prefixLength + " is out of range (1 to 32)");
            }
        }

        /** Parses {@code A.B.C.D/N} (and a gateway {@code A.B.C.D}, or null for none). */
        public static Ipv4 parse(String address, String gateway) {
            int slash = address.indexOf('/');
            if (slash <= 0) {
                throw new VmConfigException("IPv4 address '" + address + "' is not A.B.C.D/PREFIX");
            }
            int prefix;
            try {
                prefix = Integer.parseInt(address.substring(slash + 1));
            } catch (NumberFormatException e) {
                throw new VmConfigException("IPv4 address '" + address + "' is not A.B.C.D/PREFIX");
            }
            return new Ipv4(inet4(address.substring(0, slash)), prefix,
                    gateway == null ? Optional.empty() : Optional.of(inet4(gateway)));
        }

        @Override
        public String toString() {
            return address.getHostAddress() + "/" + prefixLength + gateway.map(g -> " via " + g.getHostAddress()).orElse("");
        }
    }

    private final Backend backend;
    private final Path path;
    private final int fd;
    private final String tapName;
    private final boolean vfkit;
    private final String mac;
    private final Ipv4 ipv4;
    private final boolean dhcp;
    private final List<InetAddress> dns;
    private final List<PortForward> published;
    private final boolean offloads;
    private final int mtu;

    private NetSpec(Backend backend, Path path, int fd, String tapName, boolean vfkit, String mac, Ipv4 ipv4,
            boolean dhcp, List<InetAddress> dns, List<PortForward> published, boolean offloads, int mtu) {
        this.backend = Objects.requireNonNull(backend, "backend");
        this.path = path == null ? null : path.toAbsolutePath();
        this.fd = fd;
        this.tapName = tapName;
        this.vfkit = vfkit;
        this.mac = mac == null ? null : normalMac(mac);
        this.ipv4 = ipv4;
        this.dhcp = dhcp && ipv4 == null;
        this.dns = List.copyOf(dns);
        this.published = List.copyOf(published);
        this.offloads = offloads;
        this.mtu = mtu;
        switch (backend) {
            case UNIX_STREAM -> {
                if ((path == null) == (fd < 0)) {
                    throw new VmConfigException("a unix stream network backend needs a socket path or a descriptor");
                }
            }
            case UNIX_DGRAM -> Objects.requireNonNull(path, "path");
            case TAP -> checkTapName(tapName);
            case PASST -> {
            }
        }
        if (mtu != 0 && (mtu < MIN_MTU || mtu > MAX_MTU)) {
            throw new VmConfigException("MTU " + mtu + " is out of range (" + MIN_MTU + " to " + MAX_MTU + ")");
        }
        if (!this.published.isEmpty() && backend != Backend.PASST) {
            throw new VmConfigException("publishing ports (-p) needs the passt backend; with "
                    + name(backend) + " the peer does the forwarding");
        }
        List<String> hostPorts = new ArrayList<>();
        for (PortForward f : this.published) {
            String key = f.hostPort() + "/" + f.protocol();
            if (hostPorts.contains(key)) {
                throw new VmConfigException("host port " + f.hostPort() + " (" + f.protocol() + ") is published twice");
            }
            hostPorts.add(key);
        }
    }

    /** passt, started by krun; the guest gets its address by DHCP. */
    public static NetSpec passt() {
        return new NetSpec(Backend.PASST, null, -1, null, false, null, null, true, List.of(), List.of(), true, 0);
    }

    /** A unix stream socket krun connects to (a passt started with {@code --socket PATH}, say); DHCP. */
    public static NetSpec unixStream(Path path) {
        return new NetSpec(Backend.UNIX_STREAM, Objects.requireNonNull(path, "path"), -1, null, false, null, null,
                true, List.of(), List.of(), true, 0);
    }

    /**
     * A connected unix stream socket an embedder made (one end of a socket pair it gave passt, say). krun
     * owns the descriptor from the VM's creation and closes it with the VM.
     */
    public static NetSpec unixStream(int fd) {
        if (fd < 0) {
            throw new VmConfigException("descriptor " + fd + " is not a descriptor");
        }
        return new NetSpec(Backend.UNIX_STREAM, null, fd, null, false, null, null, true, List.of(), List.of(), true, 0);
    }

    /**
     * A unix datagram socket krun sends frames to (gvproxy's or vmnet-helper's); krun binds a socket of its
     * own for the answers. With {@code vfkit} krun first sends vfkit's handshake datagram ({@code VFKT}), as
     * gvproxy's {@code --listen-vfkit} expects. DHCP.
     */
    public static NetSpec unixDgram(Path path, boolean vfkit) {
        return new NetSpec(Backend.UNIX_DGRAM, Objects.requireNonNull(path, "path"), -1, null, vfkit, null, null,
                true, List.of(), List.of(), true, 0);
    }

    /**
     * The host's TAP device {@code name}, made if it does not exist (either needs CAP_NET_ADMIN). The guest's
     * interface has no address unless given one ({@link #withIpv4}, {@link #withDhcp}).
     */
    public static NetSpec tap(String name) {
        return new NetSpec(Backend.TAP, null, -1, name, false, null, null, false, List.of(), List.of(), true, 0);
    }

    /**
     * Parses a card as the command line gives it: {@code passt}, {@code unixstream=PATH},
     * {@code unixgram=PATH[,vfkit]} or {@code tap=NAME}, followed by options, comma-separated:
     * {@code mac=XX:XX:XX:XX:XX:XX}, {@code ip=A.B.C.D/N} (a static address), {@code gw=A.B.C.D},
     * {@code dhcp}, {@code dns=ADDRESS} (repeatable), {@code mtu=N}, {@code offload=on|off}.
     */
    public static NetSpec parse(String text) {
        String[] parts = text.split(",", -1);
        String head = parts[0];
        int eq = head.indexOf('=');
        String kind = (eq < 0 ? head : head.substring(0, eq)).toLowerCase(Locale.ROOT);
        String value = eq < 0 ? null : head.substring(eq + 1);
        NetSpec spec;
        try {
            spec = switch (kind) {
                case "passt" -> {
                    noValue(text, kind, value);
                    yield passt();
                }
                case "unixstream" -> unixStream(Path.of(required(text, kind, value)));
                case "unixgram" -> unixDgram(Path.of(required(text, kind, value)), false);
                case "tap" -> tap(required(text, kind, value));
                default -> throw new VmConfigException("network '" + text
                        + "': the backends are passt, unixstream=PATH, unixgram=PATH[,vfkit] and tap=NAME");
            };
        } catch (java.nio.file.InvalidPathException e) {
            throw new VmConfigException("network '" + text + "': '" + value + "' is not a path");
        } catch (VmConfigException e) {
            throw e.getMessage().startsWith("network '") ? e : new VmConfigException("network '" + text + "': " + e.getMessage());
        }
        String ip = null;
        String gw = null;
        List<InetAddress> dns = new ArrayList<>();
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            int e = p.indexOf('=');
            String key = (e < 0 ? p : p.substring(0, e)).toLowerCase(Locale.ROOT);
            String v = e < 0 ? null : p.substring(e + 1);
            try {
                switch (key) {
                    case "vfkit" -> {
                        if (spec.backend != Backend.UNIX_DGRAM || v != null) {
                            throw new VmConfigException("vfkit goes only with unixgram=PATH");
                        }
                        spec = spec.withVfkit(true);
                    }
                    case "mac" -> spec = spec.withMac(required(text, key, v));
                    case "ip" -> ip = required(text, key, v);
                    case "gw" -> gw = required(text, key, v);
                    case "dhcp" -> {
                        noValue(text, key, v);
                        spec = spec.withDhcp();
                    }
                    case "dns" -> dns.add(inet(required(text, key, v)));
                    case "mtu" -> spec = spec.withMtu(Integer.parseInt(required(text, key, v)));
                    case "offload" -> spec = spec.withOffloads(switch (required(text, key, v).toLowerCase(Locale.ROOT)) {
                        case "on" -> true;
                        case "off" -> false;
                        default -> throw new VmConfigException("offload is on or off, not '" + v + "'");
                    });
                    default -> throw new VmConfigException("unknown option '" + p
                            + "' (options: mac=, ip=, gw=, dhcp, dns=, mtu=, offload=, vfkit)");
                }
            } catch (NumberFormatException ex) {
                throw new VmConfigException("network '" + text + "': '" + v + "' is not a number");
            } catch (VmConfigException ex) {
                throw ex.getMessage().startsWith("network '") ? ex
                        : new VmConfigException("network '" + text + "': " + ex.getMessage());
            }
        }
        try {
            if (ip != null) {
                spec = spec.withIpv4(Ipv4.parse(ip, gw));
            } else if (gw != null) {
                throw new VmConfigException("gw= needs ip=");
            }
            if (!dns.isEmpty()) {
                spec = spec.withDns(dns);
            }
        } catch (VmConfigException ex) {
            throw new VmConfigException("network '" + text + "': " + ex.getMessage());
        }
        return spec;
    }

    private static String required(String text, String key, String value) {
        if (value == null || value.isEmpty()) {
            throw new VmConfigException("network '" + text + "': " + key + " needs a value (" + key + "=...)");
        }
        return value;
    }

    private static void noValue(String text, String key, String value) {
        if (value != null) {
            throw new VmConfigException("network '" + text + "': " + key + " takes no value");
        }
    }

    // ---- what the card is

    public Backend backend() {
        return backend;
    }

    /** The socket path of a unix backend (absolute), when it has one. */
    public Optional<Path> path() {
        return Optional.ofNullable(path);
    }

    /** The descriptor of a unix stream backend an embedder gave. */
    public OptionalInt fd() {
        return fd < 0 ? OptionalInt.empty() : OptionalInt.of(fd);
    }

    /** The TAP device's name. */
    public Optional<String> tapName() {
        return Optional.ofNullable(tapName);
    }

    /** Whether krun sends vfkit's handshake first (unix datagram backend). */
    public boolean vfkit() {
        return vfkit;
    }

    /** The MAC address ({@code xx:xx:xx:xx:xx:xx}), when given; the device's default otherwise. */
    public Optional<String> mac() {
        return Optional.ofNullable(mac);
    }

    /** A static IPv4 address for the guest's interface; without one the guest asks by {@link #dhcp() DHCP} or goes without. */
    public Optional<Ipv4> ipv4() {
        return Optional.ofNullable(ipv4);
    }

    /** Whether the guest's init asks for its address by DHCP. */
    public boolean dhcp() {
        return dhcp;
    }

    /** The name servers the guest uses; empty for the backend's own (passt's: the host's, forwarded; DHCP's). */
    public List<InetAddress> dns() {
        return dns;
    }

    /** Host ports that reach the guest (passt only). */
    public List<PortForward> published() {
        return published;
    }

    /** Whether checksum and segmentation offloads are offered where the backend honours them (TAP). */
    public boolean offloads() {
        return offloads;
    }

    /** The MTU the card offers the guest; empty for the backend's default. */
    public OptionalInt mtu() {
        return mtu == 0 ? OptionalInt.empty() : OptionalInt.of(mtu);
    }

    // ---- refinements

    public NetSpec withMac(String mac) {
        return new NetSpec(backend, path, fd, tapName, vfkit, Objects.requireNonNull(mac, "mac"), ipv4, dhcp, dns,
                published, offloads, mtu);
    }

    /** This card with a static address (no DHCP). */
    public NetSpec withIpv4(Ipv4 ipv4) {
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, Objects.requireNonNull(ipv4, "ipv4"), false, dns,
                published, offloads, mtu);
    }

    /** This card with its address asked for by DHCP (no static address). */
    public NetSpec withDhcp() {
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, null, true, dns, published, offloads, mtu);
    }

    public NetSpec withDns(List<InetAddress> servers) {
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, ipv4, dhcp, servers, published, offloads, mtu);
    }

    /** This card with one more published port (passt's {@code -t}/{@code -u}). */
    public NetSpec withPublished(PortForward forward) {
        List<PortForward> p = new ArrayList<>(published);
        p.add(Objects.requireNonNull(forward, "forward"));
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, ipv4, dhcp, dns, p, offloads, mtu);
    }

    public NetSpec withOffloads(boolean on) {
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, ipv4, dhcp, dns, published, on, mtu);
    }

    public NetSpec withMtu(int mtu) {
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, ipv4, dhcp, dns, published, offloads, mtu);
    }

    public NetSpec withVfkit(boolean vfkit) {
        if (vfkit && backend != Backend.UNIX_DGRAM) {
            throw new VmConfigException("the vfkit handshake goes only with a unix datagram backend");
        }
        return new NetSpec(backend, path, fd, tapName, vfkit, mac, ipv4, dhcp, dns, published, offloads, mtu);
    }

    @Override
    public String type() {
        return TYPE;
    }

    /** How the command line names the backend ({@code passt}, {@code unixstream=PATH}, ...). */
    public String describe() {
        return switch (backend) {
            case PASST -> "passt";
            case UNIX_STREAM -> path != null ? "unixstream=" + path : "unixstream fd " + fd;
            case UNIX_DGRAM -> "unixgram=" + path + (vfkit ? ",vfkit" : "");
            case TAP -> "tap=" + tapName;
        };
    }

    // ---- values

    /** {@code mac} as six bytes, or a one-line error: six hex octets, unicast, not all zero. */
    public static byte[] macBytes(String mac) {
        String[] octets = mac.split(":", -1);
        if (octets.length != 6) {
            throw new VmConfigException("MAC address '" + mac + "' is not six hex octets (xx:xx:xx:xx:xx:xx)");
        }
        byte[] b = new byte[6];
        boolean zero = true;
        for (int i = 0; i < 6; i++) {
            if (octets[i].length() != 2) {
                throw new VmConfigException("MAC address '" + mac + "' is not six hex octets (xx:xx:xx:xx:xx:xx)");
            }
            try {
                b[i] = (byte) Integer.parseInt(octets[i], 16);
            } catch (NumberFormatException e) {
                throw new VmConfigException("MAC address '" + mac + "' is not six hex octets (xx:xx:xx:xx:xx:xx)");
            }
            zero &= b[i] == 0;
        }
        if ((b[0] & 1) != 0 || zero) {
            throw new VmConfigException("MAC address '" + mac + "' is not a unicast address");
        }
        return b;
    }

    private static String normalMac(String mac) {
        return HexFormat.ofDelimiter(":").formatHex(macBytes(mac));
    }

    /** {@link #DEFAULT_MAC} with its last octet counted up {@code index} times: the default of the card at {@code index}. */
    public static String defaultMac(int index) {
        byte[] b = macBytes(DEFAULT_MAC);
        b[5] = (byte) (b[5] + index);
        return HexFormat.ofDelimiter(":").formatHex(b);
    }

    private static InetAddress inet(String literal) {
        try {
            return InetAddress.ofLiteral(literal);
        } catch (IllegalArgumentException e) {
            throw new VmConfigException("'" + literal + "' is not an IP address");
        }
    }

    private static Inet4Address inet4(String literal) {
        if (inet(literal) instanceof Inet4Address a) {
            return a;
        }
        throw new VmConfigException("'" + literal + "' is not an IPv4 address");
    }

    private static void checkTapName(String name) {
        if (name == null || name.isEmpty() || name.length() > 15 || name.equals(".") || name.equals("..")
                || !name.chars().allMatch(c -> c > 32 && c < 127 && c != '/' && c != ':')) {
            throw new VmConfigException("TAP device name '" + name + "' is not an interface name (1 to 15 characters, no '/', ':' or spaces)");
        }
    }

    private static String name(Backend b) {
        return switch (b) {
            case PASST -> "passt";
            case UNIX_STREAM -> "unixstream";
            case UNIX_DGRAM -> "unixgram";
            case TAP -> "tap";
        };
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof NetSpec n && n.backend == backend && Objects.equals(n.path, path) && n.fd == fd
                && Objects.equals(n.tapName, tapName) && n.vfkit == vfkit && Objects.equals(n.mac, mac)
                && Objects.equals(n.ipv4, ipv4) && n.dhcp == dhcp && n.dns.equals(dns) && n.published.equals(published)
                && n.offloads == offloads && n.mtu == mtu;
    }

    @Override
    public int hashCode() {
        return Objects.hash(backend, path, fd, tapName, vfkit, mac, ipv4, dhcp, dns, published, offloads, mtu);
    }

    @Override
    public String toString() {
        return "NetSpec[" + describe() + (mac != null ? ", mac=" + mac : "") + (ipv4 != null ? ", ip=" + ipv4 : "")
                + (dhcp ? ", dhcp" : "") + (dns.isEmpty() ? "" : ", dns=" + dns) + (published.isEmpty() ? "" : ", published=" + published)
                + (offloads ? "" : ", offload=off") + (mtu != 0 ? ", mtu=" + mtu : "") + "]";
    }
}
