package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;

/** The vsock device against a guest played by the test, with real unix sockets on the host side. */
class VirtioVsockTest {
    private static final long MAPPED = 5000;
    private static final long GUEST_PORT = 1234;

    @TempDir
    Path dir;
    private VsockDriver guest;

    @AfterEach
    void tearDown() throws InterruptedException {
        if (guest != null) {
            guest.close();
        }
    }

    private ServerSocketChannel unixServer(Path path) throws Exception {
        ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        s.bind(UnixDomainSocketAddress.of(path));
        return s;
    }

    /** The guest connects to the mapped port; returns the host's end of the connection. */
    private SocketChannel connect(ServerSocketChannel server) throws Exception {
        guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, MAPPED);
        SocketChannel host = server.accept();
        VsockDriver.Packet response = guest.await(VsockHeader.OP_RESPONSE);
        assertEquals(MAPPED, response.header().srcPort());
        assertEquals(GUEST_PORT, response.header().dstPort());
        assertEquals(VsockSession.BUF_ALLOC, response.header().bufAlloc());
        return host;
    }

    @Test
    void theGuestReachesAHostUnixSocketThroughAPortMapAndBytesFlowBothWays() throws Exception {
        Path path = dir.resolve("svc.sock");
        try (ServerSocketChannel server = unixServer(path)) {
            guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(MAPPED, path, false)));
            guest.postRx(16, VsockDriver.RX_BUFFER);
            try (SocketChannel host = connect(server)) {
                guest.send(VsockHeader.OP_RW, GUEST_PORT, MAPPED, "to the host".getBytes(), 0, 256 * 1024, 0);
                ByteBuffer got = ByteBuffer.allocate(64);
                host.read(got);
                assertEquals("to the host", new String(got.array(), 0, got.position()));

                host.write(ByteBuffer.wrap("to the guest".getBytes()));
                VsockDriver.Packet rw = guest.await(VsockHeader.OP_RW);
                assertEquals("to the guest", new String(rw.payload()));
                assertEquals(11, rw.header().fwdCnt(), "the device forwarded the guest's 11 bytes");

                host.shutdownOutput();
                VsockDriver.Packet eof = guest.await(VsockHeader.OP_SHUTDOWN);
                assertEquals(VsockHeader.SHUTDOWN_SEND | VsockHeader.SHUTDOWN_RCV, eof.header().flags());

                guest.send(VsockHeader.OP_SHUTDOWN, GUEST_PORT, MAPPED, new byte[0],
                        VsockHeader.SHUTDOWN_SEND | VsockHeader.SHUTDOWN_RCV, 256 * 1024, 0);
                guest.await(VsockHeader.OP_RST);
                assertEquals(-1, host.read(ByteBuffer.allocate(8)), "the guest's close ends the host connection");
                assertEquals(0, guest.onLoop(guest.device::connectionCount));
            }
        }
    }

    @Test
    void withoutSocketImpersonationTheDeviceAsksNothingOfTheGuest() {
        assertEquals(org.krun.spi.virtio.GuestSetup.NONE, new VirtioVsock(VsockSpec.create(), java.util.List.of()).guestSetup());
    }

    @Test
    void socketImpersonationTurnsOnInTheGuestKernelAndNamesTheHostAlias() {
        org.krun.spi.virtio.GuestSetup inet = new VirtioVsock(VsockSpec.create().withTsi(VsockSpec.Tsi.INET),
                java.util.List.of()).guestSetup();
        assertEquals(java.util.List.of("krun_tsi=inet"), inet.kernelArgs());
        assertEquals("192.0.2.1 host.krun.internal\n2001:db8::1 host.krun.internal\n", inet.appends().get("/etc/hosts"));
        org.krun.spi.virtio.GuestSetup unix = new VirtioVsock(VsockSpec.create().withTsi(VsockSpec.Tsi.INET_AND_UNIX),
                java.util.List.of()).guestSetup();
        assertEquals(java.util.List.of("krun_tsi=inet,unix"), unix.kernelArgs());
    }

    @Test
    void aRequestToAPortNothingServesIsReset() throws Exception {
        guest = new VsockDriver(VsockSpec.create());
        guest.postRx(4, VsockDriver.RX_BUFFER);
        guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, 7777);
        VsockDriver.Packet rst = guest.await(VsockHeader.OP_RST);
        assertEquals(7777, rst.header().srcPort());
        assertEquals(GUEST_PORT, rst.header().dstPort());
    }

    @Test
    void aPortMapWhoseSocketHasNoListenerIsReset() throws Exception {
        guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(MAPPED, dir.resolve("nobody.sock"), false)));
        guest.postRx(4, VsockDriver.RX_BUFFER);
        guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, MAPPED);
        guest.await(VsockHeader.OP_RST);
    }

    @Test
    void aHostConnectionToAListenMapBecomesAConnectionToTheGuestPort() throws Exception {
        Path path = dir.resolve("in.sock");
        guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(GUEST_PORT, path, true)));
        guest.postRx(16, VsockDriver.RX_BUFFER);
        assertTrue(Files.exists(path), "krun listens there from the VM's creation");
        try (SocketChannel host = SocketChannel.open(UnixDomainSocketAddress.of(path))) {
            VsockDriver.Packet request = guest.await(VsockHeader.OP_REQUEST);
            assertEquals(GUEST_PORT, request.header().dstPort());
            long hostPort = request.header().srcPort();
            guest.send(VsockHeader.OP_RESPONSE, GUEST_PORT, hostPort);
            host.write(ByteBuffer.wrap("hello guest".getBytes()));
            assertEquals("hello guest", new String(guest.await(VsockHeader.OP_RW).payload()));
            guest.send(VsockHeader.OP_RW, GUEST_PORT, hostPort, "hello host".getBytes(), 0, 256 * 1024, 0);
            ByteBuffer got = ByteBuffer.allocate(32);
            host.read(got);
            assertEquals("hello host", new String(got.array(), 0, got.position()));
        }
        guest.close();
        guest = null;
        assertTrue(Files.notExists(path), "the listener's socket file goes with the VM");
    }

    @Test
    void aListenMapOnAPathInUseIsAOneLineError() throws Exception {
        Path path = dir.resolve("busy.sock");
        try (ServerSocketChannel other = unixServer(path)) {
            VmConfigException e = assertThrows(VmConfigException.class,
                    () -> new VsockFactory().create(VsockSpec.create().withPort(new VsockPort(GUEST_PORT, path, true))));
            assertTrue(e.getMessage().contains("in use"), e.getMessage());
        }
    }

    @Test
    void theDeviceSendsNoMoreThanTheGuestsCreditAndGoesOnWhenItGrows() throws Exception {
        Path path = dir.resolve("svc.sock");
        try (ServerSocketChannel server = unixServer(path)) {
            guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(MAPPED, path, false)));
            guest.postRx(64, VsockDriver.RX_BUFFER);
            // The guest offers 1000 bytes of receive space.
            guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, MAPPED, new byte[0], 0, 1000, 0);
            try (SocketChannel host = server.accept()) {
                guest.await(VsockHeader.OP_RESPONSE);
                byte[] data = new byte[3000];
                new Random(1).nextBytes(data);
                host.write(ByteBuffer.wrap(data));
                ByteArrayOutputStream got = new ByteArrayOutputStream();
                while (got.size() < 1000) {
                    got.writeBytes(guest.await(VsockHeader.OP_RW).payload());
                }
                assertEquals(1000, got.size(), "not a byte beyond the credit");
                guest.await(VsockHeader.OP_CREDIT_REQUEST);
                // The guest read it all: its fwd_cnt says so.
                guest.send(VsockHeader.OP_CREDIT_UPDATE, GUEST_PORT, MAPPED, new byte[0], 0, 1000, 1000);
                while (got.size() < 2000) {
                    got.writeBytes(guest.await(VsockHeader.OP_RW).payload());
                }
                guest.send(VsockHeader.OP_CREDIT_UPDATE, GUEST_PORT, MAPPED, new byte[0], 0, 1000, 2000);
                while (got.size() < 3000) {
                    got.writeBytes(guest.await(VsockHeader.OP_RW).payload());
                }
                assertArrayEquals(data, got.toByteArray());
            }
        }
    }

    @Test
    void aHostThatReadsOnlyOnceTheGuestIsStalledGetsEveryByteInOrder() throws Exception {
        Path path = dir.resolve("svc.sock");
        try (ServerSocketChannel server = unixServer(path)) {
            guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(MAPPED, path, false)), 128 << 20);
            guest.postRx(64, VsockDriver.RX_BUFFER);
            try (SocketChannel host = connect(server)) {
                // The guest sends within the device's credit until the host socket is full and the device
                // holds the rest: no credit comes back for a while.
                long sent = 0;
                long forwarded = 0;
                long stalledSince = System.nanoTime();
                while (System.nanoTime() - stalledSince < 500_000_000L) {
                    if (sent + 16384 - forwarded <= VsockSession.BUF_ALLOC) {
                        byte[] chunk = new byte[16384];
                        for (int i = 0; i < chunk.length; i++) {
                            chunk[i] = (byte) ((sent + i) % 251);
                        }
                        guest.send(VsockHeader.OP_RW, GUEST_PORT, MAPPED, chunk, 0, 256 * 1024, 0);
                        sent += chunk.length;
                        stalledSince = System.nanoTime();
                    } else {
                        for (VsockDriver.Packet p : guest.take()) {
                            if (p.header().fwdCnt() > forwarded) {
                                forwarded = p.header().fwdCnt();
                                stalledSince = System.nanoTime();
                            }
                        }
                        Thread.sleep(5);
                    }
                }
                assertTrue(sent > forwarded, "the device holds bytes the host socket had no room for");
                // Now the host reads: what the device kept follows what the socket held, in order.
                ByteBuffer got = ByteBuffer.allocate(64 * 1024);
                long read = 0;
                long deadline = System.nanoTime() + 10_000_000_000L;
                host.configureBlocking(false);
                while (read < sent && System.nanoTime() < deadline) {
                    int n = host.read(got.clear());
                    for (int i = 0; i < n; i++) {
                        assertEquals((byte) ((read + i) % 251), got.get(i), "byte " + (read + i));
                    }
                    read += Math.max(n, 0);
                    if (n <= 0) {
                        Thread.sleep(2);
                    }
                }
                assertEquals(sent, read, "every byte the guest sent reached the host");
                assertEquals(1, guest.onLoop(guest.device::connectionCount));
            }
        }
    }

    @Test
    void aGuestThatSendsBeyondTheDevicesCreditIsReset() throws Exception {
        Path path = dir.resolve("svc.sock");
        try (ServerSocketChannel server = unixServer(path)) {
            guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(MAPPED, path, false)), 128 << 20);
            guest.postRx(16, VsockDriver.RX_BUFFER);
            try (SocketChannel host = connect(server)) {
                // The host never reads: its socket buffer fills, then the device's, then the guest is over.
                byte[] chunk = new byte[16384];
                boolean reset = false;
                for (int i = 0; i < 4096 && !reset; i++) {
                    guest.send(VsockHeader.OP_RW, GUEST_PORT, MAPPED, chunk, 0, 256 * 1024, 0);
                    reset = guest.take().stream().anyMatch(p -> p.op() == VsockHeader.OP_RST)
                            || guest.received.stream().anyMatch(p -> p.op() == VsockHeader.OP_RST);
                }
                assertTrue(reset, "a guest ignoring the credit is reset, not buffered without end");
                assertEquals(0, guest.onLoop(guest.device::connectionCount));
            }
        }
    }

    @Test
    void malformedPacketsAreDroppedAndTheDeviceGoesOn() throws Exception {
        guest = new VsockDriver(VsockSpec.create());
        guest.postRx(8, VsockDriver.RX_BUFFER);
        guest.sendRaw(new byte[10]); // shorter than a header
        VsockHeader wrongCid = new VsockHeader(99, VsockSession.HOST_CID, 1, 2, 0, VsockHeader.TYPE_STREAM,
                VsockHeader.OP_REQUEST, 0, 0, 0);
        guest.sendRaw(wrongCid.encode());
        VsockHeader lying = new VsockHeader(VsockDriver.GUEST_CID, VsockSession.HOST_CID, 1, 2, 1 << 20,
                VsockHeader.TYPE_STREAM, VsockHeader.OP_RW, 0, 0, 0);
        guest.sendRaw(lying.encode()); // claims 1 MiB of payload, carries none
        guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, 7777);
        VsockDriver.Packet rst = guest.await(p -> p.op() == VsockHeader.OP_RST && p.header().srcPort() == 7777);
        assertEquals(GUEST_PORT, rst.header().dstPort());
    }
}
