package org.krun.device.net.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.invoke.MethodHandle;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.SocketException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.NetSpec;
import org.krun.api.VmExit;
import org.krun.posix.Posix;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One boot of krun's kernel with two network cards on two TAP devices ({@code --net tap=NAME}, virtio-net
 * headers, offloads on), checked from inside by netcheck (src/test/guest) against a network namespace this
 * test makes:
 * <ul>
 * <li>eth0 (10.213.X.2/24) pings the namespace's 10.213.X.1, sends it a sized TCP stream whose checksum the
 * namespace answers, receives one from it, and has a UDP datagram echoed;
 * <li>eth1 (10.214.X.2/24) pings 10.214.X.1 and has a UDP datagram echoed: two cards on two TAPs, both reached;
 * <li>the guest's kernel shows the offloads the TAP backend offered as active on both cards (checksum, TSO,
 * hardware GRO), the card's kernel argument set its {@code net.ipv4.tcp_min_tso_segs} to 44, and eth0's
 * counters show its frames averaged more than 4 MTUs going out (TSO frames sized by that, not by the slow
 * guest's pacing rate) and more than one coming in (the TAP's GSO); the test prints each way's MiB/s, frames
 * per MiB and the guest's CPU per MiB (netcheck's {@code cpu} steps) and both checksums;
 * <li>eth2 (10.215.X.2/24) is a unixgram card ({@code --net unixgram=PATH}) whose peer is a third-party
 * program, socat, bridging a unix datagram socket to a TAP it makes inside the namespace (10.215.X.1, no
 * packet-information header): eth2 pings 10.215.X.1 and sends and receives a TCP stream (checksummed) across
 * it, so krun's datagram framing works with a peer other than our own test code (issue 13).
 * </ul>
 *
 * <p>How the network stays on this machine and leaves nothing behind: the test makes a namespace of its own
 * ({@code krun-tap-XXXX}) and two persistent TAP devices with unique names ({@code krtapXXXXa/b}) in the
 * host's namespace, without addresses. krun (in this JVM, so in the host's namespace, where TUNSETIFF finds a
 * device by name) attaches to them; as soon as a device shows krun's virtio-net headers in its
 * {@code tun_flags} the test moves it into its namespace (a TAP keeps its attached descriptor across the
 * move) and gives it its address there. Nothing in the host's namespace gets an address, route, firewall
 * rule, bridge or sysctl; the namespace has no route but its two /24s and no link outside, so the guest can
 * reach only it. The namespace's servers are sockets this test makes on a thread that joined the namespace
 * ({@code setns}), bound to its wildcard address. Afterwards, even on failure, the devices are deleted in
 * either namespace and the namespace is removed.
 *
 * <p>The socat peer runs inside the namespace ({@code ip netns exec}) after the test disabled IPv6 there (so
 * the TAP sends nothing before krun is there); it binds {@code peer.sock} in the test's directory, which krun
 * connects to, and sends to {@code link.sock}, a symlink the test makes to krun's own socket as soon as krun
 * bound it ({@code java.io.tmpdir/krun-net-*}/krun.sock, a name not known in advance; socat's
 * {@code SOCKET-DATAGRAM} accepts datagrams from any sender, {@code UNIX-SENDTO} would not take krun's). socat
 * is stopped by its own pid afterwards; its TAP goes with it and with the namespace.
 *
 * <p>Needs root with CAP_NET_ADMIN, /dev/net/tun and iproute2's {@code ip}; otherwise SKIPPED, loudly. Without
 * socat ({@code apt-get install socat}) only the unixgram card is SKIPPED, loudly; the TAP cards still run.
 */
class TapLinuxGuestTest {

    private static final String MAC0 = NetSpec.defaultMac(0);
    private static final String MAC1 = NetSpec.defaultMac(1);
    private static final String MAC2 = NetSpec.defaultMac(2);
    private static final int SINK_PORT = 5001;
    private static final int SOURCE_PORT = 5002;
    private static final int ECHO_PORT = 9999;
    private static final int SOCAT_SINK_PORT = 5003;
    private static final int SOCAT_SOURCE_PORT = 5004;
    private static final int CLONE_NEWNET = 0x40000000;
    private static final int IFF_VNET_HDR = 0x4000;
    private static final int CAP_NET_ADMIN = 12;

    @TempDir
    Path dir;

    /**
     * Bytes each way over eth0: 100 MiB where guest code runs natively; on hosts that interpret guest kernel
     * code (kvm-pvm) less ({@code -Dkrun.tap.test.bytes} overrides), since the guest's own TCP stack is the
     * bottleneck there.
     */
    private static long transferBytes() {
        try (var kvm = org.krun.hv.kvm.internal.KvmHypervisor.open()) {
            long bytes = Long.getLong("krun.tap.test.bytes", kvm.capabilities().hardwareVirtualization() ? 100L << 20 : 1L << 20);
            System.out.println("*** TAP transfer: " + bytes + " bytes each way"
                    + (bytes < 100L << 20 ? " instead of 100 MiB (this host interprets guest kernel code: kvm-pvm)" : "") + " ***");
            return bytes;
        }
    }

    /**
     * eth0's MTU, on the card and on its TAP: 1500 ({@code -Dkrun.tap.test.mtu} overrides; bench/net part 5 runs
     * 100 MiB each way at 65520, where the namespace's replies come in 64 KiB frames too).
     */
    private static int mtu() {
        return Integer.getInteger("krun.tap.test.mtu", 1500);
    }

    /**
     * Bytes each way over eth2 (socat in user space moves every frame, without offloads): 256 KiB
     * ({@code -Dkrun.tap.test.socat.bytes} overrides).
     */
    private static long socatBytes() {
        return Long.getLong("krun.tap.test.socat.bytes", 256L << 10);
    }

    @Test
    void aGuestWithTwoCardsOnTwoTapsReachesANetworkNamespaceWithOffloads() throws Exception {
        LinuxGuest.assumeKvm();
        assumeTapAllowed();
        long bytes = transferBytes();
        boolean socat = socatAvailable();
        long socatBytes = socatBytes();
        // -Dkrun.tap.test.offloads=false measures the same boot without offloads (their checks are skipped then)
        boolean offloads = Boolean.parseBoolean(System.getProperty("krun.tap.test.offloads", "true"));
        int mtu0 = mtu();
        String id = HexFormat.of().toHexDigits((short) ThreadLocalRandom.current().nextInt());
        int subnet = 1 + ThreadLocalRandom.current().nextInt(254);
        String ns = "krun-tap-" + id;
        String tap0 = "krtap" + id + "a";
        String tap1 = "krtap" + id + "b";
        String host0 = "10.213." + subnet + ".1";
        String host1 = "10.214." + subnet + ".1";
        String tap2 = "krtap" + id + "c"; // socat's, inside the namespace
        String host2 = "10.215." + subnet + ".1";
        Path peer = dir.resolve("peer.sock");
        Path link = dir.resolve("link.sock");
        Process socatPeer = null;
        Path root = NetLinuxGuestTest.testRootfs(dir.resolve("rootfs"));
        List<String> log = new ArrayList<>();
        try {
            ip(log, "netns", "add", ns);
            ip(log, "-n", ns, "link", "set", "lo", "up");
            ip(log, "tuntap", "add", "dev", tap0, "mode", "tap");
            ip(log, "tuntap", "add", "dev", tap1, "mode", "tap");
            if (socat) {
                socatPeer = startSocat(log, ns, tap2, host2 + "/24", peer, link, dir.resolve("socat.log"));
            }
            Sockets s = inNamespace(ns);
            try (ExecutorService hostSide = Executors.newVirtualThreadPerTaskExecutor();
                    ServerSocket sink = s.sink();
                    ServerSocket source = s.source();
                    DatagramSocket echo = s.echo();
                    ServerSocket socatSink = s.socatSink();
                    ServerSocket socatSource = s.socatSource()) {
                CompletableFuture<String> received = CompletableFuture.supplyAsync(() -> NetLinuxGuestTest.receiveAndAnswer(sink, bytes), hostSide);
                CompletableFuture<Long> sent = CompletableFuture.supplyAsync(() -> NetLinuxGuestTest.send(source, bytes), hostSide);
                CompletableFuture<String> socatReceived = socat
                        ? CompletableFuture.supplyAsync(() -> NetLinuxGuestTest.receiveAndAnswer(socatSink, socatBytes), hostSide) : null;
                CompletableFuture<Long> socatSent = socat
                        ? CompletableFuture.supplyAsync(() -> NetLinuxGuestTest.send(socatSource, socatBytes), hostSide) : null;
                AtomicInteger echoed = new AtomicInteger();
                hostSide.execute(() -> echo(echo, echoed));
                AtomicReference<String> moved = new AtomicReference<>("not yet");
                Thread mover = Thread.ofPlatform().daemon(true).name("tap-mover").start(() -> moved.set(
                        moveWhenAttached(log, ns, tap0, host0 + "/24", mtu0) + "; " + moveWhenAttached(log, ns, tap1, host1 + "/24", 1500)));
                AtomicReference<String> linked = new AtomicReference<>("no socat");
                Thread linker = null;
                if (socat) {
                    Path tmp = Path.of(System.getProperty("java.io.tmpdir"));
                    List<Path> before = krunSocketDirs(tmp);
                    linked.set("not yet");
                    linker = Thread.ofPlatform().daemon(true).name("unixgram-linker").start(() -> linked.set(linkWhenBound(tmp, before, link)));
                }

                NetSpec card0 = NetSpec.tap(tap0).withOffloads(offloads).withMtu(mtu0).withMac(MAC0).withIpv4(NetSpec.Ipv4.parse("10.213." + subnet + ".2/24", null));
                NetSpec card1 = NetSpec.tap(tap1).withOffloads(offloads).withMac(MAC1).withIpv4(NetSpec.Ipv4.parse("10.214." + subnet + ".2/24", null));
                // eth2's steps come after eth0's "dev" snapshots that the offload checks below compare
                List<String> steps = new ArrayList<>(List.of("/usr/local/bin/netcheck", "iface:" + MAC0, "iface:" + MAC1));
                if (socat) {
                    steps.add("iface:" + MAC2);
                }
                steps.add("sysctl:net.ipv4.tcp_min_tso_segs");
                steps.addAll(List.of("offload:" + MAC0, "offload:" + MAC1, "ping:" + host0, "ping:" + host1, "dev", "cpu",
                        "put:" + host0 + ":" + SINK_PORT + ":" + bytes, "dev", "cpu",
                        "get:" + host0 + ":" + SOURCE_PORT + ":" + bytes, "dev", "cpu",
                        "udp:" + host0 + ":" + ECHO_PORT + ":hello-from-eth0",
                        "udp:" + host1 + ":" + ECHO_PORT + ":hello-from-eth1"));
                if (socat) {
                    steps.addAll(List.of("ping:" + host2, "put:" + host2 + ":" + SOCAT_SINK_PORT + ":" + socatBytes,
                            "get:" + host2 + ":" + SOCAT_SOURCE_PORT + ":" + socatBytes));
                }
                steps.addAll(List.of("dev", "kmsg"));
                var config = LinuxGuest.config().root(root).memoryMib(256).device(card0).device(card1);
                if (socat) {
                    config.device(NetSpec.unixDgram(peer, false).withMac(MAC2).withIpv4(NetSpec.Ipv4.parse(
                            "10.215." + subnet + ".2/24", null)));
                }
                long started = System.nanoTime();
                LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(new NetFactory()), config
                        .command(steps.toArray(String[]::new)), null, Duration.ofSeconds(1500));
                long seconds = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started);
                mover.join(5000);
                if (linker != null) {
                    linker.join(5000);
                }
                String out = r.out();
                out.lines().forEach(l -> System.out.println("[tap guest] " + l));
                System.out.println("[tap guest] boot to exit " + seconds + " s; TAPs: " + moved.get() + "; " + echoed
                        + " datagrams echoed; unixgram: " + linked.get());
                List<String> lines = out.lines().toList();
                assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
                assertTrue(lines.contains("iface eth0 " + MAC0 + " up 10.213." + subnet + ".2/24 " + mtu0), r.toString());
                assertTrue(lines.contains("iface eth1 " + MAC1 + " up 10.214." + subnet + ".2/24 1500"), r.toString());
                for (String card : offloads ? List.of("eth0", "eth1") : List.<String>of()) {
                    String active = lines.stream().filter(l -> l.startsWith("offload " + card + " ")).findFirst().orElse("") + " ";
                    for (String f : List.of("tx-checksum-ip-generic", "tx-tcp-segmentation", "tx-tcp6-segmentation", "rx-checksum", "rx-gro-hw")) {
                        assertTrue(active.contains(" " + f + " "), card + " has " + f + " active (the TAP backend offered it): " + active);
                    }
                }
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("ping:" + host0 + " ok")), r.toString());
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("ping:" + host1 + " ok")), r.toString());
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("put:" + host0 + ":" + SINK_PORT + ":" + bytes + " ok")), r.toString());
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("get:" + host0 + ":" + SOURCE_PORT + ":" + bytes + " ok")), r.toString());
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("udp:" + host0 + ":" + ECHO_PORT + ":hello-from-eth0 ok")), r.toString());
                assertTrue(lines.stream().anyMatch(l -> l.startsWith("udp:" + host1 + ":" + ECHO_PORT + ":hello-from-eth1 ok")), r.toString());
                assertEquals(0, r.exit().status(), r.toString());
                assertEquals(16, received.get(60, TimeUnit.SECONDS).length(), "the namespace got every byte and answered its checksum");
                assertEquals(bytes, sent.get(60, TimeUnit.SECONDS));
                if (socat) {
                    assertTrue(socatPeer.isAlive(), "socat still bridges after the guest is done");
                    assertTrue(lines.contains("iface eth2 " + MAC2 + " up 10.215." + subnet + ".2/24 1500"), r.toString());
                    assertTrue(lines.stream().anyMatch(l -> l.startsWith("ping:" + host2 + " ok")), r.toString());
                    assertTrue(lines.stream().anyMatch(l -> l.startsWith("put:" + host2 + ":" + SOCAT_SINK_PORT + ":" + socatBytes + " ok")), r.toString());
                    assertTrue(lines.stream().anyMatch(l -> l.startsWith("get:" + host2 + ":" + SOCAT_SOURCE_PORT + ":" + socatBytes + " ok")), r.toString());
                    assertEquals(16, socatReceived.get(60, TimeUnit.SECONDS).length(), "the namespace got every byte through socat and answered its checksum");
                    assertEquals(socatBytes, socatSent.get(60, TimeUnit.SECONDS));
                }
                // The offloads in use: eth0's frames each way averaged more than an MTU-sized frame could be, so
                // the guest sent TSO frames (put) and the TAP handed it GSO ones (get).
                List<long[]> eth0 = lines.stream().filter(l -> l.startsWith("dev eth0 ")).map(TapLinuxGuestTest::counters).toList();
                long txPerFrame = (eth0.get(1)[2] - eth0.get(0)[2]) / Math.max(1, eth0.get(1)[3] - eth0.get(0)[3]);
                long rxPerFrame = (eth0.get(2)[0] - eth0.get(1)[0]) / Math.max(1, eth0.get(2)[1] - eth0.get(1)[1]);
                System.out.println("[tap guest] eth0 frames during put: " + txPerFrame + " bytes on average sent; during get: "
                        + rxPerFrame + " bytes on average received");
                List<long[]> cpu = lines.stream().filter(l -> l.startsWith("cpu ")).map(TapLinuxGuestTest::cpuTicks).toList();
                System.out.println("[tap guest] eth0 " + transfer("put", lines, host0 + ":" + SINK_PORT, bytes, eth0.get(1)[3] - eth0.get(0)[3], cpu.get(0), cpu.get(1))
                        + "; " + transfer("get", lines, host0 + ":" + SOURCE_PORT, bytes, eth0.get(2)[1] - eth0.get(1)[1], cpu.get(1), cpu.get(2))
                        + "; MTU " + mtu0 + "; " + uptime());
                if (!offloads) {
                    System.out.println("*** offloads were off (krun.tap.test.offloads=false): their checks SKIPPED ***");
                    return;
                }
                assertTrue(lines.contains("sysctl net.ipv4.tcp_min_tso_segs 44"), "the card's kernel argument sized the guest's TSO frames: "
                        + lines.stream().filter(l -> l.startsWith("sysctl")).toList());
                // 2 segments a frame (2,896 bytes at MTU 1500) when the guest's slow pacing rate sizes them (Linux's default)
                assertTrue(txPerFrame > 4 * 1514, "the guest's TCP frames averaged more than 4 MTUs (TSO, 44 segments): " + txPerFrame);
                assertTrue(rxPerFrame > 1514, "the TAP handed the guest frames larger than an MTU (GSO): " + rxPerFrame);
            }
        } finally {
            stopSocat(log, socatPeer, dir.resolve("socat.log"));
            cleanUp(ns, tap0, tap1, tap2);
            log.forEach(l -> System.out.println("[tap host] " + l));
        }
    }

    /** Whether socat runs here; if not, says loudly that the unixgram card is SKIPPED. */
    private static boolean socatAvailable() {
        String why;
        try {
            Process p = new ProcessBuilder("socat", "-V").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            if (p.waitFor() == 0) {
                return true;
            }
            why = "socat -V failed";
        } catch (Exception e) {
            why = "socat is not installed (apt-get install socat, or scripts/host-setup.sh)";
        }
        System.err.println("*** the unixgram card through socat (issue 13) was SKIPPED because " + why + "; the TAP cards still run ***");
        return false;
    }

    /**
     * Starts socat inside {@code ns} bridging a TAP it makes there ({@code tap}, {@code address}, up, no
     * packet-information header) to a unix datagram socket bound at {@code peer} that sends to {@code link};
     * IPv6 is off in the namespace first so the TAP says nothing before krun is there. Returns once
     * {@code peer} exists (krun connects to it).
     */
    private static Process startSocat(List<String> log, String ns, String tap, String address, Path peer, Path link, Path socatLog) throws Exception {
        run(log, "ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1");
        List<String> cmd = List.of("ip", "netns", "exec", ns, "socat", "-d", "-d",
                "TUN:" + address + ",tun-type=tap,iff-no-pi,iff-up,tun-name=" + tap,
                "SOCKET-DATAGRAM:1:2:0:" + unixSockaddrData(link) + ",bind=" + unixSockaddrData(peer));
        // ip netns exec execs socat: this process is socat itself
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(socatLog.toFile()).start();
        log.add(String.join(" ", cmd) + " -> pid " + p.pid());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (!Files.exists(peer)) {
            if (!p.isAlive() || System.nanoTime() > deadline) {
                p.destroyForcibly();
                throw new IllegalStateException("socat did not bind " + peer + ": " + Files.readString(socatLog));
            }
            Thread.sleep(20);
        }
        return p;
    }

    /** socat's data form of a unix sockaddr after its family: "x" and the hex of the path with its NUL. */
    private static String unixSockaddrData(Path path) {
        return "x" + HexFormat.of().formatHex(path.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8)) + "00";
    }

    /** Stops socat by its own pid and shows what it said (but for its per-datagram notices). */
    private static void stopSocat(List<String> log, Process socat, Path socatLog) {
        if (socat == null) {
            return;
        }
        try {
            socat.destroy();
            if (!socat.waitFor(5, TimeUnit.SECONDS)) {
                socat.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
            log.add("socat (pid " + socat.pid() + ") stopped: " + socat.exitValue());
            if (Files.exists(socatLog)) {
                Files.readAllLines(socatLog).stream().filter(l -> !l.contains("received packet") && !l.contains("local address"))
                        .forEach(l -> log.add("socat: " + l));
            }
        } catch (Exception e) {
            log.add("stopping socat: " + e);
        }
    }

    /** The krun-net-* directories DatagramBackend made in {@code tmp} so far. */
    private static List<Path> krunSocketDirs(Path tmp) {
        try (var dirs = Files.list(tmp)) {
            return dirs.filter(d -> d.getFileName().toString().startsWith("krun-net-")).toList();
        } catch (java.io.IOException e) {
            return List.of();
        }
    }

    /**
     * Waits (2 minutes at most) until krun bound its unixgram socket (a new krun-net-* directory in {@code tmp}
     * with krun.sock), then makes {@code link}, where socat sends, a symlink to it.
     */
    private static String linkWhenBound(Path tmp, List<Path> before, Path link) {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        try {
            while (System.nanoTime() < deadline) {
                for (Path d : krunSocketDirs(tmp)) {
                    if (!before.contains(d) && Files.exists(d.resolve("krun.sock"))) {
                        Files.createSymbolicLink(link, d.resolve("krun.sock"));
                        return link + " -> " + d.resolve("krun.sock");
                    }
                }
                Thread.sleep(20);
            }
            return "krun never bound its unixgram socket in " + tmp;
        } catch (Exception e) {
            return "linking " + link + ": " + e;
        }
    }

    private static void run(List<String> log, String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        int rc = p.waitFor();
        log.add(String.join(" ", cmd) + (rc == 0 ? "" : " -> " + rc + " " + out));
        if (rc != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + ": " + out);
        }
    }

    /** user, system, softirq ticks from netcheck's "cpu user U system S idle I irq Q softirq F". */
    private static long[] cpuTicks(String line) {
        String[] w = line.split(" ");
        return new long[] {Long.parseLong(w[2]), Long.parseLong(w[4]), Long.parseLong(w[10])};
    }

    /**
     * "put 1.0 MiB in 7.4 s, 0.14 MiB/s, 379 frames/MiB, guest CPU 5.9 s/MiB (user 0.1 system 3.8 softirq 2.0), checksum C":
     * one transfer's figures from netcheck's step line, the card's frame count and the guest's CPU ticks (HZ=100).
     */
    private static String transfer(String kind, List<String> lines, String target, long bytes, long frames, long[] cpuBefore, long[] cpuAfter) {
        String[] w = lines.stream().filter(l -> l.startsWith(kind + ":" + target + ":" + bytes + " ok ")).findFirst()
                .orElse("? ok -1 ?").split(" ");
        double mib = bytes / 1048576.0;
        double seconds = Long.parseLong(w[2]) / 1000.0;
        double[] cpu = new double[3];
        for (int i = 0; i < 3; i++) {
            cpu[i] = (cpuAfter[i] - cpuBefore[i]) / 100.0 / mib;
        }
        return String.format("%s %.1f MiB in %.1f s, %.3f MiB/s, %.0f frames/MiB, guest CPU %.2f s/MiB (user %.2f system %.2f softirq %.2f), checksum %s",
                kind, mib, seconds, mib / seconds, frames / mib, cpu[0] + cpu[1] + cpu[2], cpu[0], cpu[1], cpu[2], w.length > 3 ? w[3] : "?");
    }

    private static String uptime() {
        try {
            return "load " + Files.readString(Path.of("/proc/loadavg")).trim();
        } catch (java.io.IOException e) {
            return "load unknown";
        }
    }

    /** rx bytes, rx frames, tx bytes, tx frames from netcheck's "dev NAME rx B bytes P packets E errs D drop, tx B bytes P packets ..." */
    private static long[] counters(String line) {
        String[] w = line.split(" ");
        return new long[] {Long.parseLong(w[3]), Long.parseLong(w[5]), Long.parseLong(w[12]), Long.parseLong(w[14])};
    }

    /** Skips, loudly, unless this process may make TAP devices and network namespaces. */
    private static void assumeTapAllowed() throws Exception {
        String why = null;
        long caps = Files.readAllLines(Path.of("/proc/self/status")).stream().filter(l -> l.startsWith("CapEff:"))
                .map(l -> Long.parseUnsignedLong(l.substring(7).trim(), 16)).findFirst().orElse(0L);
        if (!"root".equals(System.getProperty("user.name")) || (caps & 1L << CAP_NET_ADMIN) == 0) {
            why = "it does not run as root with CAP_NET_ADMIN";
        } else if (!Files.exists(Path.of("/dev/net/tun"))) {
            why = "the host has no /dev/net/tun";
        } else {
            try {
                if (new ProcessBuilder("ip", "-V").redirectErrorStream(true).start().waitFor() != 0) {
                    why = "iproute2's ip does not run";
                }
            } catch (java.io.IOException e) {
                why = "iproute2's ip is not installed (apt-get install iproute2)";
            }
        }
        if (why != null) {
            String message = "the TAP guest test was SKIPPED because " + why;
            System.err.println("*** " + message + " ***");
            Assumptions.abort(message);
        }
    }

    /** The namespace's servers, made on a thread that joined the namespace: a socket belongs to its maker's. */
    private record Sockets(ServerSocket sink, ServerSocket source, DatagramSocket echo, ServerSocket socatSink, ServerSocket socatSource) {
    }

    private static Sockets inNamespace(String ns) throws Exception {
        AtomicReference<Object> made = new AtomicReference<>();
        Thread t = Thread.ofPlatform().name("netns-" + ns).start(() -> {
            try {
                int fd = Posix.open("/run/netns/" + ns, Posix.O_RDONLY | Posix.O_CLOEXEC);
                Posix.check("open /run/netns/" + ns, fd);
                try {
                    int r = (int) SETNS.invokeExact(fd, CLONE_NEWNET);
                    if (r != 0) {
                        throw new IllegalStateException("setns " + ns + " failed");
                    }
                } finally {
                    Posix.close(fd);
                }
                ServerSocket sink = new ServerSocket();
                sink.bind(new InetSocketAddress(SINK_PORT), 4);
                ServerSocket source = new ServerSocket();
                source.bind(new InetSocketAddress(SOURCE_PORT), 4);
                ServerSocket socatSink = new ServerSocket();
                socatSink.bind(new InetSocketAddress(SOCAT_SINK_PORT), 4);
                ServerSocket socatSource = new ServerSocket();
                socatSource.bind(new InetSocketAddress(SOCAT_SOURCE_PORT), 4);
                made.set(new Sockets(sink, source, new DatagramSocket(ECHO_PORT), socatSink, socatSource));
            } catch (Throwable e) {
                made.set(e);
            }
        });
        t.join();
        if (made.get() instanceof Sockets s) {
            return s;
        }
        throw new IllegalStateException("sockets in namespace " + ns, (Throwable) made.get());
    }

    private static final MethodHandle SETNS = Linker.nativeLinker().downcallHandle(
            Linker.nativeLinker().defaultLookup().find("setns").orElseThrow(), FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));

    /** Echoes every datagram to its sender until the socket closes. */
    private static void echo(DatagramSocket s, AtomicInteger echoed) {
        byte[] buf = new byte[2048];
        while (!s.isClosed()) {
            DatagramPacket p = new DatagramPacket(buf, buf.length);
            try {
                s.receive(p);
                s.send(new DatagramPacket(buf, p.getLength(), p.getSocketAddress()));
                echoed.incrementAndGet();
            } catch (SocketException e) {
                return; // closed
            } catch (java.io.IOException e) {
                // one datagram lost: the guest tries again
            }
        }
    }

    /**
     * Waits (2 minutes at most) until krun attached to {@code tap} (its tun_flags show virtio-net headers), then
     * moves it into {@code ns} and gives it {@code address} there.
     */
    private static String moveWhenAttached(List<String> log, String ns, String tap, String address, int mtu) {
        Path flags = Path.of("/sys/class/net", tap, "tun_flags");
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(2);
        try {
            while (System.nanoTime() < deadline) {
                if (Files.exists(flags) && (Integer.decode(Files.readString(flags).trim()) & IFF_VNET_HDR) != 0) {
                    ip(log, "link", "set", tap, "netns", ns);
                    ip(log, "-n", ns, "addr", "add", address, "dev", tap);
                    ip(log, "-n", ns, "link", "set", tap, "mtu", String.valueOf(mtu));
                    ip(log, "-n", ns, "link", "set", tap, "up");
                    return tap + " attached and moved to " + ns + " as " + address;
                }
                Thread.sleep(20);
            }
            return tap + ": krun never attached";
        } catch (Exception e) {
            return tap + ": " + e;
        }
    }

    private static synchronized void ip(List<String> log, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("ip"));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes()).trim();
        int rc = p.waitFor();
        log.add(String.join(" ", cmd) + (rc == 0 ? "" : " -> " + rc + " " + out));
        if (rc != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + ": " + out);
        }
    }

    /** Deletes the devices wherever they are and the namespace; nothing the test made survives it. */
    private static void cleanUp(String ns, String... taps) {
        List<List<String>> steps = new ArrayList<>();
        for (String tap : taps) {
            steps.add(List.of("ip", "-n", ns, "link", "del", tap));
            steps.add(List.of("ip", "link", "del", tap));
        }
        steps.add(List.of("ip", "netns", "del", ns));
        for (List<String> step : steps) {
            try {
                new ProcessBuilder(step).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start().waitFor();
            } catch (Exception e) {
                System.err.println("cleaning up: " + step + ": " + e);
            }
        }
        for (String tap : taps) {
            assertTrue(!Files.exists(Path.of("/sys/class/net", tap)), tap + " is gone from the host");
        }
    }
}
