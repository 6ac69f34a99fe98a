package org.krun.device.net.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.NetSpec;
import org.krun.api.PortForward;
import org.krun.api.VmExit;
import org.krun.device.virtiofs.internal.FsFactory;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One boot of krun's kernel with two network cards, checked from inside by netcheck (src/test/guest), and a
 * second run restored from the template the boot made (the root on virtio-fs with a guest-memory overlay, so
 * the init can write resolv.conf): the cards probed but unconfigured at the template point, a new passt and a
 * new unixgram peer, DHCP, the static address, HTTP and the peer's echo again. The boot:
 * <ul>
 * <li>eth0 on passt, which krun starts: the guest finds the card by its MAC, gets 10.0.2.15/24 and its default
 * route by DHCP (krun's init), and reaches TCP servers on the host's loopback through passt's gateway
 * address (10.0.2.2), sending and receiving a sized payload whose checksum both sides compare;
 * <li>a name through passt: the guest resolves {@value #TEST_NAME} with its C library's resolver, which reads
 * the {@code /etc/resolv.conf} krun's init wrote (name server 10.0.2.2, the card's {@code dns=}, which passt's
 * DHCP hands out too), and passt's gateway mapping carries the query to a name server this test runs on the
 * host's 127.0.0.1:53 (the real resolver path; the host's own resolver is never touched). krun's default
 * 10.0.2.3 (passt's {@code --dns-forward} to the first resolver in the host's /etc/resolv.conf) is not used
 * here, as this test's passt reads the host's real resolv.conf: PasstDnsTest checks it without a VM, with
 * passt in a mount namespace of its own. Port 53 needs root: without it this check is skipped loudly;
 * <li>eth1 on a unix datagram socket whose peer is this test (as gvproxy would be): a static address from the
 * kernel command line, and the peer answers the guest's ARP request and echoes its UDP datagram, so frames
 * flow both ways;
 * <li>{@code -p} through passt: a guest TCP server and a guest UDP echo server, published on host ports, are
 * reached from the host's 127.0.0.1.
 * </ul>
 */
class NetLinuxGuestTest {

    private static final String MAC0 = NetSpec.defaultMac(0);
    private static final String MAC1 = NetSpec.defaultMac(1);
    private static final byte[] PEER_MAC = {0x02, 0, 0, 0, 0x09, 0x01};
    private static final byte[] PEER_IP = {10, 9, 0, 1};
    private static final int ECHO_PORT = 9999;
    /** The guest's servers that -p publishes, and what the TCP one sends. */
    private static final int GUEST_TCP_PORT = 7070;
    private static final int GUEST_UDP_PORT = 7071;
    private static final int PUBLISHED_BYTES = 64 * 1024;
    /** The file the guest fetches over HTTP through passt. */
    private static final int HTTP_BYTES = 256 * 1024;
    /** The test-only name the guest resolves, and the address the test's name server gives it (TEST-NET-1, never contacted). */
    private static final String TEST_NAME = "krun-test.invalid";
    private static final String TEST_NAME_ADDRESS = "192.0.2.53";

    @TempDir
    Path dir;

    /**
     * Bytes each way: 100 MiB where guest code runs natively. On hosts that interpret guest kernel code
     * (kvm-pvm) the guest's own TCP stack is the bottleneck (1 MiB from the guest took 90 s on a loaded
     * 2-core host, 1 MiB to it 5 s), and 1 MiB checks the same paths: dozens of 64 KiB frames each way over
     * mergeable buffers.
     */
    private static long bytesForThisHost() {
        try (var kvm = org.krun.hv.kvm.internal.KvmHypervisor.open()) {
            return Long.getLong("krun.net.test.bytes", kvm.capabilities().hardwareVirtualization() ? 100L << 20 : 1L << 20);
        }
    }

    @Test
    void aGuestWithTwoCardsReachesTheHostThroughPasstAndAUnixDatagramPeer() throws Exception {
        LinuxGuest.assumeKvm();
        if (Passt.find(Passt.PROGRAM).isEmpty()) {
            String message = "the virtio-net guest test was SKIPPED because passt is not installed (apt-get install passt)";
            System.err.println("*** " + message + " ***");
            Assumptions.abort(message);
        }
        long bytes = bytesForThisHost();
        if (bytes < 100L << 20) {
            System.out.println("*** this host interprets guest kernel code (kvm-pvm): payloads of " + (bytes >> 20)
                    + " MiB each way instead of 100 MiB ***");
        }
        Path root = testRootfs(dir.resolve("rootfs"));
        Path peerPath = dir.resolve("peer.sock");
        Path templates = dir.resolve("templates");
        KrunService krun = LinuxGuest.krun(new NetFactory(), new FsFactory());
        DnsResponder dns = nameServer();
        // The host's side, a thread each: the common pool has one thread on a 2-core host and would run them in
        // turn. Closed last, once the sockets its tasks may still wait on are closed.
        try (ExecutorService hostSide = Executors.newVirtualThreadPerTaskExecutor();
                ServerSocket sink = new ServerSocket(0, 4, InetAddress.getLoopbackAddress());
                ServerSocket source = new ServerSocket(0, 4, InetAddress.getLoopbackAddress());
                DatagramPeer peer = new DatagramPeer(peerPath);
                PatternServer web = new PatternServer(HTTP_BYTES)) {
            CompletableFuture<String> received = CompletableFuture.supplyAsync(() -> receiveAndAnswer(sink, bytes), hostSide);
            CompletableFuture<Long> sent = CompletableFuture.supplyAsync(() -> send(source, bytes), hostSide);
            Thread peerThread = Thread.ofPlatform().daemon(true).name("unixgram-peer").start(peer::run);
            int hostTcp = freePort(false);
            int hostUdp = freePort(true);
            AtomicBoolean guestRuns = new AtomicBoolean(true);
            CompletableFuture<String> fetched = CompletableFuture.supplyAsync(() -> fetchPublished(hostTcp, guestRuns), hostSide);
            CompletableFuture<String> echoed = CompletableFuture.supplyAsync(() -> echoPublished(hostUdp, guestRuns), hostSide);

            NetSpec passt = NetSpec.passt().withMac(MAC0)
                    .withPublished(new PortForward(hostTcp, GUEST_TCP_PORT, PortForward.Protocol.TCP))
                    .withPublished(new PortForward(hostUdp, GUEST_UDP_PORT, PortForward.Protocol.UDP));
            List<String> steps = new java.util.ArrayList<>(List.of("/usr/local/bin/netcheck", "iface:" + MAC0, "iface:" + MAC1, "route"));
            if (dns != null) {
                passt = passt.withDns(List.of(InetAddress.ofLiteral(Passt.GATEWAY)));
                steps.add("resolve:" + TEST_NAME + ":" + TEST_NAME_ADDRESS);
            }
            NetSpec gram = NetSpec.unixDgram(peerPath, false).withMac(MAC1)
                    .withIpv4(NetSpec.Ipv4.parse("10.9.0.2/24", null));
            long started = System.nanoTime();
            LinuxGuest.Result r;
            try {
                r = LinuxGuest.run(krun, LinuxGuest.config().templateCache(templates).ephemeralRoot(true)
                        .root(root).memoryMib(256).device(passt).device(gram)
                        .command(java.util.stream.Stream.concat(steps.stream(), java.util.stream.Stream.of(
                                "serve:" + GUEST_TCP_PORT + ":" + PUBLISHED_BYTES, "userve:" + GUEST_UDP_PORT + ":120", "dev",
                                "put:10.0.2.2:" + sink.getLocalPort() + ":" + bytes,
                                "get:10.0.2.2:" + source.getLocalPort() + ":" + bytes,
                                "http:10.0.2.2:" + web.port() + ":" + HTTP_BYTES,
                                "udp:10.9.0.1:" + ECHO_PORT + ":hello-from-eth1", "dev", "kmsg")).toArray(String[]::new)), null, Duration.ofSeconds(900));
            } finally {
                if (dns != null) {
                    dns.close();
                }
                guestRuns.set(false); // the host's clients of the published ports give up
            }
            long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started);
            peer.stop();
            peerThread.join(5000);
            String out = r.out();
            for (String l : out.lines().toList()) {
                System.out.println("[net guest] " + l);
            }
            String tcpPublished = fetched.get(30, TimeUnit.SECONDS);
            String udpPublished = echoed.get(30, TimeUnit.SECONDS);
            System.out.println("[net guest] boot to exit " + seconds + " s; unixgram peer: " + peer.framesFromGuest
                    + " frames from the guest, " + peer.arpAnswered + " ARP requests answered, " + peer.echoed
                    + " datagrams echoed; -p " + hostTcp + ":" + GUEST_TCP_PORT + "/tcp: " + tcpPublished + "; -p " + hostUdp
                    + ":" + GUEST_UDP_PORT + "/udp: " + udpPublished);
            assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
            List<String> lines = out.lines().toList();
            assertTrue(lines.contains("iface eth0 " + MAC0 + " up 10.0.2.15/24 65520"), "passt's card, by DHCP:\n" + r);
            assertTrue(lines.contains("iface eth1 " + MAC1 + " up 10.9.0.2/24 1500"), "the static card:\n" + r);
            assertTrue(lines.contains("route 10.0.2.2 eth0"), "the default route DHCP gave:\n" + r);
            if (dns != null) {
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("resolve:" + TEST_NAME + ":" + TEST_NAME_ADDRESS + " ok")),
                        "the guest resolved " + TEST_NAME + " through passt (" + dns.answered + " A queries answered):\n" + r);
            }
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("put:10.0.2.2:" + sink.getLocalPort() + ":" + bytes + " ok")), r.toString());
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("get:10.0.2.2:" + source.getLocalPort() + ":" + bytes + " ok")), r.toString());
            String fetchedFile = "http:10.0.2.2:" + web.port() + ":" + HTTP_BYTES + " ok ";
            assertTrue(lines.stream().anyMatch(l -> l.startsWith(fetchedFile) && l.endsWith(" " + web.checksum())),
                    "the guest fetched the host's file over HTTP with its checksum " + web.checksum() + ":\n" + r);
            assertEquals(1, web.requests.get(), "one GET reached the host's HTTP server");
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("udp:10.9.0.1:" + ECHO_PORT + ":hello-from-eth1 ok")), r.toString());
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("serve:" + GUEST_TCP_PORT + ":" + PUBLISHED_BYTES + " ok")), r.toString());
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("userve:" + GUEST_UDP_PORT + ":120 ok")), r.toString());
            assertTrue(tcpPublished.startsWith("ok"), "the host reached the guest's TCP server through -p: " + tcpPublished);
            assertTrue(udpPublished.startsWith("ok"), "the host reached the guest's UDP server through -p: " + udpPublished);
            assertEquals(0, r.exit().status(), r.toString());
            assertEquals(16, received.get(60, TimeUnit.SECONDS).length(), "the host got every byte and answered its checksum");
            assertEquals(bytes, sent.get(60, TimeUnit.SECONDS));
            assertTrue(peer.framesFromGuest.get() >= 2 && peer.arpAnswered.get() >= 1 && peer.echoed.get() >= 1,
                    "the unixgram peer saw the guest's frames");

            // The first run made a template at its init's template point (cards probed, nothing configured). A
            // second run restores it with a new passt and a new unixgram peer; the init configures both again.
            Path peer2Path = dir.resolve("peer2.sock");
            try (DatagramPeer peer2 = new DatagramPeer(peer2Path); RestoreLog restores = RestoreLog.capture()) {
                Thread peer2Thread = Thread.ofPlatform().daemon(true).name("unixgram-peer-2").start(peer2::run);
                NetSpec gram2 = NetSpec.unixDgram(peer2Path, false).withMac(MAC1).withIpv4(NetSpec.Ipv4.parse("10.9.0.2/24", null));
                LinuxGuest.Result again = LinuxGuest.run(krun, LinuxGuest.config().templateCache(templates).ephemeralRoot(true)
                        .root(root).memoryMib(256).device(passt).device(gram2)
                        .command("/usr/local/bin/netcheck", "iface:" + MAC0, "iface:" + MAC1, "route",
                                "http:10.0.2.2:" + web.port() + ":" + HTTP_BYTES, "udp:10.9.0.1:" + ECHO_PORT + ":hello-again"),
                        null, Duration.ofSeconds(600));
                peer2.stop();
                peer2Thread.join(5000);
                for (String l : again.out().lines().toList()) {
                    System.out.println("[net guest, restored] " + l);
                }
                assertEquals(1, restores.restored(), "the second run restored the template: " + restores.lines());
                assertEquals(VmExit.commandExited(0), again.exit(), again.toString());
                List<String> againLines = again.out().lines().toList();
                assertTrue(againLines.contains("iface eth0 " + MAC0 + " up 10.0.2.15/24 65520"), "DHCP again:\n" + again);
                assertTrue(againLines.contains("iface eth1 " + MAC1 + " up 10.9.0.2/24 1500"), again.toString());
                assertTrue(againLines.contains("route 10.0.2.2 eth0"), again.toString());
                assertTrue(againLines.stream().anyMatch(l -> l.startsWith(fetchedFile) && l.endsWith(" " + web.checksum())), again.toString());
                assertEquals(2, web.requests.get(), "a second GET reached the host's HTTP server");
                assertTrue(againLines.stream().anyMatch(l -> l.startsWith("udp:10.9.0.1:" + ECHO_PORT + ":hello-again ok")), again.toString());
            }
        }
    }

    /** The core's DEBUG lines about templates while it is open (logback, the tests' logging). */
    private static final class RestoreLog implements AutoCloseable {
        private final ch.qos.logback.classic.Logger logger =
                (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("org.krun.vmm.internal.Machine");
        private final ch.qos.logback.core.read.ListAppender<ch.qos.logback.classic.spi.ILoggingEvent> events =
                new ch.qos.logback.core.read.ListAppender<>();
        private final ch.qos.logback.classic.Level level = logger.getLevel();

        static RestoreLog capture() {
            RestoreLog log = new RestoreLog();
            log.events.start();
            log.logger.addAppender(log.events);
            log.logger.setLevel(ch.qos.logback.classic.Level.DEBUG);
            return log;
        }

        List<String> lines() {
            return events.list.stream().map(e -> e.getFormattedMessage()).toList();
        }

        long restored() {
            return lines().stream().filter(l -> l.contains(": restored from ")).count();
        }

        @Override
        public void close() {
            logger.setLevel(level);
            logger.detachAppender(events);
            events.stop();
        }
    }

    /** The test's name server on 127.0.0.1:53 for {@value #TEST_NAME}, or null (said loudly) when port 53 cannot be had. */
    private static DnsResponder nameServer() {
        try {
            return DnsResponder.start(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), 53), TEST_NAME,
                    InetAddress.ofLiteral(TEST_NAME_ADDRESS));
        } catch (java.io.IOException e) {
            System.err.println("*** the DNS check through passt was SKIPPED: no name server on 127.0.0.1:53 (" + e.getMessage()
                    + "; it needs root and a free port 53) ***");
            return null;
        }
    }

    /** A port free on the host now, TCP or UDP, for passt to publish. */
    private static int freePort(boolean udp) throws java.io.IOException {
        if (udp) {
            try (DatagramSocket s = new DatagramSocket(0)) {
                return s.getLocalPort();
            }
        }
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /**
     * The host's side of the published TCP server: connects to 127.0.0.1:{@code port} and sends its request
     * line until a connection brings the whole pattern (passt accepts at once, and closes again while nothing
     * listens in the guest). Debian 12's passt completes a connection to the guest only once the host sent
     * something (it does not acknowledge the guest's SYN-ACK before), so a server that speaks first would wait.
     */
    private static String fetchPublished(int port, AtomicBoolean running) {
        int attempts = 0;
        String last = "no attempt";
        while (running.get()) {
            attempts++;
            try (Socket c = new Socket()) {
                c.connect(new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), port), 5000);
                c.setSoTimeout(20_000);
                c.getOutputStream().write("GET /pattern\n".getBytes(StandardCharsets.US_ASCII)); // the client speaks first
                byte[] got = c.getInputStream().readAllBytes();
                ByteBuffer want = ByteBuffer.allocate(PUBLISHED_BYTES);
                new Pattern().fill(want, PUBLISHED_BYTES);
                if (java.util.Arrays.equals(got, want.array())) {
                    return "ok after " + attempts + " attempts";
                }
                last = got.length + " bytes" + (got.length == PUBLISHED_BYTES ? ", not the pattern" : "");
            } catch (java.io.IOException e) {
                last = e.toString();
            }
            sleep(2000);
        }
        return "FAIL after " + attempts + " attempts, the last: " + last;
    }

    /** The host's side of the published UDP echo server: sends to 127.0.0.1:{@code port} until the echo comes. */
    private static String echoPublished(int port, AtomicBoolean running) {
        byte[] text = "hello-published".getBytes(StandardCharsets.US_ASCII);
        int attempts = 0;
        try (DatagramSocket s = new DatagramSocket(0, InetAddress.getLoopbackAddress())) {
            s.setSoTimeout(1000);
            while (running.get()) {
                attempts++;
                s.send(new DatagramPacket(text, text.length, InetAddress.getLoopbackAddress(), port));
                DatagramPacket p = new DatagramPacket(new byte[64], 64);
                try {
                    s.receive(p);
                    if (java.util.Arrays.equals(text, 0, text.length, p.getData(), 0, p.getLength())) {
                        return "ok after " + attempts + " datagrams";
                    }
                } catch (java.net.SocketTimeoutException e) {
                    // not yet: the guest is still booting
                }
                sleep(1000);
            }
        } catch (java.io.IOException e) {
            return "FAIL: " + e;
        }
        return "FAIL: no echo to " + attempts + " datagrams";
    }

    private static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** Reads the guest's stream to its end and answers with its checksum, then closes. */
    static String receiveAndAnswer(ServerSocket sink, long bytes) {
        try (Socket c = sink.accept()) {
            byte[] buf = new byte[64 * 1024];
            long sum = Fnv.START;
            long total = 0;
            int n;
            var in = c.getInputStream();
            while ((n = in.read(buf)) >= 0) {
                total += n;
                sum = Fnv.update(sum, buf, n);
            }
            String answer = String.format("%016x", sum);
            c.getOutputStream().write(answer.getBytes(StandardCharsets.US_ASCII));
            c.getOutputStream().flush();
            return total == bytes ? answer : "short: " + total;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Sends the guest the pattern, then closes. */
    static long send(ServerSocket source, long bytes) {
        try (Socket c = source.accept()) {
            Pattern p = new Pattern();
            ByteBuffer buf = ByteBuffer.allocate(64 * 1024).order(ByteOrder.LITTLE_ENDIAN);
            var out = c.getOutputStream();
            long done = 0;
            while (done < bytes) {
                int n = (int) Math.min(buf.capacity(), bytes - done);
                buf.clear();
                p.fill(buf, n);
                out.write(buf.array(), 0, n);
                done += n;
            }
            out.flush();
            return done;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * The guest's neighbour on eth1, behind a unix datagram socket as gvproxy would be: answers ARP requests
     * for {@link #PEER_IP} and echoes UDP datagrams sent to it at {@link #ECHO_PORT}.
     */
    private static final class DatagramPeer implements AutoCloseable {
        final AtomicInteger framesFromGuest = new AtomicInteger();
        final AtomicInteger arpAnswered = new AtomicInteger();
        final AtomicInteger echoed = new AtomicInteger();
        private final AtomicBoolean running = new AtomicBoolean(true);
        private final int fd;
        private final Arena arena = Arena.ofShared();
        private final MemorySegment buf = arena.allocate(70_000);
        private final MemorySegment out = arena.allocate(70_000);

        DatagramPeer(Path path) {
            fd = PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_DGRAM, 0);
            Posix.check("socket", fd);
            Posix.check("bind " + path, PosixNet.bind(fd, SockAddr.Unix.of(path.toString())));
        }

        void run() {
            while (running.get()) {
                PosixNet.Received r = PosixNet.recvFrom(fd, buf, PosixNet.MSG_DONTWAIT);
                if (r.bytes() == -Errno.EAGAIN) {
                    try {
                        Thread.sleep(2);
                    } catch (InterruptedException e) {
                        return;
                    }
                    continue;
                }
                if (r.bytes() < 14) {
                    continue;
                }
                byte[] f = buf.asSlice(0, r.bytes()).toArray(ValueLayout.JAVA_BYTE);
                if (HexFormat.ofDelimiter(":").formatHex(f, 6, 12).equals(MAC1)) {
                    framesFromGuest.incrementAndGet();
                }
                byte[] reply = answer(f);
                if (reply != null) {
                    MemorySegment.copy(reply, 0, out, ValueLayout.JAVA_BYTE, 0, reply.length);
                    PosixNet.sendTo(fd, out.asSlice(0, reply.length), r.from());
                }
            }
        }

        private byte[] answer(byte[] f) {
            int type = (f[12] & 0xff) << 8 | (f[13] & 0xff);
            ByteBuffer b = ByteBuffer.wrap(f);
            if (type == 0x0806 && f.length >= 42 && b.getShort(20) == 1 && java.util.Arrays.equals(f, 38, 42, PEER_IP, 0, 4)) {
                byte[] a = f.clone();
                System.arraycopy(f, 6, a, 0, 6); // to the asker
                System.arraycopy(PEER_MAC, 0, a, 6, 6);
                a[21] = 2; // reply
                System.arraycopy(PEER_MAC, 0, a, 22, 6); // sender: us
                System.arraycopy(PEER_IP, 0, a, 28, 4);
                System.arraycopy(f, 22, a, 32, 10); // target: the asker's MAC and IP
                arpAnswered.incrementAndGet();
                return a;
            }
            if (type == 0x0800 && f.length >= 42 && f[23] == 17 && java.util.Arrays.equals(f, 30, 34, PEER_IP, 0, 4)) {
                int ihl = (f[14] & 15) * 4;
                int udp = 14 + ihl;
                if ((b.getShort(udp + 2) & 0xffff) != ECHO_PORT) {
                    return null;
                }
                byte[] e = f.clone();
                System.arraycopy(f, 6, e, 0, 6);
                System.arraycopy(PEER_MAC, 0, e, 6, 6);
                System.arraycopy(f, 30, e, 26, 4); // source: us
                System.arraycopy(f, 26, e, 30, 4); // destination: the guest
                System.arraycopy(f, udp, e, udp + 2, 2); // ports swapped
                System.arraycopy(f, udp + 2, e, udp, 2);
                e[udp + 6] = 0; // no UDP checksum
                e[udp + 7] = 0;
                e[24] = 0;
                e[25] = 0;
                int sum = 0;
                for (int i = 14; i < 14 + ihl; i += 2) {
                    sum += (e[i] & 0xff) << 8 | (e[i + 1] & 0xff);
                }
                while (sum >> 16 != 0) {
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                e[24] = (byte) (~sum >> 8);
                e[25] = (byte) ~sum;
                echoed.incrementAndGet();
                return e;
            }
            return null;
        }

        void stop() {
            running.set(false);
        }

        @Override
        public void close() {
            running.set(false);
            Posix.close(fd);
        }
    }

    /** xorshift64 from seed 42, eight bytes little-endian at a time, as netcheck makes it. */
    /**
     * An HTTP server on the host's 127.0.0.1 (the JDK's) serving {@code /pattern}: {@code bytes} of the pattern with
     * their Content-Length; the guest reaches it as passt's gateway address.
     */
    static final class PatternServer implements AutoCloseable {
        final com.sun.net.httpserver.HttpServer server;
        final byte[] body;
        final java.util.concurrent.atomic.AtomicInteger requests = new java.util.concurrent.atomic.AtomicInteger();

        PatternServer(int bytes) throws java.io.IOException {
            ByteBuffer b = ByteBuffer.allocate(bytes).order(ByteOrder.LITTLE_ENDIAN);
            new Pattern().fill(b, bytes);
            body = b.array();
            server = com.sun.net.httpserver.HttpServer.create(
                    new java.net.InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 4);
            server.createContext("/pattern", exchange -> {
                requests.incrementAndGet();
                exchange.sendResponseHeaders(200, body.length);
                try (var out = exchange.getResponseBody()) {
                    out.write(body);
                }
            });
            server.start();
        }

        int port() {
            return server.getAddress().getPort();
        }

        String checksum() {
            return String.format("%016x", Fnv.update(Fnv.START, body, body.length));
        }

        @Override
        public void close() {
            server.stop(0);
        }
    }

    static final class Pattern {
        private long state = 42;

        void fill(ByteBuffer buf, int n) {
            for (int i = 0; i < n; i += 8) {
                long x = state;
                x ^= x << 13;
                x ^= x >>> 7;
                x ^= x << 17;
                state = x;
                for (int j = 0; j < 8 && i + j < n; j++) {
                    buf.put((byte) (x >>> (8 * j)));
                }
            }
        }
    }

    /** 64-bit FNV-1a, as netcheck computes it. */
    static final class Fnv {
        static final long START = 0xcbf29ce484222325L;

        static long update(long h, byte[] b, int n) {
            for (int i = 0; i < n; i++) {
                h ^= b[i] & 0xff;
                h *= 0x100000001b3L;
            }
            return h;
        }
    }

    static Path testRootfs(Path root) throws Exception {
        Process cp = new ProcessBuilder("cp", "-a", LinuxGuest.rootfs().toRealPath() + "/.", root.toString())
                .inheritIO().start();
        assertEquals(0, cp.waitFor());
        Path bin = Files.createDirectories(root.resolve("usr/local/bin"));
        Path program = Path.of(NetLinuxGuestTest.class.getResource("/guest/netcheck").toURI());
        Files.copy(program, bin.resolve("netcheck"), StandardCopyOption.REPLACE_EXISTING);
        Files.setPosixFilePermissions(bin.resolve("netcheck"), PosixFilePermissions.fromString("rwxr-xr-x"));
        return root;
    }
}
