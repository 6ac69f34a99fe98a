package org.krun.api;

import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * A virtio-vsock device: the guest's AF_VSOCK sockets (CID {@link #guestCid()}, the host is CID 2), its
 * {@link #ports() port maps} to host unix sockets, and transparent socket impersonation ({@link #tsi()}):
 * the guest's TCP and UDP sockets made on the host by krun, the guest's networking when it has no NIC,
 * with {@link #published()} guest ports reachable from the host.
 *
 * <p>Made by {@link #create()} and refined with the {@code with...} methods, so options can be added
 * without breaking callers. Immutable.
 */
public final class VsockSpec implements DeviceSpec {

    /** The device type of virtio-vsock. */
    public static final String TYPE = "vsock";
    /** The guest's context id unless told otherwise (0-2 are reserved: hypervisor, local, host). */
    public static final long DEFAULT_GUEST_CID = 3;

    /** Which of the guest's sockets krun impersonates. */
    public enum Tsi {
        /** None: the guest has only what a NIC gives it. */
        OFF,
        /** AF_INET and AF_INET6 stream and datagram sockets. */
        INET,
        /** Those, and AF_UNIX stream sockets to paths of the host (when the guest's root is the host's /). */
        INET_AND_UNIX
    }

    private final long guestCid;
    private final List<VsockPort> ports;
    private final Tsi tsi;
    private final List<PortForward> published;
    private final boolean publishAll;

    private VsockSpec(long guestCid, List<VsockPort> ports, Tsi tsi, List<PortForward> published) {
        this(guestCid, ports, tsi, published, false);
    }

    private VsockSpec(long guestCid, List<VsockPort> ports, Tsi tsi, List<PortForward> published, boolean publishAll) {
        if (guestCid < 3 || guestCid > 0xffff_fffeL) {
            throw new VmConfigException("guest CID " + guestCid + " is out of range (3 to 4294967294)");
        }
        this.guestCid = guestCid;
        this.ports = List.copyOf(ports);
        this.tsi = Objects.requireNonNull(tsi, "tsi");
        this.published = List.copyOf(published);
        this.publishAll = publishAll;
        List<Long> seen = new ArrayList<>();
        for (VsockPort p : this.ports) {
            if (seen.contains(p.port())) {
                throw new VmConfigException("vsock port " + p.port() + " is mapped twice");
            }
            seen.add(p.port());
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

    /** CID 3, no port maps, no impersonation. */
    public static VsockSpec create() {
        return new VsockSpec(DEFAULT_GUEST_CID, List.of(), Tsi.OFF, List.of());
    }

    public long guestCid() {
        return guestCid;
    }

    public List<VsockPort> ports() {
        return ports;
    }

    public Tsi tsi() {
        return tsi;
    }

    public List<PortForward> published() {
        return published;
    }

    /**
     * Whether every guest port an impersonated socket listens on (TCP) or binds (UDP) is published on the same
     * host port, besides {@link #published()}: for a VMM in a network namespace of its own (a container's), where
     * the guest's ports are the namespace's. A host port in use fails the guest's {@code listen} or {@code bind}.
     *
     * @since 1.4
     */
    public boolean publishAll() {
        return publishAll;
    }

    /**
     * This device publishing every guest listening port on the same host port, or not.
     *
     * @since 1.4
     */
    public VsockSpec withPublishAll(boolean all) {
        return new VsockSpec(guestCid, ports, tsi, published, all);
    }

    public VsockSpec withGuestCid(long cid) {
        return new VsockSpec(cid, ports, tsi, published, publishAll);
    }

    /** This device with one more port map. */
    public VsockSpec withPort(VsockPort port) {
        List<VsockPort> p = new ArrayList<>(ports);
        p.add(port);
        return new VsockSpec(guestCid, p, tsi, published, publishAll);
    }

    public VsockSpec withTsi(Tsi tsi) {
        return new VsockSpec(guestCid, ports, tsi, published, publishAll);
    }

    /** This device with one more published port (used by impersonated listeners). */
    public VsockSpec withPublished(PortForward forward) {
        List<PortForward> p = new ArrayList<>(published);
        p.add(forward);
        return new VsockSpec(guestCid, ports, tsi, p, publishAll);
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof VsockSpec v && v.guestCid == guestCid && v.ports.equals(ports) && v.tsi == tsi
                && v.published.equals(published) && v.publishAll == publishAll;
    }

    @Override
    public int hashCode() {
        return Objects.hash(guestCid, ports, tsi, published, publishAll);
    }

    @Override
    public String toString() {
        return "VsockSpec[cid=" + guestCid + ", ports=" + ports + ", tsi=" + tsi + ", published=" + published
                + (publishAll ? ", publishAll" : "") + "]";
    }
}
