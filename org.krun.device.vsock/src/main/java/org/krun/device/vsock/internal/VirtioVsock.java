package org.krun.device.vsock.internal;

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.VirtioIds;

/**
 * virtio-vsock (virtio 1.2 §5.10): the guest's AF_VSOCK stream sockets, with the host (CID 2) played by
 * the device. Three queues: rx (packets for the guest), tx (packets from it), event (kept, never used). What
 * stands behind a host port: the unix socket of a port map, or (transparent socket impersonation) the
 * device's TSI service. Everything runs on the VM's event loop; host sockets are non-blocking.
 */
final class VirtioVsock extends AbstractVirtioDevice<VsockSession> implements SnapshottableDevice {

    static final int RX = 0;
    static final int TX = 1;
    static final int EVENT = 2;
    static final int QUEUE_SIZE = 256;
    /** struct virtio_vsock_config: le64 guest_cid. */
    static final int CONFIG_SIZE = 8;
    /** The guest's name for the host's loopback (TSI.md). */
    static final String HOST_ALIAS = "host.krun.internal";
    static final int STATE_VERSION = 1;
    static final int STATE_BYTES = 12;

    private final VsockSpec spec;
    /** Port maps the guest connects to, by vsock port. */
    private final Map<Long, VsockPort> connectMaps;
    private final List<PortMapListener> listeners;
    private final List<EventLoop.Watch> listenerWatches = new ArrayList<>();

    VirtioVsock(VsockSpec spec, List<PortMapListener> listeners) {
        super("virtio-vsock", VirtioIds.VSOCK, 0, 3, QUEUE_SIZE, CONFIG_SIZE);
        this.spec = spec;
        this.connectMaps = spec.ports().stream().filter(p -> !p.listen())
                .collect(Collectors.toUnmodifiableMap(VsockPort::port, p -> p));
        this.listeners = List.copyOf(listeners);
        config().putLong(0, spec.guestCid()); // read-only (virtio 1.2 §5.10.4)
    }

    VsockSpec spec() {
        return spec;
    }

    /**
     * With transparent socket impersonation: the switch on the guest kernel's command line (TSI.md), the
     * host's resolvers as the guest's resolv.conf, and the host alias in its /etc/hosts.
     */
    @Override
    public GuestSetup guestSetup() {
        if (spec.tsi() == VsockSpec.Tsi.OFF) {
            return GuestSetup.NONE;
        }
        String tsi = spec.tsi() == VsockSpec.Tsi.INET_AND_UNIX ? "inet,unix" : "inet";
        Map<String, String> files = new LinkedHashMap<>();
        String resolv = HostResolvers.resolvConf(HostResolvers.HOST_RESOLV_CONF);
        if (resolv != null) {
            files.put("/etc/resolv.conf", resolv);
        }
        return new GuestSetup(List.of("krun_tsi=" + tsi), files,
                Map.of("/etc/hosts", "192.0.2.1 " + HOST_ALIAS + "\n2001:db8::1 " + HOST_ALIAS + "\n"));
    }

    @Override
    protected VsockSession onActivate(Active<VsockSession> a) {
        VsockSession s = new VsockSession(this, a, spec.guestCid());
        if (spec.tsi() != VsockSpec.Tsi.OFF) {
            s.tsi = new Tsi(spec, s);
        }
        for (PortMapListener l : listeners) {
            listenerWatches.add(a.loop().watch(l.fd(), Posix.EPOLLIN, events -> accepted(a, l)));
        }
        return s;
    }

    /** A host connection waits on a listen map's socket: hand it to the guest's port. */
    private void accepted(Active<VsockSession> a, PortMapListener l) {
        if (!a.isCurrent()) {
            return;
        }
        VsockSession s = a.state();
        int fd;
        while ((fd = l.accept()) >= 0) {
            if (!s.connectGuest(l.map().port(), fd, null)) {
                Posix.close(fd); // too many connections: the host client sees its connection closed
            }
        }
        s.flush();
    }

    @Override
    protected void onQueueNotify(Active<VsockSession> a, int queue) {
        switch (queue) {
            case TX -> a.state().drainTx();
            case RX -> a.state().pumpRx();
            default -> {
                // event queue: buffers wait for a transport reset event the device never sends
            }
        }
    }

    /**
     * What stands behind host port {@code c.hostPort} for a guest's REQUEST: true when {@code c} got its host
     * side (connected, or connecting), false to refuse (RST).
     */
    boolean accept(Connection c) {
        VsockSession session = active().state();
        if (c.hostPort == Tsi.PORT && session.tsi != null) {
            c.protocol = session.tsi.handshake();
            c.established();
            return true;
        }
        VsockPort map = connectMaps.get(c.hostPort);
        if (map == null) {
            return false;
        }
        int fd = PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM, 0);
        if (fd < 0) {
            hostError("vsock port " + map.port() + ": no socket: " + Errno.name(-fd));
            return false;
        }
        int r = PosixNet.connect(fd, SockAddr.Unix.of(map.path().toString()));
        if (r == 0) {
            c.attach(fd, 0);
            c.established();
            return true;
        }
        if (VsockSession.inProgress(r)) {
            c.attach(fd, Posix.EPOLLOUT);
            return true;
        }
        Posix.close(fd);
        return false; // nobody listens there: the guest's connect fails with ECONNRESET
    }

    /** Whether host port {@code port} serves something of the device's own (a guest must not be offered it). */
    boolean isServicePort(long port) {
        return connectMaps.containsKey(port) || (port >= VsockPort.RESERVED_FIRST && port <= VsockPort.RESERVED_LAST);
    }

    void reportGuestError(String message) {
        guestError(message);
    }

    int connectionCount() {
        Active<VsockSession> a = active();
        return a == null ? 0 : a.state().connectionCount();
    }

    @Override
    protected void onDeactivate(Active<VsockSession> a) {
        listenerWatches.forEach(EventLoop.Watch::close);
        listenerWatches.clear();
        a.state().closeAll();
    }

    @Override
    protected void onClose() {
        listeners.forEach(PortMapListener::close);
    }

    // ---- snapshots

    /**
     * Snapshots: only of a device with nothing open. The rx buffers the guest posted stay in the rx ring
     * until the device has a packet (the transport's indices carry them), the event queue's buffers are
     * never used, and chains taken from tx are answered at once; so an idle device's own state is just the
     * next host port it hands out. A guest with connections (port maps, TSI sockets, TSI listeners of
     * published ports) or packets waiting for rx buffers is refused with one line: host sockets cannot go
     * into a snapshot. The host's own listeners (listen maps, published ports) belong to the configuration
     * and are bound again by the restoring VM; a guest that listens on a vsock port keeps its listener, in
     * its own memory, and host clients reach it through the new VM's listen maps.
     */
    @Override
    public byte[] saveState() {
        Active<VsockSession> a = active();
        long nextEphemeral = VsockSession.FIRST_EPHEMERAL_PORT;
        if (a != null) {
            String refusal = a.state().snapshotRefusal();
            if (refusal != null) {
                throw new IllegalStateException(name() + ": " + refusal);
            }
            nextEphemeral = a.state().nextEphemeral();
        }
        return ByteBuffer.allocate(STATE_BYTES).putInt(STATE_VERSION).putLong(nextEphemeral).array();
    }

    @Override
    public void restoreState(byte[] state) {
        ByteBuffer b = SnapshottableDevice.openState(name(), state, STATE_BYTES, STATE_VERSION);
        long nextEphemeral = b.getLong();
        if (nextEphemeral < VsockSession.FIRST_EPHEMERAL_PORT || nextEphemeral > VsockSession.LAST_EPHEMERAL_PORT) {
            throw new IllegalArgumentException(name() + ": saved next host port " + nextEphemeral + " is out of range");
        }
        Active<VsockSession> a = active();
        if (a != null) {
            a.state().nextEphemeral(nextEphemeral);
        }
    }
}
