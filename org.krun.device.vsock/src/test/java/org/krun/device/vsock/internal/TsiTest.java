package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.PortForward;
import org.krun.api.VsockSpec;
import org.krun.posix.Errno;
import org.krun.posix.SockAddr;

/**
 * Transparent socket impersonation, the device's side, driven by a test playing the guest kernel: requests
 * on vsock connections to the TSI port, answered and relayed to real sockets on the host's loopback.
 */
class TsiTest {
    private static final byte[] HOST_ALIAS = {(byte) 192, 0, 2, 1};
    private static final long TSI = Tsi.PORT;

    private VsockDriver guest;
    private long nextPort = 2000;

    @AfterEach
    void tearDown() throws InterruptedException {
        if (guest != null) {
            guest.close();
        }
    }

    private void start(VsockSpec spec) {
        start(spec, VsockSpec.Tsi.INET);
    }

    private void start(VsockSpec spec, VsockSpec.Tsi tsi) {
        guest = new VsockDriver(spec.withTsi(tsi));
        guest.postRx(200, VsockDriver.RX_BUFFER);
    }

    static byte[] request(int op, int family, int port, byte[] addr, long id, int flags) {
        ByteBuffer b = ByteBuffer.allocate(16 + addr.length).order(ByteOrder.LITTLE_ENDIAN);
        b.put((byte) 1).put((byte) op).putShort((short) family).putShort((short) port).putShort((short) addr.length)
                .putInt((int) id).putInt(flags).put(addr);
        return b.array();
    }

    /** Opens a vsock connection to the TSI port with {@code request}; returns the guest port used. */
    private long open(byte[] request) throws InterruptedException {
        long port = nextPort++;
        guest.send(VsockHeader.OP_REQUEST, port, TSI);
        guest.await(p -> p.op() == VsockHeader.OP_RESPONSE && p.header().dstPort() == port);
        guest.send(VsockHeader.OP_RW, port, TSI, request, 0, 256 * 1024, 0);
        return port;
    }

    /** What arrived on each guest port and was not read yet. */
    private final java.util.Map<Long, ByteArrayOutputStream> streams = new java.util.HashMap<>();

    /** Reads {@code n} bytes of the device's stream on guest port {@code port}. */
    private byte[] read(long port, int n) throws InterruptedException {
        ByteArrayOutputStream got = streams.computeIfAbsent(port, k -> new ByteArrayOutputStream());
        while (got.size() < n) {
            VsockDriver.Packet p = guest.await(x -> x.op() == VsockHeader.OP_RW && x.header().dstPort() == port);
            got.writeBytes(p.payload());
        }
        byte[] all = got.toByteArray();
        got.reset();
        got.write(all, n, all.length - n);
        return java.util.Arrays.copyOf(all, n);
    }

    private record Response(int status, int family, int port, byte[] addr) {
    }

    private Response response(long port) throws InterruptedException {
        ByteBuffer h = ByteBuffer.wrap(read(port, 12)).order(ByteOrder.LITTLE_ENDIAN);
        int status = h.getInt();
        int family = h.getShort() & 0xffff;
        int p = h.getShort() & 0xffff;
        int addrlen = h.getShort() & 0xffff;
        return new Response(status, family, p, addrlen == 0 ? new byte[0] : read(port, addrlen));
    }

    @Test
    void aConnectToTheHostAliasReachesTheHostsLoopbackAndRelaysBothWays() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            start(VsockSpec.create());
            long port = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, server.getLocalPort(), HOST_ALIAS, 0, 0));
            try (Socket host = server.accept()) {
                Response r = response(port);
                assertEquals(0, r.status());
                assertEquals(SockAddr.AF_INET, r.family());
                assertArrayEquals(HOST_ALIAS, r.addr(), "the host's loopback, as the guest names it");
                assertEquals(host.getPort(), r.port(), "the local port of the host's socket");

                guest.send(VsockHeader.OP_RW, port, TSI, "ping".getBytes(), 0, 256 * 1024, 0);
                byte[] got = host.getInputStream().readNBytes(4);
                assertEquals("ping", new String(got));
                host.getOutputStream().write("pong".getBytes());
                assertEquals("pong", new String(read(port, 4)));
                host.shutdownOutput();
                guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == port);
            }
        }
    }

    @Test
    void bytesSentWithTheConnectRequestReachTheHostOnceItConnects() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            start(VsockSpec.create());
            byte[] connect = request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, server.getLocalPort(), HOST_ALIAS, 0, 0);
            byte[] early = "sent before the answer".getBytes();
            byte[] both = java.util.Arrays.copyOf(connect, connect.length + early.length);
            System.arraycopy(early, 0, both, connect.length, early.length);
            long port = open(both); // the connect is usually still in progress when these bytes arrive
            try (Socket host = server.accept()) {
                host.setSoTimeout(10_000);
                assertEquals(0, response(port).status());
                assertEquals("sent before the answer", new String(host.getInputStream().readNBytes(early.length)));
                guest.send(VsockHeader.OP_RW, port, TSI, "and after".getBytes(), 0, 256 * 1024, 0);
                assertEquals("and after", new String(host.getInputStream().readNBytes(9)));
            }
        }
    }

    @Test
    void aConnectNobodyAnswersGetsTheHostsErrno() throws Exception {
        int closed;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        start(VsockSpec.create());
        long port = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, closed, HOST_ALIAS, 0, 0));
        assertEquals(Errno.ECONNREFUSED, response(port).status());
        guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == port);
    }

    @Test
    void aRefusedConnectIsAnsweredOnceAndItsDeadSocketNeverWakesTheDeviceAgain() throws Exception {
        int closed;
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            closed = s.getLocalPort();
        }
        start(VsockSpec.create());
        long port = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, closed, HOST_ALIAS, 0, 0));
        assertEquals(Errno.ECONNREFUSED, response(port).status());
        guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == port);
        // A second refused request: the device's loop has long seen the first host socket's HUP by its answer.
        long again = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, closed, HOST_ALIAS, 0, 0));
        assertEquals(Errno.ECONNREFUSED, response(again).status());
        guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == again);
        // The guest closes as Linux does after reading the answer: SHUTDOWN both ways, the device's RST ends it.
        guest.send(VsockHeader.OP_SHUTDOWN, port, TSI, new byte[0],
                VsockHeader.SHUTDOWN_SEND | VsockHeader.SHUTDOWN_RCV, 256 * 1024, 0);
        guest.await(p -> p.op() == VsockHeader.OP_RST && p.header().dstPort() == port);
        guest.take();
        assertTrue(guest.received.stream().noneMatch(p -> p.header().dstPort() == port),
                "after its answer and SHUTDOWN a refused connection sends nothing (no second answer): " + guest.received);
        assertEquals(0, guest.emptyRx, "rx buffers the device gave back empty (woken by a dead host socket)");
        assertEquals(1, guest.onLoop(guest.device::connectionCount), "only the second connection is left");
    }

    @Test
    void aHostSocketClosedBothWaysIsLeftAloneUntilTheGuestCloses() throws Exception {
        try (ServerSocket server = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            start(VsockSpec.create());
            long port = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, server.getLocalPort(), HOST_ALIAS, 0, 0));
            try (Socket host = server.accept()) {
                assertEquals(0, response(port).status());
                // The guest ends its side (the device shuts the host socket's write side), then the host closes:
                // the device's socket is shut both ways, which epoll reports as HUP whatever it is asked for.
                guest.send(VsockHeader.OP_SHUTDOWN, port, TSI, new byte[0], VsockHeader.SHUTDOWN_SEND, 256 * 1024, 0);
                assertEquals(-1, host.getInputStream().read(), "the guest's end of stream reached the host");
            }
            guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == port);
            // Another connection's whole round trip: the device's loop has long seen the first socket's HUP.
            try (ServerSocket other = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
                long second = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, other.getLocalPort(), HOST_ALIAS, 0, 0));
                try (Socket s = other.accept()) {
                    assertEquals(0, response(second).status());
                }
            }
            guest.send(VsockHeader.OP_SHUTDOWN, port, TSI, new byte[0],
                    VsockHeader.SHUTDOWN_SEND | VsockHeader.SHUTDOWN_RCV, 256 * 1024, 0);
            guest.await(p -> p.op() == VsockHeader.OP_RST && p.header().dstPort() == port);
            assertEquals(0, guest.emptyRx, "rx buffers the device gave back empty (woken by a dead host socket)");
        }
    }

    @Test
    void datagramsTravelInFramesBothWaysWithTheirAddresses() throws Exception {
        try (DatagramSocket echo = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            CompletableFuture<Void> echoing = CompletableFuture.runAsync(() -> {
                try {
                    DatagramPacket p = new DatagramPacket(new byte[2048], 2048);
                    echo.receive(p);
                    echo.send(new DatagramPacket(p.getData(), p.getLength(), p.getSocketAddress()));
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            start(VsockSpec.create());
            long port = open(request(TsiMessages.OP_DGRAM, SockAddr.AF_INET, 0, new byte[0], 0, 0));
            Response r = response(port);
            assertEquals(0, r.status());
            assertTrue(r.port() > 0, "the host socket's port");
            ByteBuffer f = ByteBuffer.allocate(12 + 4 + 5).order(ByteOrder.LITTLE_ENDIAN);
            f.putShort((short) 5).put((byte) 0).put((byte) 0).putShort((short) SockAddr.AF_INET)
                    .putShort((short) echo.getLocalPort()).putShort((short) 4).putShort((short) 0).put(HOST_ALIAS)
                    .put("hello".getBytes());
            guest.send(VsockHeader.OP_RW, port, TSI, f.array(), 0, 256 * 1024, 0);
            echoing.get(10, TimeUnit.SECONDS);
            ByteBuffer back = ByteBuffer.wrap(read(port, 12 + 4 + 5)).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(5, back.getShort());
            assertEquals(0, back.get());
            back.get();
            assertEquals(SockAddr.AF_INET, back.getShort());
            assertEquals(echo.getLocalPort(), back.getShort() & 0xffff);
            assertEquals(4, back.getShort());
            back.getShort();
            byte[] from = new byte[4];
            back.get(from);
            assertArrayEquals(HOST_ALIAS, from, "the echo server, as the guest names it");
            byte[] data = new byte[5];
            back.get(data);
            assertEquals("hello", new String(data));
        }
    }

    /**
     * The guest sends a v4-mapped destination of an AF_INET6 socket as AF_INET (TSI.md): the device's
     * AF_INET6 host socket takes it mapped, and the source of the answer comes back as AF_INET.
     */
    @Test
    void anInet6DatagramSocketReachesAnInet4DestinationAndHearsItsAnswer() throws Exception {
        try (DatagramSocket echo = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            CompletableFuture<Void> echoing = CompletableFuture.runAsync(() -> {
                try {
                    DatagramPacket p = new DatagramPacket(new byte[2048], 2048);
                    echo.receive(p);
                    echo.send(new DatagramPacket(p.getData(), p.getLength(), p.getSocketAddress()));
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            start(VsockSpec.create());
            long port = open(request(TsiMessages.OP_DGRAM, SockAddr.AF_INET6, 0, new byte[0], 0, 0));
            assertEquals(0, response(port).status());
            ByteBuffer connect = ByteBuffer.allocate(12 + 4).order(ByteOrder.LITTLE_ENDIAN);
            connect.putShort((short) 0).put((byte) TsiMessages.FRAME_CONNECT).put((byte) 0).putShort((short) SockAddr.AF_INET)
                    .putShort((short) echo.getLocalPort()).putShort((short) 4).putShort((short) 0).put(HOST_ALIAS);
            ByteBuffer data = ByteBuffer.allocate(12 + 3).order(ByteOrder.LITTLE_ENDIAN);
            data.putShort((short) 3).put((byte) TsiMessages.FRAME_DATA).put((byte) 0).putShort((short) 0)
                    .putShort((short) 0).putShort((short) 0).putShort((short) 0).put("six".getBytes());
            byte[] both = new byte[connect.capacity() + data.capacity()];
            System.arraycopy(connect.array(), 0, both, 0, connect.capacity());
            System.arraycopy(data.array(), 0, both, connect.capacity(), data.capacity());
            guest.send(VsockHeader.OP_RW, port, TSI, both, 0, 256 * 1024, 0);
            echoing.get(10, TimeUnit.SECONDS);
            ByteBuffer back = ByteBuffer.wrap(read(port, 12 + 4 + 3)).order(ByteOrder.LITTLE_ENDIAN);
            assertEquals(3, back.getShort());
            assertEquals(TsiMessages.FRAME_DATA, back.get());
            back.get();
            assertEquals(SockAddr.AF_INET, back.getShort(), "a v4-mapped source is reported as AF_INET");
            assertEquals(echo.getLocalPort(), back.getShort() & 0xffff);
            assertEquals(4, back.getShort());
            back.getShort();
            byte[] from = new byte[4];
            back.get(from);
            assertArrayEquals(HOST_ALIAS, from, "the echo server, as the guest names it: the connected peer hears it");
        }
    }

    @Test
    void aPublishedListenerHandsHostConnectionsToTheGuestWhichClaimsThem() throws Exception {
        int hostPort;
        try (ServerSocket probe = new ServerSocket(0)) {
            hostPort = probe.getLocalPort();
        }
        start(VsockSpec.create().withPublished(new PortForward(hostPort, 8080, PortForward.Protocol.TCP)));
        long listen = open(request(TsiMessages.OP_LISTEN, SockAddr.AF_INET, 8080, new byte[0], 0, 0));
        Response r = response(listen);
        assertEquals(0, r.status());
        assertEquals(hostPort, r.port(), "the published host port");

        try (Socket client = new Socket(InetAddress.getLoopbackAddress(), hostPort)) {
            ByteBuffer record = ByteBuffer.wrap(read(listen, 12 + 4)).order(ByteOrder.LITTLE_ENDIAN);
            long id = Integer.toUnsignedLong(record.getInt());
            assertEquals(SockAddr.AF_INET, record.getShort());
            assertEquals(client.getLocalPort(), record.getShort() & 0xffff, "the host client's port");
            long accepted = open(request(TsiMessages.OP_ACCEPT, SockAddr.AF_INET, 0, new byte[0], id, 0));
            assertEquals(0, response(accepted).status());
            client.getOutputStream().write("from the host".getBytes());
            assertEquals("from the host", new String(read(accepted, 13)));
            guest.send(VsockHeader.OP_RW, accepted, TSI, "from the guest".getBytes(), 0, 256 * 1024, 0);
            assertEquals("from the guest", new String(client.getInputStream().readNBytes(14)));
        }
    }

    @Test
    void withPublishAllEveryGuestListenerIsPublishedOnItsOwnPort() throws Exception {
        int port;
        try (ServerSocket probe = new ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        start(VsockSpec.create().withPublishAll(true));
        long listen = open(request(TsiMessages.OP_LISTEN, SockAddr.AF_INET, port, new byte[0], 0, 0));
        Response r = response(listen);
        assertEquals(0, r.status());
        assertEquals(port, r.port(), "published on the guest's own port number");
        try (Socket client = new Socket(InetAddress.getLoopbackAddress(), port)) {
            ByteBuffer record = ByteBuffer.wrap(read(listen, 12 + 4)).order(ByteOrder.LITTLE_ENDIAN);
            long id = Integer.toUnsignedLong(record.getInt());
            long accepted = open(request(TsiMessages.OP_ACCEPT, SockAddr.AF_INET, 0, new byte[0], id, 0));
            assertEquals(0, response(accepted).status());
            client.getOutputStream().write("ping".getBytes());
            assertEquals("ping", new String(read(accepted, 4)));
        }
    }

    @Test
    void anUnpublishedListenerIsTheGuestsAloneAndAnUnknownAcceptIsRefused() throws Exception {
        start(VsockSpec.create());
        long listen = open(request(TsiMessages.OP_LISTEN, SockAddr.AF_INET, 9090, new byte[0], 0, 0));
        Response r = response(listen);
        assertEquals(0, r.status());
        assertEquals(0, r.port(), "port 0: not published, reachable from inside the guest only");
        guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == listen);

        long accept = open(request(TsiMessages.OP_ACCEPT, SockAddr.AF_INET, 0, new byte[0], 12345, 0));
        assertEquals(Errno.ECONNABORTED, response(accept).status());
    }

    @Test
    void aHostPortTakenAfterTheVmStartedGetsAddressInUseOnListen() throws Exception {
        int hostPort;
        try (ServerSocket probe = new ServerSocket(0)) {
            hostPort = probe.getLocalPort();
        }
        start(VsockSpec.create().withPublished(new PortForward(hostPort, 8080, PortForward.Protocol.TCP)));
        try (ServerSocket other = new ServerSocket()) {
            other.bind(new InetSocketAddress(hostPort)); // another VM, or anything else, took the host port since
            long listen = open(request(TsiMessages.OP_LISTEN, SockAddr.AF_INET, 8080, new byte[0], 0, 0));
            assertEquals(Errno.EADDRINUSE, response(listen).status());
        }
    }

    @Test
    void aHostPortInUseAtStartIsRefusedInOneLine() throws Exception {
        try (ServerSocket other = new ServerSocket()) {
            other.bind(new InetSocketAddress(0));
            int hostPort = other.getLocalPort();
            VsockSpec spec = VsockSpec.create().withTsi(VsockSpec.Tsi.INET)
                    .withPublished(new PortForward(hostPort, 8080, PortForward.Protocol.TCP));
            RuntimeException e = assertThrows(RuntimeException.class, () -> new VsockFactory().create(spec));
            assertEquals("cannot publish port " + hostPort + ":8080: host port " + hostPort + " (tcp) is in use",
                    e.getMessage());
        }
    }

    @Test
    void malformedRequestsAreResetAndTheDeviceGoesOn() throws Exception {
        start(VsockSpec.create());
        for (byte[] bad : new byte[][] {
            {9, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // version 9
            {1, 9, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // op 9
            {1, 1, 2, 0, 0, 0, (byte) 0xff, 0x7f, 0, 0, 0, 0, 0, 0, 0, 0}, // address of 32767 bytes
        }) {
            long port = open(bad);
            guest.await(p -> p.op() == VsockHeader.OP_RST && p.header().dstPort() == port);
        }
        long port = open(request(TsiMessages.OP_CONNECT, 77, 1, new byte[0], 0, 0)); // a family TSI does not serve
        assertEquals(Errno.EAFNOSUPPORT, response(port).status());
    }

    @TempDir
    Path dir;

    private static byte[] path(Path p) {
        return p.toString().getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void aUnixConnectReachesTheHostSocketOfThatPathAndRelaysBothWays() throws Exception {
        Path socket = dir.resolve("server.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            start(VsockSpec.create(), VsockSpec.Tsi.INET_AND_UNIX);
            long port = open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0, path(socket), 0, 0));
            try (SocketChannel host = server.accept()) {
                Response r = response(port);
                assertEquals(0, r.status());
                assertEquals(0, r.addr().length, "the host's client socket is unnamed");
                guest.send(VsockHeader.OP_RW, port, TSI, "ping".getBytes(), 0, 256 * 1024, 0);
                ByteBuffer got = ByteBuffer.allocate(4);
                while (got.hasRemaining() && host.read(got) >= 0) {
                    // reads until the 4 bytes are there
                }
                assertEquals("ping", new String(got.array()));
                host.write(ByteBuffer.wrap("pong".getBytes()));
                assertEquals("pong", new String(read(port, 4)));
                host.shutdownOutput();
                guest.await(p -> p.op() == VsockHeader.OP_SHUTDOWN && p.header().dstPort() == port);
            }
        }
    }

    @Test
    void unixConnectsFailWithTheErrnoTheGuestWouldSee() throws Exception {
        Path stale = dir.resolve("stale.sock");
        try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.bind(UnixDomainSocketAddress.of(stale)); // closed without unlinking: a socket file nobody listens on
        }
        start(VsockSpec.create(), VsockSpec.Tsi.INET_AND_UNIX);
        assertEquals(Errno.ENOENT, response(open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0,
                path(dir.resolve("missing.sock")), 0, 0))).status());
        assertEquals(Errno.ECONNREFUSED, response(open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0,
                path(stale), 0, 0))).status());
        assertEquals(Errno.EINVAL, response(open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0,
                "relative.sock".getBytes(), 0, 0))).status(), "a path not from the root");
        byte[] tooLong = ("/" + "x".repeat(107)).getBytes();
        assertEquals(Errno.ENAMETOOLONG, response(open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0,
                tooLong, 0, 0))).status(), "108 bytes leave no room for sun_path's NUL");
        assertEquals(Errno.EAFNOSUPPORT, response(open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0,
                "/a\0b".getBytes(), 0, 0))).status(), "a NUL inside the path");
    }

    @Test
    void unixConnectsAreRefusedWhenOnlyInetIsImpersonated() throws Exception {
        Path socket = dir.resolve("server.sock");
        try (ServerSocketChannel server = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            server.bind(UnixDomainSocketAddress.of(socket));
            start(VsockSpec.create(), VsockSpec.Tsi.INET);
            assertEquals(Errno.EAFNOSUPPORT, response(open(request(TsiMessages.OP_CONNECT, SockAddr.AF_UNIX, 0,
                    path(socket), 0, 0))).status());
        }
    }
}
