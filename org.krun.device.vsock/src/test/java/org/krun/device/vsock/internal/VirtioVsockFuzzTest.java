package org.krun.device.vsock.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.DatagramChannel;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;
import org.krun.posix.SockAddr;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-vsock (virtio 1.2 §5.10) and of transparent socket impersonation
 * (TSI.md) with a hostile guest: packets of any op, type, cid, port, length and credit, short and split
 * headers, payloads larger than the packet, REQUESTs for connections that exist, RW without a connection,
 * credit that lies; TSI requests and datagram frames of every op and family, well-formed, refused
 * (version, op, family, kind, sizes) and split across packets at any byte; rx buffers of any size, tiny
 * ones included, and garbage chains; resets; while the host side accepts, writes, closes and echoes, and
 * the event loop reports readiness the sockets do not have.
 *
 * <p>Every host socket the device makes stays on this machine: the guest names only the host alias, the
 * host's loopback, "any", a unix path in a scratch folder, or an address of a length no family has (the
 * model never lets a request's or frame's stated lengths differ from its bytes, so no payload byte can be
 * read as an address). The test's own servers are the only ones that answer.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds} (descriptors and threads back where they were
 * after every input): every tx chain comes back at once; every packet the device writes is a whole,
 * well-formed header from the host's cid to the guest's, within its buffer, its length the bytes that follow;
 * the device never sends more payload on a connection than an honest guest's credit allows; the device
 * holds at most {@link VsockSession#MAX_CONNECTIONS} connections.
 */
class VirtioVsockFuzzTest {

    private static final long GUEST_CID = 3;
    private static final long MAP_PORT = 1024;
    private static final int MAX_STEPS = 64;
    private static final long RAM = 8 << 20;

    private static final TestGuestMemory MEMORY = TestGuestMemory.create(RAM);
    private static final Fixture FIXTURE = new Fixture();

    static {
        FuzzBounds.quietLogs("org.krun.device.vsock");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-vsock",
            FuzzBounds.Limits.defaults().withAllocatedPerInput(24L << 20), input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void everyPacketIsAnsweredWithinCreditAndNoSocketOutlivesTheDevice(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** The host side: the test's own servers, made once, on loopback and in a scratch folder. */
    private static final class Fixture {
        final ServerSocketChannel tcp;
        final int tcpPort;
        final DatagramChannel udp;
        final int udpPort;
        final Path dir;
        final ServerSocketChannel unix;
        final Path unixPath;
        /** A port nothing listens on (taken and let go), for refused connects. */
        final int closedPort;

        Fixture() {
            try {
                tcp = ServerSocketChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 512);
                tcp.configureBlocking(false);
                tcpPort = ((InetSocketAddress) tcp.getLocalAddress()).getPort();
                udp = DatagramChannel.open().bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                udp.configureBlocking(false);
                udpPort = ((InetSocketAddress) udp.getLocalAddress()).getPort();
                dir = Files.createTempDirectory("krun-vsock-fuzz");
                dir.toFile().deleteOnExit();
                unixPath = dir.resolve("map.sock");
                unixPath.toFile().deleteOnExit();
                unix = ServerSocketChannel.open(StandardProtocolFamily.UNIX).bind(UnixDomainSocketAddress.of(unixPath), 512);
                unix.configureBlocking(false);
                try (ServerSocketChannel probe = ServerSocketChannel.open()) {
                    probe.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0));
                    closedPort = ((InetSocketAddress) probe.getLocalAddress()).getPort();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

    /** What the guest believes of one of its connections. */
    private static final class Stream {
        /** Bytes of payload the device sent on it since the guest's REQUEST. */
        long received;
        /** The credit the guest gave: its buffer and the count it said it consumed, in its last packet. */
        long bufAlloc;
        long fwdCntSaid;
        /** Whether the guest gave its credit honestly every time (else the credit check does not apply). */
        boolean honest = true;
        /** For a TSI connection: what its next bytes must be (a request, frames, or anything). */
        TsiState tsi = TsiState.NONE;
    }

    private enum TsiState {
        NONE, REQUEST, FRAMES, ANY, DONE
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final VirtioVsock device;
        private MockDriverQueue rx;
        private MockDriverQueue tx;
        private MockDriverQueue event;
        private Virtqueue txQueue;
        private FakeDeviceContext context;
        private final Map<Long, Integer> rxSizes = new HashMap<>();
        private final Map<List<Long>, Stream> streams = new HashMap<>();
        private final List<SocketChannel> accepted = new ArrayList<>();
        private boolean garbage;

        Scenario(FuzzInput in) {
            this.in = in;
            MEMORY.clear();
            VsockSpec spec = VsockSpec.create().withGuestCid(GUEST_CID)
                    .withTsi(in.bool() ? VsockSpec.Tsi.INET_AND_UNIX : VsockSpec.Tsi.INET)
                    .withPort(new VsockPort(MAP_PORT, FIXTURE.unixPath, false));
            device = (VirtioVsock) new VsockFactory().create(spec);
            activate();
        }

        private void activate() {
            MEMORY.clear();
            rx = new MockDriverQueue(MEMORY, VirtioVsock.QUEUE_SIZE);
            tx = new MockDriverQueue(MEMORY, VirtioVsock.QUEUE_SIZE);
            event = new MockDriverQueue(MEMORY, 16);
            boolean eventIdx = in.bool();
            txQueue = tx.configuredQueue(eventIdx);
            context = new FakeDeviceContext(MEMORY.memory(), VirtioFeatures.VERSION_1,
                    List.of(rx.configuredQueue(eventIdx), txQueue, event.configuredQueue()));
            device.activate(context);
            rxSizes.clear();
            streams.clear();
            garbage = false;
        }

        void run() throws IOException {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    switch (in.below(12)) {
                        case 0, 1 -> postRx();
                        case 2 -> request();
                        case 3, 4, 5 -> payload();
                        case 6 -> control();
                        case 7 -> rawPacket();
                        case 8 -> host();
                        case 9 -> fire();
                        case 10 -> garbageRx();
                        default -> {
                            if (in.u8() < 16) {
                                device.reset();
                                activate();
                            } else if (event.freeDescriptorCount() > 0) {
                                event.addWritable(8); // the device keeps these for events it never sends
                                device.queueNotify(VirtioVsock.EVENT);
                            }
                        }
                    }
                    check();
                }
            } catch (IllegalStateException e) {
                if (!String.valueOf(e.getMessage()).startsWith("test guest memory exhausted")) {
                    throw e;
                }
                // the guest sent all the RAM it has: the scenario ends here
            } finally {
                device.close();
                for (SocketChannel s : accepted) {
                    s.close();
                }
                drainHost();
            }
        }

        // ---- the guest

        private void postRx() {
            int n = 1 + in.below(16);
            for (int i = 0; i < n && rx.freeDescriptorCount() > 0; i++) {
                int size = switch (in.below(5)) {
                    case 0 -> in.below(VsockHeader.SIZE + 1); // too small for a header
                    case 1 -> VsockHeader.SIZE;
                    case 2 -> VsockHeader.SIZE + 1 + in.below(64);
                    default -> VsockHeader.SIZE + in.pick(1024, 4096, 65536);
                };
                int head = rx.addWritable(size);
                rxSizes.put((long) head, size);
            }
            device.queueNotify(VirtioVsock.RX);
        }

        /** A chain the rules forbid: readable, out of RAM, looping, of absurd length. */
        private void garbageRx() {
            int n = 1 + in.below(3);
            if (n > rx.freeDescriptorCount()) {
                return;
            }
            garbage = true;
            int[] d = rx.reserveDescriptors(n);
            for (int i = 0; i < n; i++) {
                rx.writeDescriptor(d[i], in.pick(0L, RAM - 16, RAM, 1L << 40, in.i64()), in.pick(0, 1, 44, -1, in.i32()),
                        in.below(8) | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0), i + 1 < n ? d[i + 1] : in.below(4));
            }
            rx.makeAvailable(d[0]);
            device.queueNotify(VirtioVsock.RX);
        }

        private long guestPort() {
            return in.pick(1000L, 1001L, 1002L, 1003L, 49152L, 0xffffffffL, in.i32() & 0xffffffffL);
        }

        private long hostPort() {
            return in.pick(Tsi.PORT, Tsi.PORT, MAP_PORT, 9, VsockPort.RESERVED_LAST, in.i32() & 0xffffffffL);
        }

        private Stream stream(long guestPort, long hostPort) {
            return streams.get(List.of(guestPort, hostPort));
        }

        /** A connection request: a fresh stream as far as the guest knows. */
        private void request() {
            long g = guestPort();
            long h = hostPort();
            Stream s = new Stream();
            s.bufAlloc = in.pick(0L, 1L, 4096L, 65536L, 262144L);
            s.tsi = h == Tsi.PORT ? TsiState.REQUEST : TsiState.NONE;
            streams.put(List.of(g, h), s);
            send(VsockHeader.OP_REQUEST, g, h, new byte[0], 0, s);
        }

        /** Payload on a connection the guest knows, what the stream allows next (or anything, for plain ones). */
        private void payload() {
            if (streams.isEmpty()) {
                return;
            }
            List<Long> key = List.copyOf(streams.keySet()).get(in.below(streams.size()));
            Stream s = streams.get(key);
            byte[] bytes = switch (s.tsi) {
                case NONE, ANY -> in.bytes(in.u8() < 8 ? 65535 : 512);
                case REQUEST -> tsiRequest(s);
                case FRAMES -> tsiFrames();
                case DONE -> new byte[0];
            };
            // split anywhere: a TSI message may arrive a byte at a time
            int pieces = 1 + in.below(3);
            int at = 0;
            for (int i = 0; i < pieces; i++) {
                int end = i + 1 == pieces ? bytes.length : at + in.below(bytes.length - at + 1);
                send(VsockHeader.OP_RW, key.get(0), key.get(1), Arrays.copyOfRange(bytes, at, end), 0, s);
                at = end;
            }
        }

        private void control() {
            if (streams.isEmpty()) {
                return;
            }
            List<Long> key = List.copyOf(streams.keySet()).get(in.below(streams.size()));
            Stream s = streams.get(key);
            int op = in.pick(VsockHeader.OP_SHUTDOWN, VsockHeader.OP_RST, VsockHeader.OP_CREDIT_UPDATE,
                    VsockHeader.OP_CREDIT_REQUEST, VsockHeader.OP_RESPONSE);
            if (in.u8() < 32) {
                s.bufAlloc = in.pick(0L, 4096L, 65536L, in.i32() & 0xffffffffL);
            }
            send(op, key.get(0), key.get(1), new byte[0], in.below(4), s);
            if (op == VsockHeader.OP_RST) {
                s.tsi = TsiState.DONE;
            }
        }

        /** Sends a packet with the guest's credit for {@code s}: honest, or (sometimes) a lie. */
        private void send(int op, long g, long h, byte[] payload, int flags, Stream s) {
            long fwd = s.received;
            if (in.u8() < 8) {
                s.honest = false;
                fwd = in.i32() & 0xffffffffL;
            }
            s.fwdCntSaid = fwd;
            VsockHeader header = new VsockHeader(GUEST_CID, VsockSession.HOST_CID, g, h, payload.length,
                    VsockHeader.TYPE_STREAM, op, flags, s.bufAlloc, fwd);
            byte[] bytes = Arrays.copyOf(header.encode(), VsockHeader.SIZE + payload.length);
            System.arraycopy(payload, 0, bytes, VsockHeader.SIZE, payload.length);
            if (tx.freeDescriptorCount() == 0) {
                return; // the device stopped serving tx (it asked for a reset)
            }
            if (in.u8() < 16 && payload.length > 0 && tx.freeDescriptorCount() >= 2) {
                // header and payload in separate descriptors, as a driver may lay them out
                tx.addChain(List.of(Arrays.copyOf(bytes, VsockHeader.SIZE), payload), List.of());
            } else {
                tx.addReadable(bytes);
            }
            kickTx();
        }

        /** A packet whose header fields are anything; its payload never reaches a TSI handshake as bytes. */
        private void rawPacket() {
            if (tx.freeDescriptorCount() == 0) {
                return;
            }
            byte[] header = in.fixed(VsockHeader.SIZE);
            ByteBuffer b = ByteBuffer.wrap(header).order(ByteOrder.LITTLE_ENDIAN);
            switch (in.below(4)) {
                case 0 -> { // a header that is short
                    tx.addReadable(Arrays.copyOf(header, in.below(VsockHeader.SIZE)));
                    kickTx();
                    return;
                }
                case 1 -> b.putLong(0, GUEST_CID).putLong(8, VsockSession.HOST_CID);
                default -> {
                }
            }
            int op = b.getShort(30) & 0xffff;
            long dst = b.getInt(20) & 0xffffffffL;
            if (op == VsockHeader.OP_RW || op == VsockHeader.OP_REQUEST) {
                // RW bytes on a connection to TSI would be read as a request: the model's streams only
                b.putInt(20, (int) (dst == Tsi.PORT ? MAP_PORT : dst));
                if (op == VsockHeader.OP_REQUEST) {
                    streams.remove(List.of(b.getInt(16) & 0xffffffffL, b.getInt(20) & 0xffffffffL));
                }
            }
            byte[] payload = in.bytes(256);
            if (in.bool()) {
                b.putInt(24, payload.length + in.pick(0, 1, -1, 1 << 20));
            }
            Stream s = stream(b.getInt(16) & 0xffffffffL, b.getInt(20) & 0xffffffffL);
            if (s != null) {
                s.honest = false; // its credit fields are the fuzzer's
            }
            byte[] bytes = Arrays.copyOf(header, VsockHeader.SIZE + payload.length);
            System.arraycopy(payload, 0, bytes, VsockHeader.SIZE, payload.length);
            tx.addReadable(bytes);
            kickTx();
        }

        private void kickTx() {
            device.queueNotify(VirtioVsock.TX);
            if (context.resetReasons().isEmpty() && (txQueue.nextAvail() != txQueue.nextUsed() || txQueue.pending(MEMORY.memory()) != 0)) {
                throw new AssertionError("tx chains not returned: " + txQueue.nextAvail() + " taken, "
                        + txQueue.nextUsed() + " returned, " + txQueue.pending(MEMORY.memory()) + " waiting");
            }
            tx.usedEntriesWithoutData();
        }

        // ---- TSI messages, always with their stated lengths equal to their bytes

        private static final byte[][] V4 = {{(byte) 192, 0, 2, 1}, {(byte) 192, 0, 2, 77}, {127, 0, 0, 1}, {0, 0, 0, 0}};
        private static final byte[][] V6 = {Tsi.HOST_ALIAS_V6, Tsi.LOOPBACK_V6, new byte[16],
            {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (byte) 0xff, (byte) 0xff, (byte) 192, 0, 2, 1}};

        /** An address of the safe set, or bytes no family reads as an IP address (length not 0, 4 or 16). */
        private byte[] address(int family) {
            return switch (in.below(6)) {
                case 0 -> new byte[0];
                case 1 -> V4[in.below(V4.length)];
                case 2 -> V6[in.below(V6.length)];
                case 3 -> notAnIpAddress((in.bool() ? FIXTURE.unixPath : FIXTURE.dir.resolve("none")).toString()
                        .getBytes(StandardCharsets.UTF_8));
                case 4 -> family == SockAddr.AF_INET ? V4[in.below(V4.length)] : V6[in.below(V6.length)];
                default -> {
                    byte[] b = in.bytes(TsiMessages.MAX_ADDR + 4);
                    for (int i = 0; i < b.length; i++) {
                        b[i] = b[i] == '/' ? (byte) 'x' : b[i]; // as a unix path: relative, in the test's folder
                    }
                    yield notAnIpAddress(b);
                }
            };
        }

        /** The bytes, one longer when their length is one an IP address has (or none: "any"). */
        private static byte[] notAnIpAddress(byte[] b) {
            return b.length == 0 || b.length == 4 || b.length == 16 ? Arrays.copyOf(b, b.length + 1) : b;
        }

        private int port() {
            return in.pick(FIXTURE.tcpPort, FIXTURE.udpPort, FIXTURE.closedPort, 0, 8080);
        }

        private byte[] tsiRequest(Stream s) {
            int op = in.u8() < 8 ? in.u8() : 1 + in.below(4);
            int family = in.u8() < 8 ? in.u16() : in.pick(SockAddr.AF_INET, SockAddr.AF_INET6, SockAddr.AF_UNIX);
            byte[] addr = address(family);
            int version = in.u8() < 8 ? in.u8() : TsiMessages.VERSION;
            ByteBuffer b = ByteBuffer.allocate(TsiMessages.REQUEST_HEADER + addr.length).order(ByteOrder.LITTLE_ENDIAN);
            b.put((byte) version).put((byte) op).putShort((short) family).putShort((short) port())
                    .putShort((short) addr.length).putInt(in.pick(0, 1, 2, in.i32())).putInt(in.below(4)).put(addr);
            boolean valid = version == TsiMessages.VERSION && op >= 1 && op <= 4 && addr.length <= TsiMessages.MAX_ADDR;
            s.tsi = !valid ? TsiState.DONE
                    : op == TsiMessages.OP_DGRAM ? TsiState.FRAMES
                    : op == TsiMessages.OP_CONNECT || op == TsiMessages.OP_ACCEPT ? TsiState.ANY : TsiState.DONE;
            if (addr.length > TsiMessages.MAX_ADDR) {
                // refused for its size before it is read: keep the model simple, send just the header
                return Arrays.copyOf(b.array(), TsiMessages.REQUEST_HEADER);
            }
            return b.array();
        }

        private byte[] tsiFrames() {
            ByteBuffer out = ByteBuffer.allocate(3 * (TsiMessages.FRAME_HEADER + TsiMessages.MAX_ADDR + 2048))
                    .order(ByteOrder.LITTLE_ENDIAN);
            int n = 1 + in.below(3);
            for (int i = 0; i < n; i++) {
                int kind = in.u8() < 8 ? in.u8() : in.pick(TsiMessages.FRAME_DATA, TsiMessages.FRAME_DATA, TsiMessages.FRAME_CONNECT);
                int family = in.u8() < 8 ? in.u16() : in.pick(SockAddr.AF_INET, SockAddr.AF_INET6, SockAddr.AF_UNIX);
                byte[] addr = in.u8() < 64 ? new byte[0] : address(family);
                byte[] data = in.bytes(2048);
                if (addr.length > TsiMessages.MAX_ADDR) {
                    addr = new byte[0];
                }
                out.putShort((short) data.length).put((byte) kind).put((byte) 0).putShort((short) family)
                        .putShort((short) port()).putShort((short) addr.length).putShort((short) 0).put(addr).put(data);
                if (kind != TsiMessages.FRAME_DATA && kind != TsiMessages.FRAME_CONNECT) {
                    break; // refused: the connection ends here
                }
            }
            return Arrays.copyOf(out.array(), out.position());
        }

        // ---- the host

        private void host() throws IOException {
            switch (in.below(5)) {
                case 0 -> {
                    SocketChannel s;
                    while (accepted.size() < 64 && ((s = FIXTURE.tcp.accept()) != null || (s = FIXTURE.unix.accept()) != null)) {
                        s.configureBlocking(false);
                        accepted.add(s);
                    }
                }
                case 1 -> {
                    if (!accepted.isEmpty()) {
                        SocketChannel s = accepted.get(in.below(accepted.size()));
                        try {
                            s.write(ByteBuffer.wrap(in.bytes(in.u8() < 8 ? 65535 : 1024)));
                        } catch (IOException e) {
                            // the device closed it: as a server would see
                        }
                    }
                }
                case 2 -> {
                    if (!accepted.isEmpty()) {
                        accepted.remove(in.below(accepted.size())).close();
                    }
                }
                case 3 -> {
                    if (!accepted.isEmpty()) {
                        SocketChannel s = accepted.get(in.below(accepted.size()));
                        try {
                            s.read(ByteBuffer.allocate(65536));
                        } catch (IOException e) {
                            // reset by the device
                        }
                    }
                }
                default -> { // the UDP peer echoes what it got
                    ByteBuffer d = ByteBuffer.allocate(2048);
                    InetSocketAddress from;
                    for (int i = 0; i < 8 && (from = (InetSocketAddress) FIXTURE.udp.receive(d.clear())) != null; i++) {
                        FIXTURE.udp.send(d.flip(), from);
                    }
                }
            }
        }

        /** The event loop says a watched socket is ready (whether or not it is), for what it watches or more. */
        private void fire() {
            List<Integer> fds = context.eventLoop().watchedFds();
            if (fds.isEmpty()) {
                return;
            }
            int n = 1 + in.below(4);
            for (int i = 0; i < n; i++) {
                int fd = fds.get(in.below(fds.size()));
                int events = context.eventLoop().watchedEvents(fd);
                if (events == 0 && !in.bool()) {
                    continue;
                }
                events |= in.u8() < 32 ? in.pick(0x1, 0x4, 0x8, 0x10, 0x2000) : 0; // IN OUT ERR HUP RDHUP
                try {
                    context.eventLoop().fire(fd, events);
                } catch (IllegalStateException e) {
                    // its watch ended in an earlier handler of this round
                }
            }
        }

        private void drainHost() throws IOException {
            SocketChannel s;
            while ((s = FIXTURE.tcp.accept()) != null || (s = FIXTURE.unix.accept()) != null) {
                s.close();
            }
            ByteBuffer d = ByteBuffer.allocate(2048);
            while (FIXTURE.udp.receive(d.clear()) != null) {
                // dropped
            }
        }

        // ---- what the guest sees

        private void check() {
            if (device.connectionCount() > VsockSession.MAX_CONNECTIONS) {
                throw new AssertionError(device.connectionCount() + " connections");
            }
            for (MockDriverQueue.Used u : rx.usedEntries()) {
                Integer size = rxSizes.remove((long) u.id());
                if (size == null || garbage) {
                    continue;
                }
                long len = Integer.toUnsignedLong(u.len());
                if (len > size) {
                    throw new AssertionError("rx used length " + len + " for a buffer of " + size);
                }
                if (len == 0) {
                    continue; // a buffer too small for a header, given back empty
                }
                if (len < VsockHeader.SIZE) {
                    throw new AssertionError("a packet of " + len + " bytes, shorter than its header");
                }
                VsockHeader h = VsockHeader.decode(Arrays.copyOf(u.written(), VsockHeader.SIZE));
                if (h.srcCid() != VsockSession.HOST_CID || h.dstCid() != GUEST_CID || h.type() != VsockHeader.TYPE_STREAM
                        || h.op() < VsockHeader.OP_REQUEST || h.op() > VsockHeader.OP_CREDIT_REQUEST) {
                    throw new AssertionError("malformed packet to the guest: " + h);
                }
                if (h.len() != len - VsockHeader.SIZE || (h.len() != 0 && h.op() != VsockHeader.OP_RW)) {
                    throw new AssertionError("packet says " + h.len() + " bytes of payload, carries "
                            + (len - VsockHeader.SIZE) + ": " + h);
                }
                Stream s = stream(h.dstPort(), h.srcPort());
                if (s != null && h.op() == VsockHeader.OP_RW) {
                    s.received += h.len();
                    if (s.honest && s.received - s.fwdCntSaid > s.bufAlloc) {
                        throw new AssertionError("the device sent " + (s.received - s.fwdCntSaid)
                                + " bytes past what the guest consumed, its buffer is " + s.bufAlloc);
                    }
                }
                if (s != null && h.op() == VsockHeader.OP_RST) {
                    s.tsi = TsiState.DONE;
                }
            }
        }
    }
}
