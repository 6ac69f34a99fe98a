package org.krun.device.vsock.internal;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.krun.api.PortForward;
import org.krun.api.VsockSpec;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;

/**
 * Transparent socket impersonation, the device's side (TSI.md): each vsock connection the guest kernel
 * opens to {@link #PORT} starts with a request; the device makes the host socket it asks for and then
 * relays (CONNECT, ACCEPT), frames datagrams (DGRAM) or announces incoming connections (LISTEN). One per
 * activation; loop-confined like the session it serves.
 */
final class Tsi {

    /** The vsock port the guest kernel's TSI connects to (TSI.md). */
    static final long PORT = 0x40000;
    /** Unclaimed incoming connections per listener, and in all. */
    static final int MAX_PENDING_PER_LISTENER = 128;
    static final int MAX_PENDING = 512;
    /** Datagram bytes waiting for the guest before the device stops reading the host socket. */
    static final int MAX_DATAGRAM_BACKLOG = 256 * 1024;

    /** The guest's name for the host's loopback: 192.0.2.0/24 is the host's 127.0.0.0/24 (TSI.md). */
    static final byte[] HOST_ALIAS_V4_NET = {(byte) 192, 0, 2};
    static final byte[] HOST_ALIAS_V6 = {0x20, 0x01, 0x0d, (byte) 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static final byte[] LOOPBACK_V6 = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};

    private final VsockSpec spec;
    private final VsockSession session;
    private final Map<Long, Pending> pending = new HashMap<>();
    private long nextId = 1;

    /** Host connections accepted for the guest's listeners and not yet claimed (for snapshots). */
    int pendingCount() {
        return pending.size();
    }

    /** A host connection to a published port, accepted, waiting for the guest's ACCEPT. */
    private record Pending(int fd, Listener listener) {
    }

    Tsi(VsockSpec spec, VsockSession session) {
        this.spec = spec;
        this.session = session;
    }

    /** The handshake of a new TSI connection: reads the request, then becomes what it asks for. */
    Connection.Protocol handshake() {
        return new Handshake();
    }

    // ---- addresses between the guest's view and the host's

    /** The host address a guest destination means (the host alias becomes the host's loopback). */
    SockAddr toHost(SockAddr a) {
        return switch (a) {
            case SockAddr.Inet4 i when startsWith(i.address(), HOST_ALIAS_V4_NET) ->
                    new SockAddr.Inet4(new byte[] {127, 0, 0, i.address()[3]}, i.port());
            case SockAddr.Inet6 i when java.util.Arrays.equals(i.address(), HOST_ALIAS_V6) ->
                    new SockAddr.Inet6(LOOPBACK_V6, i.port(), 0);
            case SockAddr.Inet6 i when isMapped(i.address(), HOST_ALIAS_V4_NET) ->
                    new SockAddr.Inet6(mapped(new byte[] {127, 0, 0, i.address()[15]}), i.port(), 0);
            default -> a;
        };
    }

    /**
     * The guest's view of a host address: the host's loopback is the host alias, and a v4-mapped address
     * (what a dual-stack host socket reports for an IPv4 peer) is AF_INET, which the guest maps back for an
     * AF_INET6 socket (TSI.md).
     */
    SockAddr toGuest(SockAddr a) {
        return switch (unmapped(a)) {
            case SockAddr.Inet4 i when i.address()[0] == 127 ->
                    new SockAddr.Inet4(new byte[] {(byte) 192, 0, 2, i.address()[3]}, i.port());
            case SockAddr.Inet6 i when java.util.Arrays.equals(i.address(), LOOPBACK_V6) ->
                    new SockAddr.Inet6(HOST_ALIAS_V6, i.port(), 0);
            case null, default -> unmapped(a);
        };
    }

    /** A v4-mapped IPv6 address as the AF_INET address it stands for; any other address as it is. */
    static SockAddr unmapped(SockAddr a) {
        if (a instanceof SockAddr.Inet6 i && isMapped(i.address(), new byte[0])) {
            return new SockAddr.Inet4(java.util.Arrays.copyOfRange(i.address(), 12, 16), i.port());
        }
        return a;
    }

    /** {@code a} in the form a socket of {@code family} takes: AF_INET as v4-mapped for an AF_INET6 socket. */
    static SockAddr forFamily(int family, SockAddr a) {
        if (family == SockAddr.AF_INET6 && a instanceof SockAddr.Inet4 i) {
            return new SockAddr.Inet6(mapped(i.address()), i.port(), 0);
        }
        return a;
    }

    private static boolean startsWith(byte[] a, byte[] prefix) {
        for (int i = 0; i < prefix.length; i++) {
            if (a[i] != prefix[i]) {
                return false;
            }
        }
        return true;
    }

    private static boolean isMapped(byte[] a, byte[] v4Prefix) {
        for (int i = 0; i < 10; i++) {
            if (a[i] != 0) {
                return false;
            }
        }
        if (a[10] != (byte) 0xff || a[11] != (byte) 0xff) {
            return false;
        }
        for (int i = 0; i < v4Prefix.length; i++) {
            if (a[12 + i] != v4Prefix[i]) {
                return false;
            }
        }
        return true;
    }

    private static byte[] mapped(byte[] v4) {
        byte[] a = new byte[16];
        a[10] = (byte) 0xff;
        a[11] = (byte) 0xff;
        System.arraycopy(v4, 0, a, 12, 4);
        return a;
    }

    /** The host port a guest port is published on: an explicit forward, else the same port when all are published. */
    private Optional<PortForward> published(int guestPort, PortForward.Protocol protocol) {
        Optional<PortForward> explicit = spec.published().stream()
                .filter(f -> f.guestPort() == guestPort && f.protocol() == protocol).findFirst();
        if (explicit.isPresent() || !spec.publishAll() || guestPort < 1 || guestPort > 0xffff) {
            return explicit;
        }
        return Optional.of(new PortForward(guestPort, guestPort, protocol));
    }

    private static SockAddr any(int family, int port) {
        return family == SockAddr.AF_INET6 ? new SockAddr.Inet6(new byte[16], port, 0) : new SockAddr.Inet4(new byte[4], port);
    }

    /** Answers the guest and ends the connection after the answer (a refused request). */
    private static void refuse(Connection c, int errno) {
        c.sendToGuest(TsiMessages.response(errno, null));
        c.endAfterPending = true;
    }

    // ---- the handshake

    private final class Handshake implements Connection.Protocol {
        private final ByteBuffer in = ByteBuffer.allocate(TsiMessages.REQUEST_HEADER + TsiMessages.MAX_ADDR);
        /** Guest bytes that came after a CONNECT or ACCEPT request, before the answer (kept within credit). */
        private ByteBuffer early;
        private TsiMessages.Request request;

        @Override
        public boolean fromGuest(Connection c, List<MemorySegment> data) {
            for (MemorySegment piece : data) {
                ByteBuffer bytes = piece.asByteBuffer();
                if (request == null) {
                    int n = Math.min(in.remaining(), bytes.remaining());
                    in.put(bytes.slice(bytes.position(), n));
                    bytes.position(bytes.position() + n);
                    if (!parse(c)) {
                        return false;
                    }
                }
                if (bytes.hasRemaining()) {
                    if (request == null || (request.op() != TsiMessages.OP_CONNECT && request.op() != TsiMessages.OP_ACCEPT)) {
                        session.guestError("TSI: data before a request could be read, or after a " + request);
                        return false;
                    }
                    if (c.protocol != this) {
                        // the answer came already (an immediate connect): the rest is relayed as usual
                        c.sendEarlyToHost(MemorySegment.ofBuffer(bytes));
                        continue;
                    }
                    if (!keepEarly(bytes)) {
                        return false;
                    }
                }
            }
            return true;
        }

        private boolean parse(Connection c) {
            TsiMessages.Request r;
            try {
                r = TsiMessages.parseRequest(in.duplicate().flip());
            } catch (TsiMessages.Malformed e) {
                session.guestError("TSI request refused: " + e.getMessage());
                return false;
            }
            if (r == null) {
                if (!in.hasRemaining()) {
                    session.guestError("TSI request longer than any request");
                    return false;
                }
                return true;
            }
            request = r;
            int extra = in.position() - TsiMessages.requestLength(r);
            if (extra > 0 && !keepEarly(in.duplicate().flip().position(TsiMessages.requestLength(r)))) {
                return false;
            }
            dispatch(c, r);
            return true;
        }

        /** Keeps guest bytes sent before the answer; false when they exceed what a connection may hold. */
        private boolean keepEarly(ByteBuffer bytes) {
            if (early == null) {
                early = ByteBuffer.allocate((int) VsockSession.BUF_ALLOC);
            }
            if (bytes.remaining() > early.remaining()) {
                session.guestError("TSI: more than " + VsockSession.BUF_ALLOC + " bytes before the answer");
                return false;
            }
            early.put(bytes);
            return true;
        }

        private void dispatch(Connection c, TsiMessages.Request r) {
            switch (r.op()) {
                case TsiMessages.OP_CONNECT -> connect(c, r);
                case TsiMessages.OP_DGRAM -> datagram(c, r);
                case TsiMessages.OP_LISTEN -> listen(c, r);
                case TsiMessages.OP_ACCEPT -> accept(c, r);
                default -> refuse(c, Errno.EINVAL);
            }
        }

        private void connect(Connection c, TsiMessages.Request r) {
            SockAddr to = TsiMessages.address(r.family(), r.port(), r.addr());
            if (r.family() == SockAddr.AF_UNIX && spec.tsi() == VsockSpec.Tsi.INET_AND_UNIX
                    && r.addr().length >= SockAddr.UNIX_PATH_MAX) {
                refuse(c, Errno.ENAMETOOLONG); // no room for sun_path's NUL
                return;
            }
            if (to == null || (to instanceof SockAddr.Unix && spec.tsi() != VsockSpec.Tsi.INET_AND_UNIX)) {
                refuse(c, Errno.EAFNOSUPPORT);
                return;
            }
            if (to instanceof SockAddr.Unix u && u.path()[0] != '/') {
                refuse(c, Errno.EINVAL); // the guest sends the path from its root, which is the host's /
                return;
            }
            int fd = PosixNet.socket(to.family(), PosixNet.SOCK_STREAM, 0);
            if (fd < 0) {
                refuse(c, -fd);
                return;
            }
            int result = PosixNet.connect(fd, toHost(to));
            if (result == 0) {
                c.attach(fd, 0);
                connected(c);
            } else if (result == -Errno.EAGAIN && to instanceof SockAddr.Unix) {
                // a unix connect never pends: EAGAIN is the listener's full backlog, the guest's answer too
                Posix.close(fd);
                refuse(c, Errno.EAGAIN);
            } else if (VsockSession.inProgress(result)) {
                c.attach(fd, Posix.EPOLLOUT); // onHostEvent finishes it
            } else {
                Posix.close(fd);
                refuse(c, -result);
            }
        }

        @Override
        public void onHostEvent(Connection c, int events) {
            if (request == null || request.op() != TsiMessages.OP_CONNECT || c.fd < 0) {
                return;
            }
            int error = PosixNet.getIntOption(c.fd, PosixNet.SOL_SOCKET, PosixNet.SO_ERROR);
            if (error != 0) {
                c.closeHost(); // never asked again: SO_ERROR reads 0 the second time
                refuse(c, error < 0 ? -error : error);
                return;
            }
            connected(c);
        }

        /** The host socket is connected: answer, hand on what the guest sent early, and relay from now on. */
        private void connected(Connection c) {
            c.sendToGuest(TsiMessages.response(0, toGuest(PosixNet.localAddress(c.fd))));
            relay(c);
        }

        private void relay(Connection c) {
            c.protocol = null;
            if (early != null && early.position() > 0) {
                early.flip();
                c.sendEarlyToHost(MemorySegment.ofBuffer(early));
                early = null;
            }
            c.watchFor(c.watchedEvents() & ~Posix.EPOLLOUT | Posix.EPOLLIN);
        }

        private void datagram(Connection c, TsiMessages.Request r) {
            SockAddr local = TsiMessages.address(r.family(), 0, r.addr());
            if (local == null || local instanceof SockAddr.Unix) {
                refuse(c, Errno.EAFNOSUPPORT);
                return;
            }
            int fd = PosixNet.socket(r.family(), PosixNet.SOCK_DGRAM, 0);
            if (fd < 0) {
                refuse(c, -fd);
                return;
            }
            int hostPort = r.bind() ? published(r.port(), PortForward.Protocol.UDP).map(PortForward::hostPort).orElse(0) : 0;
            int result = PosixNet.bind(fd, any(r.family(), hostPort));
            if (result < 0) {
                Posix.close(fd);
                refuse(c, -result);
                return;
            }
            c.attach(fd, Posix.EPOLLIN);
            c.sendToGuest(TsiMessages.response(0, toGuest(PosixNet.localAddress(fd))));
            c.protocol = new Datagram(r.family());
        }

        private void listen(Connection c, TsiMessages.Request r) {
            if (r.family() != SockAddr.AF_INET && r.family() != SockAddr.AF_INET6) {
                refuse(c, Errno.EAFNOSUPPORT);
                return;
            }
            Optional<PortForward> forward = published(r.port(), PortForward.Protocol.TCP);
            if (forward.isEmpty()) {
                // Not published: the guest listens for itself only (TSI.md, LISTEN response port 0).
                c.sendToGuest(TsiMessages.response(0, null));
                c.endAfterPending = true;
                return;
            }
            int fd = PosixNet.socket(r.family(), PosixNet.SOCK_STREAM, 0);
            if (fd < 0) {
                refuse(c, -fd);
                return;
            }
            // SO_REUSEADDR lets a new listener take a port whose old connections linger in TIME_WAIT; unlike
            // SO_REUSEPORT it never lets two listeners share a port, so a second VM gets EADDRINUSE.
            PosixNet.setIntOption(fd, PosixNet.SOL_SOCKET, PosixNet.SO_REUSEADDR, 1);
            int result = PosixNet.bind(fd, any(r.family(), forward.get().hostPort()));
            if (result == 0) {
                result = PosixNet.listen(fd, MAX_PENDING_PER_LISTENER);
            }
            if (result < 0) {
                Posix.close(fd);
                refuse(c, -result);
                return;
            }
            c.attach(fd, Posix.EPOLLIN);
            c.sendToGuest(TsiMessages.response(0, PosixNet.localAddress(fd)));
            c.protocol = new Listener(c);
        }

        private void accept(Connection c, TsiMessages.Request r) {
            Pending p = pending.remove(r.id());
            if (p == null) {
                refuse(c, Errno.ECONNABORTED);
                return;
            }
            p.listener().claimed();
            c.attach(p.fd(), 0);
            c.sendToGuest(TsiMessages.response(0, toGuest(PosixNet.localAddress(p.fd()))));
            relay(c);
        }
    }

    // ---- datagrams

    private final class Datagram implements Connection.Protocol {
        private final ByteBuffer in = ByteBuffer.allocate(TsiMessages.FRAME_HEADER + TsiMessages.MAX_ADDR
                + TsiMessages.MAX_DATAGRAM);
        /** The host socket's family: an AF_INET6 socket takes AF_INET destinations v4-mapped. */
        private final int family;
        private SockAddr peer;

        Datagram(int family) {
            this.family = family;
        }

        @Override
        public boolean fromGuest(Connection c, List<MemorySegment> data) {
            for (MemorySegment piece : data) {
                ByteBuffer bytes = piece.asByteBuffer();
                while (bytes.hasRemaining()) {
                    int n = Math.min(in.remaining(), bytes.remaining());
                    in.put(bytes.slice(bytes.position(), n));
                    bytes.position(bytes.position() + n);
                    if (!frames(c)) {
                        return false;
                    }
                }
            }
            return true;
        }

        /** Sends every complete frame in {@link #in}; false when a frame is malformed. */
        private boolean frames(Connection c) {
            in.flip();
            try {
                TsiMessages.Frame f;
                while ((f = TsiMessages.parseFrame(in)) != null) {
                    handle(c, f, in.slice(in.position() + f.dataOffset(), f.dataLength()));
                    in.position(in.position() + f.length());
                }
            } catch (TsiMessages.Malformed e) {
                session.guestError("TSI datagram frame refused: " + e.getMessage());
                return false;
            } finally {
                in.compact();
            }
            return true;
        }

        private void handle(Connection c, TsiMessages.Frame f, ByteBuffer data) {
            if (f.kind() == TsiMessages.FRAME_CONNECT) {
                peer = f.addr().length == 0 ? null : address(f);
                return;
            }
            SockAddr to = f.addr().length == 0 ? peer : address(f);
            if (to == null) {
                c.sendToGuest(TsiMessages.errorFrame(f.addr().length == 0 ? Errno.EDESTADDRREQ : Errno.EAFNOSUPPORT));
                return;
            }
            try (Arena a = Arena.ofConfined()) {
                MemorySegment payload = a.allocate(Math.max(1, data.remaining()));
                MemorySegment.copy(MemorySegment.ofBuffer(data), 0, payload, 0, data.remaining());
                long r = PosixNet.sendTo(c.fd, payload.asSlice(0, data.remaining()), forFamily(family, toHost(to)));
                if (r < 0 && r != -Errno.EAGAIN && r != -Errno.EINTR) {
                    c.sendToGuest(TsiMessages.errorFrame((int) -r)); // EAGAIN: dropped, as UDP may
                }
            }
        }

        private SockAddr address(TsiMessages.Frame f) {
            SockAddr a = TsiMessages.address(f.family(), f.port(), f.addr());
            return a instanceof SockAddr.Unix ? null : a;
        }

        @Override
        public void onHostEvent(Connection c, int events) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment buf = a.allocate(TsiMessages.MAX_DATAGRAM + 8);
                while (c.pendingToGuest() < MAX_DATAGRAM_BACKLOG) {
                    PosixNet.Received r = PosixNet.recvFrom(c.fd, buf, PosixNet.MSG_DONTWAIT);
                    if (r.bytes() == -Errno.EINTR) {
                        continue;
                    }
                    if (r.bytes() < 0) {
                        if (r.bytes() != -Errno.EAGAIN) {
                            c.sendToGuest(TsiMessages.errorFrame((int) -r.bytes()));
                        }
                        return;
                    }
                    if (peer != null && !unmapped(toHost(peer)).equals(unmapped(r.from()))) {
                        continue; // a connected socket hears its peer only
                    }
                    c.sendToGuest(TsiMessages.frame(TsiMessages.FRAME_DATA, toGuest(r.from()),
                            buf.asSlice(0, Math.min(r.bytes(), TsiMessages.MAX_DATAGRAM)).asByteBuffer()));
                }
                c.watchFor(0); // the guest is behind: the host socket keeps the rest (or drops it, as UDP does)
            }
        }

        @Override
        public void drained(Connection c) {
            c.watchFor(Posix.EPOLLIN);
        }
    }

    // ---- listeners of published ports

    private final class Listener implements Connection.Protocol {
        private final Connection self;
        int unclaimed;

        Listener(Connection self) {
            this.self = self;
        }

        /** The guest took one of this listener's connections: there is room to accept again. */
        void claimed() {
            unclaimed--;
            if (self.state == Connection.State.ESTABLISHED) {
                self.watchFor(Posix.EPOLLIN);
            }
        }

        @Override
        public boolean fromGuest(Connection c, List<MemorySegment> data) {
            session.guestError("TSI: data on a LISTEN connection");
            return false;
        }

        @Override
        public void onHostEvent(Connection c, int events) {
            int fd;
            while (unclaimed < MAX_PENDING_PER_LISTENER && pending.size() < MAX_PENDING && (fd = PosixNet.accept(c.fd)) >= 0) {
                long id = nextId++;
                pending.put(id, new Pending(fd, this));
                unclaimed++;
                c.sendToGuest(TsiMessages.record(id, toGuest(PosixNet.peerAddress(fd))));
            }
            if (unclaimed >= MAX_PENDING_PER_LISTENER || pending.size() >= MAX_PENDING) {
                c.watchFor(0); // the guest does not claim them: host clients wait in the backlog
            }
        }

        @Override
        public void drained(Connection c) {
            if (unclaimed < MAX_PENDING_PER_LISTENER) {
                c.watchFor(Posix.EPOLLIN);
            }
        }

        @Override
        public void close() {
            pending.values().removeIf(p -> {
                if (p.listener() == this) {
                    Posix.close(p.fd());
                    return true;
                }
                return false;
            });
        }
    }

    /** The activation ends: unclaimed connections are closed. */
    void closeAll() {
        for (Pending p : pending.values()) {
            Posix.close(p.fd());
        }
        pending.clear();
    }
}
