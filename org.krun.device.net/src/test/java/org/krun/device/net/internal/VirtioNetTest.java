package org.krun.device.net.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.NetSpec;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;

/**
 * The card against a unix stream peer played by the test (as passt or QEMU's stream netdev would be): frames
 * both ways with their length prefixes, mergeable buffers, back-pressure both ways, and what a hostile
 * guest or peer can do to it.
 */
@Timeout(60)
class VirtioNetTest {

    @TempDir
    Path dir;
    private ServerSocketChannel server;
    private SocketChannel peer;
    private NetDriver driver;

    /** A card on a unix stream socket whose other end is {@link #peer}. */
    private NetDriver connect(NetSpec.Backend unused, long features) throws IOException {
        Path path = dir.resolve("peer.sock");
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        server.bind(UnixDomainSocketAddress.of(path));
        VirtioNet device = (VirtioNet) new NetFactory().create(NetSpec.unixStream(path));
        peer = server.accept();
        driver = new NetDriver(device, features);
        return driver;
    }

    private NetDriver connect() throws IOException {
        return connect(NetSpec.Backend.UNIX_STREAM, NetDriver.LINUX_FEATURES);
    }

    @AfterEach
    void close() throws Exception {
        if (driver != null) {
            driver.close();
        }
        if (peer != null) {
            peer.close();
        }
        if (server != null) {
            server.close();
        }
    }

    private void peerSends(byte[] frame) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4 + frame.length).order(ByteOrder.BIG_ENDIAN);
        b.putInt(frame.length).put(frame).flip();
        while (b.hasRemaining()) {
            peer.write(b);
        }
    }

    private void peerWrites(byte[] raw) throws IOException {
        ByteBuffer b = ByteBuffer.wrap(raw);
        while (b.hasRemaining()) {
            peer.write(b);
        }
    }

    private byte[] peerReceives() throws IOException {
        ByteBuffer len = ByteBuffer.allocate(4);
        readFully(len);
        ByteBuffer frame = ByteBuffer.allocate(len.flip().getInt());
        readFully(frame);
        return frame.array();
    }

    private void readFully(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (peer.read(b) < 0) {
                throw new IOException("end of stream");
            }
        }
    }

    @Test
    void theCardOffersItsMacLinkAndMtuAndNoOffloadsOverAStream() throws Exception {
        VirtioNet device = connect().device;
        byte[] config = new byte[VirtioNet.CONFIG_SIZE];
        device.readConfig(0, config);
        assertEquals(NetSpec.DEFAULT_MAC, HexFormat.ofDelimiter(":").formatHex(config, 0, 6));
        assertEquals(VirtioNet.STATUS_LINK_UP, driver.status());
        assertEquals(NetSpec.MAX_MTU, (config[10] & 0xff) | (config[11] & 0xff) << 8);
        long f = device.deviceFeatures();
        assertTrue((f & NetFeatures.MRG_RXBUF) != 0 && (f & NetFeatures.MAC) != 0 && (f & NetFeatures.STATUS) != 0);
        assertEquals(0, f & (NetFeatures.HOST_OFFLOADS | NetFeatures.GUEST_OFFLOADS), "a stream peer takes no offloads");
    }

    @Test
    void framesGoBothWaysBehindTheirLength() throws Exception {
        connect();
        byte[] out = NetDriver.frame(60, 1);
        driver.send(out);
        assertArrayEquals(out, peerReceives());
        assertEquals(1, driver.txCompleted());

        driver.postRx(4, 2048);
        byte[] in = NetDriver.frame(1514, 2);
        peerSends(in);
        List<byte[]> got = driver.awaitFrames(1, 10);
        assertArrayEquals(in, got.get(0));
        assertArrayEquals(new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, driver.headers.get(0), "no offloads, one buffer");
        assertTrue(driver.interrupts.contains(InterruptTrigger.QUEUE));
    }

    @Test
    void aLargeFrameSpansMergeableBuffers() throws Exception {
        connect();
        driver.postRx(16, 2048);
        byte[] big = NetDriver.frame(9000, 3);
        peerSends(big);
        assertArrayEquals(big, driver.awaitFrames(1, 10).get(0));
        assertEquals(5, driver.headers.get(0)[VnetHeader.NUM_BUFFERS], "9012 bytes in 2048-byte buffers");
        byte[] small = NetDriver.frame(100, 4);
        peerSends(small);
        assertArrayEquals(small, driver.awaitFrames(1, 10).get(0), "the next frame starts in a fresh buffer");
    }

    @Test
    void withoutMergeableBuffersAFrameLargerThanTheBufferIsDropped() throws Exception {
        connect(NetSpec.Backend.UNIX_STREAM, NetDriver.LINUX_FEATURES & ~NetFeatures.MRG_RXBUF);
        driver.postRx(4, 1526);
        peerSends(NetDriver.frame(9000, 5));
        byte[] fits = NetDriver.frame(1514, 6);
        peerSends(fits);
        List<byte[]> got = driver.awaitFrames(1, 10);
        assertArrayEquals(fits, got.get(0));
        assertEquals(1, driver.device.stats.rxDropped);
    }

    /** The guest sends {@code n} frames of {@code length} bytes, each its own fill; returns them in order. */
    private List<byte[]> sendFrames(int n, int length) {
        List<byte[]> sent = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            byte[] f = NetDriver.frame(length, i);
            sent.add(f);
            driver.send(f);
        }
        return sent;
    }

    @Test
    void aPeerThatStopsReadingHoldsOneFrameAndTheGuestWaits() throws Exception {
        connect();
        int n = 200;
        List<byte[]> sent = sendFrames(n, 60_000);
        Thread.sleep(200);
        int completed = driver.txCompleted();
        assertTrue(completed < n, "the peer reads nothing: the guest's frames wait in its queue (" + completed + " went)");
        assertTrue(driver.onLoop(driver.device::transmitWaiting), "one frame waits in the device");
        for (int i = 0; i < n; i++) {
            assertArrayEquals(sent.get(i), peerReceives(), "frame " + i);
        }
        NetDriver.await(() -> driver.txCompleted() == n, 10, "every transmit chain returned");
    }

    @Test
    void aSnapshotGivesBackTheBuffersHeldForAFrameStillArrivingAndTheFrameThenArrivesWhole() throws Exception {
        connect();
        driver.postRx(2, 2048);
        byte[] big = NetDriver.frame(9000, 7);
        peerSends(big);
        NetDriver.await(() -> driver.onLoop(driver.device::heldReceiveBuffers) == 2, 10, "two buffers held for 9012 bytes");
        int heldAfterSave = driver.onLoop(() -> {
            assertEquals(VirtioNet.STATE_BYTES, driver.device.saveState().length);
            return driver.device.heldReceiveBuffers();
        });
        assertEquals(0, heldAfterSave, "the held buffers went back to the queue");
        driver.postRx(3, 2048);
        assertArrayEquals(big, driver.awaitFrames(1, 10).get(0), "the two given back are taken again, with three more");
        assertEquals(5, driver.headers.get(0)[VnetHeader.NUM_BUFFERS]);
        assertTrue(driver.pendingUsed().isEmpty(), "no buffer came back empty");
    }

    @Test
    void aSnapshotGivesBackTheFrameThePeerHasNotTakenAndItIsSentOnceAfterwards() throws Exception {
        connect();
        int n = 200;
        List<byte[]> sent = sendFrames(n, 60_000);
        NetDriver.await(() -> driver.onLoop(driver.device::transmitWaiting), 10, "a frame waits for the peer");
        boolean waitingAfterSave = driver.onLoop(() -> {
            driver.device.saveState();
            return driver.device.transmitWaiting();
        });
        assertFalse(waitingAfterSave, "its chain went back to the queue");
        for (int i = 0; i < n; i++) {
            assertArrayEquals(sent.get(i), peerReceives(), "frame " + i + ": each frame once, in order");
        }
        NetDriver.await(() -> driver.txCompleted() == n, 10, "every transmit chain returned");
    }

    @Test
    void aRestoreTakesTheSameMacAndRefusesAnotherOrABadStateWithOneLine() throws Exception {
        byte[] state = connect().onLoop(driver.device::saveState);
        VirtioNet same = (VirtioNet) new NetFactory().create(NetSpec.unixStream(dir.resolve("peer.sock")));
        VirtioNet other = (VirtioNet) new NetFactory().create(NetSpec.unixStream(dir.resolve("peer.sock")).withMac("52:54:00:00:00:99"));
        try {
            same.restoreState(state);
            IllegalArgumentException mac = assertThrows(IllegalArgumentException.class, () -> other.restoreState(state));
            assertEquals(other.name() + ": the snapshot's card has MAC " + NetSpec.DEFAULT_MAC + ", this one 52:54:00:00:00:99",
                    mac.getMessage());
            IllegalArgumentException truncated = assertThrows(IllegalArgumentException.class,
                    () -> same.restoreState(Arrays.copyOf(state, 5)));
            assertEquals(same.name() + ": saved state has 5 bytes, not " + VirtioNet.STATE_BYTES, truncated.getMessage());
        } finally {
            same.close();
            other.close();
        }
    }

    @Test
    void aGuestThatTakesNothingStopsTheCardReadingAndGetsEverythingLater() throws Exception {
        connect();
        peer.configureBlocking(false);
        List<byte[]> sent = new ArrayList<>();
        long written = 0;
        long deadline = System.nanoTime() + 2_000_000_000L;
        ByteBuffer pending = null;
        while (System.nanoTime() < deadline && written < 64 << 20) {
            if (pending == null) {
                byte[] f = NetDriver.frame(1500, sent.size());
                sent.add(f);
                pending = ByteBuffer.allocate(4 + f.length).putInt(f.length).put(f).flip();
            }
            written += peer.write(pending);
            if (!pending.hasRemaining()) {
                pending = null;
            } else {
                Thread.sleep(1);
            }
        }
        assertTrue(written < 16 << 20, "the card must stop reading while the guest has no buffers; the peer wrote " + written);
        peer.configureBlocking(true);
        ByteBuffer rest = pending;
        Thread finisher = Thread.ofPlatform().daemon(true).start(() -> {
            try {
                while (rest != null && rest.hasRemaining()) {
                    peer.write(rest); // completes once the guest takes frames again
                }
            } catch (IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        });
        List<byte[]> got = new ArrayList<>();
        while (got.size() < sent.size()) {
            driver.postRx(200, 2048);
            got.addAll(driver.awaitFrames(Math.min(200, sent.size() - got.size()), 10));
        }
        finisher.join(10_000);
        for (int i = 0; i < sent.size(); i++) {
            assertArrayEquals(sent.get(i), got.get(i), "frame " + i + " of " + sent.size());
        }
    }

    @Test
    void hostileTransmitChainsAreDroppedAndTheCardGoesOn() throws Exception {
        connect();
        byte[] frame = NetDriver.frame(60, 7);
        List<byte[]> bad = new ArrayList<>();
        bad.add(new byte[5]); // shorter than a header
        bad.add(NetDriver.concat(new byte[VnetHeader.SIZE], new byte[13])); // shorter than an Ethernet header
        bad.add(NetDriver.concat(new byte[VnetHeader.SIZE], new byte[VnetHeader.MAX_FRAME + 1])); // too long
        bad.add(header(VnetHeader.F_NEEDS_CSUM, 0, frame)); // checksum offload not negotiated
        bad.add(header(0, VnetHeader.GSO_TCPV4, frame)); // segmentation offload not negotiated
        bad.add(header(0, 0x42, frame)); // no such gso type
        bad.add(header(VnetHeader.F_DATA_VALID, 0, frame)); // the device's flag
        for (byte[] b : bad) {
            driver.sendRaw(b);
        }
        driver.onLoop(() -> {
            int[] d = driver.tx.reserveDescriptors(1); // a buffer outside guest memory
            driver.tx.writeDescriptor(d[0], (64L << 20) - 16, 4096, 0, 0);
            driver.tx.makeAvailable(d[0]);
            driver.device.queueNotify(VirtioNet.TX);
        });
        driver.sendChain(List.of(new byte[VnetHeader.SIZE], Arrays.copyOf(frame, 20), Arrays.copyOfRange(frame, 20, 60)));
        assertArrayEquals(frame, peerReceives(), "the one good frame, split over three buffers, goes out whole");
        NetDriver.await(() -> driver.txCompleted() == bad.size() + 2, 10, "every chain returned");
        assertEquals(bad.size() + 1, driver.device.stats.txDropped);
        assertEquals(List.of(), driver.resets);
        driver.send(frame);
        assertArrayEquals(frame, peerReceives());
    }

    private static byte[] header(int flags, int gso, byte[] frame) {
        byte[] h = new byte[VnetHeader.SIZE];
        h[VnetHeader.FLAGS] = (byte) flags;
        h[VnetHeader.GSO_TYPE] = (byte) gso;
        h[VnetHeader.GSO_SIZE] = 100;
        return NetDriver.concat(h, frame);
    }

    @Test
    void hostileReceiveBuffersGoBackEmptyAndTheFrameFindsAGoodOne() throws Exception {
        connect();
        driver.onLoop(() -> {
            driver.rx.addWritable(4); // cannot hold a header
            int[] d = driver.rx.reserveDescriptors(1); // outside guest memory
            driver.rx.writeDescriptor(d[0], (64L << 20) + 4096, 2048, MockDriverQueue.DESC_F_WRITE, 0);
            driver.rx.makeAvailable(d[0]);
            driver.rx.addReadable(new byte[2048]); // nothing to write into
            driver.device.queueNotify(VirtioNet.RX);
        });
        byte[] first = NetDriver.frame(200, 8);
        peerSends(first);
        NetDriver.await(() -> driver.device.stats.rxDropped >= 1, 10, "the frame met the bad buffer");
        driver.postRx(2, 2048);
        byte[] second = NetDriver.frame(300, 9);
        peerSends(second);
        List<byte[]> got = driver.awaitFrames(1, 10);
        assertArrayEquals(second, got.get(0));
        assertEquals(List.of(), driver.resets);
    }

    @Test
    void shortFramesFromThePeerAreDropped() throws Exception {
        connect();
        driver.postRx(4, 2048);
        peerWrites(new byte[] {0, 0, 0, 0}); // an empty frame
        peerSends(new byte[5]);
        byte[] good = NetDriver.frame(64, 10);
        peerSends(good);
        assertArrayEquals(good, driver.awaitFrames(1, 10).get(0));
    }

    @Test
    void aLengthPastTheMostTakesTheCardDownAndTheVmGoesOn() throws Exception {
        connect();
        driver.postRx(4, 2048);
        peerWrites(new byte[] {0x7f, (byte) 0xff, (byte) 0xff, (byte) 0xff});
        NetDriver.await(() -> driver.device.down() != null, 10, "the card goes down");
        assertTrue(driver.device.down().contains("2147483647 bytes"), driver.device.down());
        assertEquals(0, driver.status(), "link down");
        assertTrue(driver.interrupts.contains(InterruptTrigger.CONFIG), "the driver hears of it");
        driver.send(NetDriver.frame(60, 11));
        NetDriver.await(() -> driver.txCompleted() == 1, 10, "frames sent after still come back");
        assertEquals(-1, peer.read(ByteBuffer.allocate(16)), "the card closed its socket");
    }

    @Test
    void aStreamEndingInTheMiddleOfAFrameTakesTheCardDown() throws Exception {
        connect();
        driver.postRx(4, 2048);
        peerWrites(NetDriver.concat(new byte[] {0, 0, 0, 100}, new byte[50]));
        peer.close();
        NetDriver.await(() -> driver.device.down() != null, 10, "the card goes down");
        assertTrue(driver.device.down().contains("middle of a frame"), driver.device.down());
    }

    @Test
    void aVanishingPeerTakesTheCardDown() throws Exception {
        connect();
        peer.close();
        NetDriver.await(() -> driver.device.down() != null, 10, "the card goes down");
        assertTrue(driver.device.down().contains("closed the connection"), driver.device.down());
        driver.send(NetDriver.frame(60, 12));
        NetDriver.await(() -> driver.txCompleted() == 1, 10, "the guest's queue never wedges");
    }

    @Test
    void aPeerThatVanishesWhileTheGuestTakesNothingTakesTheCardDown() throws Exception {
        connect();
        for (int i = 0; i < 3; i++) {
            peerSends(NetDriver.frame(1000, i));
        }
        Thread.sleep(100);
        peer.close();
        NetDriver.await(() -> driver.device.down() != null, 10, "the card goes down, not spin on the hang-up");
        assertNotNull(driver.device.down());
    }
}
