package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.Inet6Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.PortForward;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.api.VsockSpec;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * Transparent socket impersonation end to end: one boot of krun's kernel (with its TSI patch, turned on by
 * the device's {@code krun_tsi=inet}) through krun's own VMM, and tsitest (src/test/guest) doing every check
 * from inside the guest against servers this test runs on the host's loopback: TCP and UDP echo reached as
 * host.krun.internal, a transfer each way checked byte for byte, 100 concurrent connections, a refused
 * connect, published guest listeners reached from the host, a host port taken behind a published one, the
 * resolv.conf and hosts files the device gives the guest, a DNS query, and IPv6 where the host has ::1.
 * Unix TSI is on too ({@code krun_tsi=inet,unix}): a unix echo server in this test's folder is reached by its
 * path (the guest's root does not have it: the kernel hands over the path), a missing path fails with
 * ENOENT, and once the guest binds a listener at that same path its connects stay in the guest (the host's
 * server counts what reached it); socketpair and guest-local listeners keep working.
 * Everything stays on this machine.
 */
class TsiLinuxGuestTest {
    /** Guest ports: published for tsitest's own checks, for the host's client, and behind a taken host port. */
    private static final int GUEST_PORT = 8080;
    private static final int GUEST_PORT_FOR_HOST = 8081;
    private static final int GUEST_PORT_TAKEN = 8082;
    /** What the DNS responder answers for any A query (TEST-NET-2). */
    private static final byte[] DNS_ANSWER = {(byte) 198, 51, 100, 7};

    @TempDir
    Path dir;

    private final List<AutoCloseable> servers = new ArrayList<>();
    private volatile boolean stopping;

    @AfterEach
    void stopServers() throws Exception {
        stopping = true;
        for (AutoCloseable s : servers) {
            s.close();
        }
    }

    @Test
    void guestSocketsReachTheHostThroughKrunsVmm() throws Exception {
        LinuxGuest.assumeKvm();
        long bytes = transferBytes();
        ServerSocket tcpEcho = serve(new ServerSocket(0, 256, InetAddress.getLoopbackAddress()));
        DatagramSocket udpEcho = serve(new DatagramSocket(0, InetAddress.getLoopbackAddress()));
        DatagramSocket dns = serve(new DatagramSocket(0, InetAddress.getLoopbackAddress()));
        ServerSocket tcp6Echo = loopback6();
        int closed = freePort();
        int published = freePort();
        int publishedForHost = freePort();
        int taken = freePort();
        ServerSocketChannel unixEcho = serve(ServerSocketChannel.open(StandardProtocolFamily.UNIX));
        Path unixPath = dir.resolve("h.sock");
        unixEcho.bind(UnixDomainSocketAddress.of(unixPath));
        acceptUnix(unixEcho);
        acceptLoop(tcpEcho);
        acceptLoop(tcp6Echo);
        echoDatagrams(udpEcho);
        answerDns(dns);

        VsockSpec spec = VsockSpec.create().withTsi(VsockSpec.Tsi.INET_AND_UNIX)
                .withPublished(new PortForward(published, GUEST_PORT, PortForward.Protocol.TCP))
                .withPublished(new PortForward(published, GUEST_PORT, PortForward.Protocol.UDP))
                .withPublished(new PortForward(publishedForHost, GUEST_PORT_FOR_HOST, PortForward.Protocol.TCP))
                .withPublished(new PortForward(taken, GUEST_PORT_TAKEN, PortForward.Protocol.TCP))
                .withPublished(new PortForward(taken, GUEST_PORT_TAKEN, PortForward.Protocol.UDP));
        // -W: a check counts as hung after half the guest's time (5 minutes by default, not tsitest's 1: a loaded
        // kvm-pvm host; longer for a long transfer); -T: times per check
        long watchdog = Long.getLong("krun.tsi.test.seconds", 600) / 2;
        List<String> args = new ArrayList<>(List.of("/usr/local/bin/tsitest", "-W", "" + watchdog, "-T", "-N", "-R",
                "-t", "" + tcpEcho.getLocalPort(), "-u", "" + udpEcho.getLocalPort(), "-c", "" + closed,
                "-b", "" + bytes, "-k", "100", "-p", GUEST_PORT + ":" + published, "-e", "" + GUEST_PORT_TAKEN,
                "-d", "" + dns.getLocalPort(), "-l", "" + GUEST_PORT_FOR_HOST, "-U", unixPath.toString()));
        if (tcp6Echo != null) {
            args.addAll(List.of("-6", "" + tcp6Echo.getLocalPort()));
        } else {
            System.out.println("*** this host has no IPv6 loopback: the [2001:db8::1] -> [::1] check is skipped ***");
        }

        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        KrunService krun = LinuxGuest.krun(new VsockFactory());
        VmExit exit;
        CompletableFuture<String> fromHost;
        try (VirtualMachine vm = krun.create(LinuxGuest.config(args.toArray(String[]::new))
                .root(testRootfs(dir.resolve("rootfs"))).device(spec).console(ConsoleSpec.pipes(out, err, false)).build())) {
            // Taken after the VM was made (which checks published ports free) and before the guest listens:
            // its listen() and bind() on GUEST_PORT_TAKEN must fail with EADDRINUSE.
            serve(new ServerSocket(taken, 1, InetAddress.getLoopbackAddress()));
            serve(new DatagramSocket(taken, InetAddress.getLoopbackAddress()));
            fromHost = CompletableFuture.supplyAsync(() -> connectFromHost(publishedForHost));
            vm.start();
            try {
                exit = vm.waitFor(Duration.ofSeconds(Long.getLong("krun.tsi.test.seconds", 600)));
            } catch (TimeoutException e) {
                vm.kill();
                throw new AssertionError("the guest did not finish\n" + out.toString(StandardCharsets.UTF_8)
                        + err.toString(StandardCharsets.UTF_8));
            }
        }
        String guestOut = out.toString(StandardCharsets.UTF_8);
        String report = exit + "\n--- stdout\n" + guestOut + "--- stderr\n" + err.toString(StandardCharsets.UTF_8);
        for (String l : guestOut.lines().toList()) {
            System.out.println("[tsi guest] " + l);
        }
        assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), report);
        List<String> lines = guestOut.lines().toList();
        for (String check : List.of("tsi_active_as_asked", "tcp_loopback4", "udp_loopback", "listen_port0_reached_locally",
                "no_socket_leak", "tcp_host", "tcp_host_nonblocking_epoll", "tcp_host_refused", "tcp_host_transfer",
                "tcp_host_concurrent", "tcp_host_write_then_close", "udp_host", "published_listener", "published_udp",
                "published_port_taken", "host_name", "resolv_conf", "dns_query_to_host", "published_listener_from_host",
                "af_unix_untouched", "unix_host", "unix_host_missing_enoent", "unix_host_relative_path",
                "unix_guest_listener_stays_local")) {
            assertTrue(lines.stream().anyMatch(l -> l.equals("ok " + check) || l.startsWith("ok " + check + " ")),
                    check + " did not pass\n" + report);
        }
        if (tcp6Echo != null) {
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("ok tcp_host_ipv6 ")), report);
        }
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("ok tsi_active_as_asked TSI on")), report);
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("ok tcp_host_transfer " + bytes + " bytes each way")), report);
        assertTrue(lines.stream().anyMatch(l -> l.startsWith("ok tcp_host_concurrent 100 connections")), report);
        String resolv = HostResolvers.resolvConf(HostResolvers.HOST_RESOLV_CONF);
        if (resolv != null) {
            String expected = String.join(",", resolv.lines().filter(l -> l.startsWith("nameserver "))
                    .map(l -> l.substring("nameserver ".length())).toList());
            assertTrue(lines.stream().anyMatch(l -> l.equals("ok resolv_conf nameservers=" + expected)),
                    "the guest's resolv.conf names the host's resolvers " + expected + "\n" + report);
        }
        assertEquals("from-guest", fromHost.get(30, TimeUnit.SECONDS), "the host's client of the published guest port");
        assertEquals(3, unixConnections.get(), "unix connections that reached the host's server (unix_host 2, "
                + "unix_host_relative_path 1; none from the guest's own listener at the same path)\n" + report);
        assertEquals(0, exit.status(), report);
    }

    /**
     * 100 MiB where guest code runs natively; 8 MiB where kvm-pvm interprets guest kernel code. A long run
     * there: -Dkrun.tsi.test.bytes=104857600 -Dkrun.tsi.test.seconds=3600 (a check may then take half of it).
     */
    private static long transferBytes() {
        try (var kvm = org.krun.hv.kvm.internal.KvmHypervisor.open()) {
            long bytes = Long.getLong("krun.tsi.test.bytes", kvm.capabilities().hardwareVirtualization() ? 100L << 20 : 8L << 20);
            if (bytes < 100L << 20) {
                System.out.println("*** this host interprets guest kernel code (kvm-pvm): a TSI transfer of " + (bytes >> 20)
                        + " MiB each way instead of 100 MiB ***");
            }
            return bytes;
        }
    }

    private <T extends AutoCloseable> T serve(T server) {
        servers.add(server);
        return server;
    }

    private static int freePort() throws IOException {
        try (ServerSocket s = new ServerSocket(0, 1, InetAddress.getLoopbackAddress());
                DatagramSocket d = new DatagramSocket(s.getLocalPort(), InetAddress.getLoopbackAddress())) {
            return d.getLocalPort();
        } catch (java.net.BindException e) {
            return freePort(); // the UDP port of that number was taken: another number
        }
    }

    /** A TCP echo server on [::1], or null where the host has no IPv6 loopback. */
    private ServerSocket loopback6() {
        try {
            return serve(new ServerSocket(0, 16, Inet6Address.getByName("::1")));
        } catch (IOException e) {
            return null;
        }
    }

    private void acceptLoop(ServerSocket server) {
        if (server == null) {
            return;
        }
        Thread.ofVirtual().start(() -> {
            while (!stopping) {
                try {
                    Socket c = server.accept();
                    Thread.ofVirtual().start(() -> echo(c));
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    /** Connections the host's unix echo server accepted. */
    private final AtomicInteger unixConnections = new AtomicInteger();

    /** Accepts and echoes unix connections, counting them. */
    private void acceptUnix(ServerSocketChannel server) {
        Thread.ofVirtual().start(() -> {
            while (!stopping) {
                try {
                    SocketChannel c = server.accept();
                    unixConnections.incrementAndGet();
                    Thread.ofVirtual().start(() -> {
                        try (c) {
                            ByteBuffer buf = ByteBuffer.allocate(65536);
                            while (c.read(buf) > 0) {
                                buf.flip();
                                while (buf.hasRemaining()) {
                                    c.write(buf);
                                }
                                buf.clear();
                            }
                        } catch (IOException e) {
                            // the guest reset it
                        }
                    });
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    /** What the last connection that started with W sent after it (tsitest's write-then-close check). */
    private final AtomicLong lastCount = new AtomicLong(-1);

    /**
     * Echoes a connection; when the client ends its side, ends its own. A connection whose first byte is W is
     * counted instead, and one whose first byte is Q gets that count back (echo_servers.py's protocol).
     */
    private void echo(Socket c) {
        try (c; InputStream in = c.getInputStream(); OutputStream o = c.getOutputStream()) {
            int first = in.read();
            if (first == 'W') {
                long n = 0;
                byte[] buf = new byte[65536];
                for (int r; (r = in.read(buf)) > 0;) {
                    n += r;
                }
                lastCount.set(n);
                return;
            }
            if (first == 'Q') {
                o.write(Long.toString(lastCount.get()).getBytes(StandardCharsets.US_ASCII));
                return;
            }
            if (first < 0) {
                return;
            }
            o.write(first);
            byte[] buf = new byte[65536];
            for (int r; (r = in.read(buf)) > 0;) {
                o.write(buf, 0, r);
            }
            c.shutdownOutput();
        } catch (IOException e) {
            // the guest reset it
        }
    }

    private void echoDatagrams(DatagramSocket s) {
        Thread.ofVirtual().start(() -> {
            byte[] buf = new byte[65536];
            while (!stopping) {
                try {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    s.receive(p);
                    s.send(new DatagramPacket(p.getData(), p.getLength(), p.getSocketAddress()));
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    /** Answers every query with its question and one A record, {@link #DNS_ANSWER} (RFC 1035 §4.1). */
    private void answerDns(DatagramSocket s) {
        Thread.ofVirtual().start(() -> {
            byte[] buf = new byte[512];
            while (!stopping) {
                try {
                    DatagramPacket p = new DatagramPacket(buf, buf.length);
                    s.receive(p);
                    int end = 12;
                    while (end < p.getLength() && buf[end] != 0) {
                        end += (buf[end] & 0xff) + 1;
                    }
                    end += 5; // the root label, QTYPE, QCLASS
                    if (p.getLength() < 12 || end > p.getLength()) {
                        continue;
                    }
                    byte[] a = Arrays.copyOf(buf, end + 16);
                    a[2] = (byte) 0x81; // QR, RD
                    a[3] = (byte) 0x80; // RA, NOERROR
                    a[6] = 0;
                    a[7] = 1; // ANCOUNT
                    a[8] = a[9] = a[10] = a[11] = 0;
                    byte[] rr = {(byte) 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
                    System.arraycopy(rr, 0, a, end, rr.length);
                    System.arraycopy(DNS_ANSWER, 0, a, end + rr.length, 4);
                    s.send(new DatagramPacket(a, a.length, p.getSocketAddress()));
                } catch (IOException e) {
                    return;
                }
            }
        });
    }

    /**
     * The host's client of a published guest port: the host port is listened on only once the guest
     * listens, so it retries refused connects until then, sends "from-host\n" and returns the answer's line.
     */
    private String connectFromHost(int port) {
        while (!stopping) {
            try (Socket s = new Socket()) {
                s.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 10_000);
                s.setSoTimeout(120_000);
                s.getOutputStream().write("from-host\n".getBytes(StandardCharsets.US_ASCII));
                byte[] answer = s.getInputStream().readNBytes(11);
                return new String(answer, StandardCharsets.US_ASCII).trim();
            } catch (ConnectException e) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException ie) {
                    return "interrupted";
                }
            } catch (IOException e) {
                return e.toString();
            }
        }
        return "stopped";
    }

    private static Path testRootfs(Path root) throws Exception {
        Process cp = new ProcessBuilder("cp", "-a", LinuxGuest.rootfs().toRealPath() + "/.", root.toString())
                .inheritIO().start();
        assertEquals(0, cp.waitFor());
        Path bin = Files.createDirectories(root.resolve("usr/local/bin"));
        Path program = Path.of(TsiLinuxGuestTest.class.getResource("/guest/tsitest").toURI());
        Files.copy(program, bin.resolve("tsitest"), StandardCopyOption.REPLACE_EXISTING);
        Files.setPosixFilePermissions(bin.resolve("tsitest"), PosixFilePermissions.fromString("rwxr-xr-x"));
        return root;
    }
}
