package org.krun.device.net.internal;

import java.net.InetAddress;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.krun.api.NetSpec;
import org.krun.api.VmConfigException;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * Makes a virtio-net card for each {@link NetSpec} a VM asks for, with its backend opened at once (passt
 * started, the socket connected, the TAP attached), so what cannot work is a one-line error when the VM is
 * made. A card is asked for; no VM gets one by default (without one, the vsock device's socket
 * impersonation is the VM's networking).
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + NetSpec.TYPE)
public final class NetFactory extends AbstractDeviceFactory<NetSpec> {

    /** The guest's name for the host's loopback, as with socket impersonation. */
    static final String HOST_ALIAS = "host.krun.internal";

    public NetFactory() {
        super(NetSpec.TYPE, NetSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(NetSpec spec) {
        byte[] mac = NetSpec.macBytes(spec.mac().orElse(NetSpec.DEFAULT_MAC));
        Backend backend = open(spec);
        try {
            return new VirtioNet("virtio-net " + spec.describe(), backend, mac, mtu(spec), spec.offloads(), guestSetup(spec));
        } catch (RuntimeException e) {
            backend.close();
            throw e;
        }
    }

    static Backend open(NetSpec spec) {
        return switch (spec.backend()) {
            case PASST -> Passt.start(spec);
            case UNIX_STREAM -> spec.fd().isPresent()
                    ? new StreamBackend(spec.fd().getAsInt(), "unixstream fd " + spec.fd().getAsInt(), null, null)
                    : connectStream(spec);
            case UNIX_DGRAM -> DatagramBackend.connect(spec.path().orElseThrow(), spec.vfkit());
            case TAP -> TapBackend.open(spec.tapName().orElseThrow(), spec.offloads());
        };
    }

    private static StreamBackend connectStream(NetSpec spec) {
        String path = spec.path().orElseThrow().toString();
        int fd = PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM, 0);
        if (fd < 0) {
            throw new VmConfigException("unixstream " + path + ": no socket: " + Errno.name(-fd));
        }
        int r = PosixNet.connect(fd, SockAddr.Unix.of(path));
        if (r == -Errno.EINPROGRESS || r == -Errno.EAGAIN) {
            // A unix stream connect completes at once unless the listener's backlog is full.
            Posix.close(fd);
            throw new VmConfigException("unixstream " + path + ": the listener does not accept connections now");
        }
        if (r < 0) {
            Posix.close(fd);
            throw new VmConfigException("unixstream " + path + ": " + (r == -Errno.ENOENT || r == -Errno.ECONNREFUSED
                    ? "nothing listens there (start passt --socket " + path + " or the peer first)"
                    : "cannot connect: " + Errno.name(-r)));
        }
        PosixNet.setIntOption(fd, PosixNet.SOL_SOCKET, PosixNet.SO_SNDBUF, 1 << 20);
        PosixNet.setIntOption(fd, PosixNet.SOL_SOCKET, PosixNet.SO_RCVBUF, 1 << 20);
        return new StreamBackend(fd, "unixstream " + path, null, null);
    }

    /** The MTU a card offers: the spec's, or its backend's usual one (passt's 65520, 1500 on a wire). */
    static int mtu(NetSpec spec) {
        if (spec.mtu().isPresent()) {
            return spec.mtu().getAsInt();
        }
        return switch (spec.backend()) {
            case PASST, UNIX_STREAM -> NetSpec.MAX_MTU;
            case UNIX_DGRAM, TAP -> 1500;
        };
    }

    /**
     * The guest kernel's sysctl (set from its command line) for cards with TSO: a TCP socket builds
     * segmentation-offload frames of at least 44 segments (63,712 bytes at a 1500 MTU, under the 64 KiB a
     * virtio-net frame may carry) instead of Linux's 2. Linux sizes them by the socket's pacing rate, which is
     * low when the guest itself is slow: on kvm-pvm hosts, where the guest kernel is interpreted, its frames
     * averaged 2,849 bytes (2 segments), 379 a MiB; with this 26-33 KB (its window limits the rest), 32-40 a
     * MiB, and a MiB sent cost the guest 1.2-1.8 s of CPU instead of 5.9 s. Each frame costs the guest its
     * whole stack path and the VMM a descriptor chain; the card's peer is the host's own stack, which
     * segments (if it must) at memory speed. The user's own kernel arguments come later on the command line
     * and win.
     */
    static final String MIN_TSO_SEGS_ARG = "sysctl.net.ipv4.tcp_min_tso_segs=44";

    /**
     * What the guest's init needs for the card: {@code krun.net=MAC,dhcp}, {@code krun.net=MAC,A.B.C.D/N[,GW]}
     * or {@code krun.net=MAC} (up, no address) on the kernel command line; the name servers as
     * {@code /etc/resolv.conf} where krun knows them (passt's, or the card's own); with passt, the host's
     * loopback as {@value #HOST_ALIAS} in {@code /etc/hosts}; with TSO (a TAP card with offloads),
     * {@link #MIN_TSO_SEGS_ARG}.
     */
    static GuestSetup guestSetup(NetSpec spec) {
        String mac = spec.mac().orElse(NetSpec.DEFAULT_MAC);
        String addressing;
        NetSpec.Ipv4 ip = spec.ipv4().orElse(null);
        if (ip != null) {
            addressing = "," + ip.address().getHostAddress() + "/" + ip.prefixLength()
                    + ip.gateway().map(g -> "," + g.getHostAddress()).orElse("");
        } else {
            addressing = spec.dhcp() ? ",dhcp" : "";
        }
        List<InetAddress> dns = spec.backend() == NetSpec.Backend.PASST ? Passt.nameServers(spec) : spec.dns();
        Map<String, String> files = new LinkedHashMap<>();
        if (!dns.isEmpty()) {
            StringBuilder resolv = new StringBuilder("# krun: the name servers of network card " + mac + "\n");
            dns.forEach(d -> resolv.append("nameserver ").append(d.getHostAddress()).append('\n'));
            files.put("/etc/resolv.conf", resolv.toString());
        }
        Map<String, String> appends = new LinkedHashMap<>();
        if (spec.backend() == NetSpec.Backend.PASST) {
            Passt.address(spec).gateway().ifPresent(g -> appends.put("/etc/hosts", g.getHostAddress() + " " + HOST_ALIAS + "\n"));
        }
        List<String> args = new ArrayList<>(List.of("krun.net=" + mac + addressing));
        if (spec.backend() == NetSpec.Backend.TAP && spec.offloads()) {
            args.add(MIN_TSO_SEGS_ARG);
        }
        return new GuestSetup(args, files, appends);
    }
}
