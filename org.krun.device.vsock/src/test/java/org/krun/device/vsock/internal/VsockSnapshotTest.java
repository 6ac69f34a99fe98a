package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;

/**
 * Snapshots of virtio-vsock: an idle device (rx buffers posted, nothing open) is carried, and the restored
 * device answers through the rx buffers the guest posted before the snapshot; connections (port maps, TSI)
 * are refused with one line.
 */
class VsockSnapshotTest {
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

    private static ServerSocketChannel unixServer(Path path) throws Exception {
        ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        s.bind(UnixDomainSocketAddress.of(path));
        return s;
    }

    private byte[] save() {
        return guest.onLoop(() -> guest.device.saveState());
    }

    private IllegalStateException refusal() {
        return assertThrows(IllegalStateException.class, this::save);
    }

    @Test
    void anIdleDeviceIsRestoredAndAnswersInRxBuffersPostedBeforeTheSnapshot() throws Exception {
        Path path = dir.resolve("svc.sock");
        VsockSpec spec = VsockSpec.create().withTsi(VsockSpec.Tsi.INET).withPort(new VsockPort(MAPPED, path, false));
        try (ServerSocketChannel server = unixServer(path)) {
            guest = new VsockDriver(spec);
            guest.postRx(8, VsockDriver.RX_BUFFER);
            guest.onLoop(() -> {
                guest.event.addWritable(8);
                guest.device.queueNotify(VirtioVsock.EVENT);
                return null;
            });
            byte[] state = save();
            guest.restore(spec, state);

            guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, MAPPED);
            try (SocketChannel host = server.accept()) {
                VsockDriver.Packet response = guest.await(VsockHeader.OP_RESPONSE);
                assertEquals(GUEST_PORT, response.header().dstPort());
                host.write(ByteBuffer.wrap("after restore".getBytes()));
                VsockDriver.Packet data = guest.await(VsockHeader.OP_RW);
                assertEquals("after restore", new String(data.payload()));
            }
        }
    }

    @Test
    void anOpenPortMapConnectionIsRefusedWithOneLine() throws Exception {
        Path path = dir.resolve("svc.sock");
        try (ServerSocketChannel server = unixServer(path)) {
            guest = new VsockDriver(VsockSpec.create().withPort(new VsockPort(MAPPED, path, false)));
            guest.postRx(8, VsockDriver.RX_BUFFER);
            guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, MAPPED);
            try (SocketChannel host = server.accept()) {
                guest.await(VsockHeader.OP_RESPONSE);
                assertEquals("virtio-vsock: the guest has 1 connections and 0 accepted host connections"
                        + " (host sockets cannot go into a snapshot)", refusal().getMessage());
            }
        }
    }

    @Test
    void aTsiSocketIsRefusedAndSoIsAPacketWaitingForAnRxBuffer() throws Exception {
        guest = new VsockDriver(VsockSpec.create().withTsi(VsockSpec.Tsi.INET));
        // No rx buffer: the RESPONSE to this TSI socket waits in the device.
        guest.send(VsockHeader.OP_REQUEST, GUEST_PORT, Tsi.PORT);
        assertEquals("virtio-vsock: the guest has 1 connections and 0 accepted host connections"
                + " (host sockets cannot go into a snapshot)", refusal().getMessage());
        // A reset for a connection that does not exist: one packet waits for an rx buffer, no connection.
        VsockDriver fresh = new VsockDriver(VsockSpec.create());
        try {
            fresh.send(VsockHeader.OP_RW, GUEST_PORT + 1, 7777, "x".getBytes(), 0, 4096, 0);
            assertEquals("virtio-vsock: 1 packets wait for guest rx buffers",
                    assertThrows(IllegalStateException.class, () -> fresh.onLoop(() -> fresh.device.saveState())).getMessage());
        } finally {
            fresh.close();
        }
    }

    @Test
    void tamperedStateIsRefusedWithOneLine() throws Exception {
        guest = new VsockDriver(VsockSpec.create());
        byte[] state = save();
        VirtioVsock other = new VirtioVsock(VsockSpec.create(), List.of());
        assertEquals("virtio-vsock: saved state has 3 bytes, not 12",
                assertThrows(IllegalArgumentException.class, () -> other.restoreState(new byte[3])).getMessage());
        byte[] port = ByteBuffer.allocate(12).putInt(VirtioVsock.STATE_VERSION).putLong(-5).array();
        assertEquals("virtio-vsock: saved next host port -5 is out of range",
                assertThrows(IllegalArgumentException.class, () -> other.restoreState(port)).getMessage());
        byte[] version = state.clone();
        version[0] = 1;
        assertThrows(IllegalArgumentException.class, () -> other.restoreState(version));
        other.restoreState(state);
    }
}
