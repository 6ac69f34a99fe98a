import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * bench/net: TCP through transparent socket impersonation (no network card: the guest kernel hands its
 * sockets to krun's VMM over vsock), measured from inside a guest booted by {@code krun run}, side by side
 * with a virtio-net card on passt.
 *
 * <p>Part 1 (any host) runs TsiBench (org.krun.device.vsock's test sources): the device in-process, no guest.
 *
 * <p>Part 2 (any host) runs NetFrameBench (org.krun.device.net's test sources): the virtio-net card in-process
 * through driver-side mock queues against a peer thread on a unix stream (passt's protocol) and a unix datagram
 * socket (gvproxy's): frames/s and MiB/s each way for 64, 1514 and 65534-byte frames. No guest, no KVM.
 *
 * <p>Part 3, the host side: three servers on 127.0.0.1 (a sink that reads to the end, a source that sends a sized
 * stream, and one that answers each connection with a byte and closes). The guest side: tsibench (built
 * here with musl-gcc, shared into the guest with {@code -v}) uploads, downloads and connects in a loop,
 * reaching the servers as host.krun.internal through TSI, and, in a second boot of the same round, through
 * a virtio-net card on passt ({@code --net passt}, the servers at passt's gateway address 10.0.2.2). Prints
 * MiB/s each way and connections/s for both side by side with the ratio, medians over the rounds, and the
 * kind of host: on kvm-pvm hosts the guest kernel's network stack and virtio drivers are interpreted, so
 * the figures there say how slow the emulator is, not how fast TSI or passt is.
 *
 * <p>Part 4 ({@link GuestIperf}): Debian's iperf3 in the guest against an iperf3 server on the host's loopback,
 * through a virtio-net card on passt, both directions, under krun ({@code --net passt}) and under QEMU's microvm
 * (its virtio-net-device on QEMU's stream netdev, connected to the same passt binary listening on a unix
 * socket), the same kernel, initramfs and guest command, alternating, medians and krun/QEMU ratios.
 *
 * <p>Part 5 ({@link #tapTransfer}, root only): a long TCP transfer each way over a TAP card with offloads, by
 * running TapLinuxGuestTest with a larger size and MTU.
 *
 * Usage: java bench/NetBench.java REPO TSIBENCH MIB|auto CONNECTIONS|auto ROUNDS VSOCK_CLASSPATH NET_CLASSPATH
 *        FRAME_SECONDS IPERF_AMOUNT|auto IPERF_ROUNDS PARTS WORK TAP_MIB TAP_MTU  (IPERF_AMOUNT: 10s for -t 10, 256K
 *        for -n 256K)
 */
public class NetBench {

    public static void main(String[] args) throws Exception {
        Path repo = Path.of(args[0]);
        Path tsibench = Path.of(args[1]);
        String host = HostInfo.hostKind();
        boolean hardware = host.startsWith("hardware");
        // "auto": sizes that take a few seconds with hardware virtualisation, about a minute each on kvm-pvm
        long bytes = (args[2].equals("auto") ? (hardware ? 256 : 4) : Long.parseLong(args[2])) << 20;
        int connections = args[3].equals("auto") ? (hardware ? 2000 : 50) : Integer.parseInt(args[3]);
        int rounds = Integer.parseInt(args[4]);
        String netClasspath = args[6];
        double frameSeconds = Double.parseDouble(args[7]);
        // "auto": 10 s a direction with hardware virtualisation; on kvm-pvm a byte count, not a time: the
        // host's iperf3 server ends a test its -t plus a grace of seconds after it began, and an emulated guest's
        // client takes far longer than that (runs with -t 5 ended "control socket has closed unexpectedly")
        String iperfAmount = args[8].equals("auto") ? (hardware ? "10s" : "256K") : args[8];
        int iperfRounds = Integer.parseInt(args[9]);
        List<String> parts = args[10].equals("all") ? List.of("1", "2", "3", "4", "5") : List.of(args[10].split(","));
        Path work = Path.of(args[11]);
        long tapMib = Long.parseLong(args[12]);
        int tapMtu = Integer.parseInt(args[13]);
        System.out.println("bench/net: TCP through TSI (guest sockets made on the host by krun's VMM, over virtio-vsock),");
        System.out.println("and through a virtio-net card on passt; the virtio-net card's own frame rate; iperf3 under krun and QEMU");
        System.out.println("host: " + host + "; " + HostInfo.cpuModel() + "; " + Runtime.getRuntime().availableProcessors() + " CPUs");
        System.out.println("parts: " + String.join(",", parts));
        if (!hardware) {
            System.out.println("NOTE: guest kernel code is interpreted on this host: the guest-side rates (parts 3 and 4) measure the");
            System.out.println("emulator running the guest's TCP stack and its vsock or virtio-net driver, not krun's TSI, passt or");
            System.out.println("QEMU. Compare only with runs on the same kind of host.");
        }
        System.out.println();
        if (parts.contains("1")) {
            System.out.println("part 1, any host: the vsock device's TSI in-process (driver-side mock queues playing the guest");
            System.out.println("kernel, the device's event loop, servers on 127.0.0.1); no guest, so comparable across hosts");
            if (!inProcess(args[5], work, "org.krun.device.vsock.internal.TsiBench", "256", "2000")) {
                System.out.println("part 1 failed");
                System.exit(1);
            }
            System.out.println();
        }
        if (parts.contains("2")) {
            System.out.println("part 2, any host: the virtio-net card in-process, no guest, no KVM: its two queues driven through");
            System.out.println("driver-side mock queues on the card's own event loop (256 transmit slots, 256 mergeable 4 KiB receive");
            System.out.println("buffers, each interrupt answered as a guest's poll would), a peer thread at the other end of a unix");
            System.out.println("socket draining (tx: guest -> peer) or feeding (rx: peer -> guest) it as fast as it can; unixstream is");
            System.out.println("--net passt's and QEMU's stream protocol (4-byte length, a socket pair), unixgram gvproxy's (a datagram");
            System.out.println("a frame); MiB/s count Ethernet frames; " + frameSeconds + " s per figure after 0.5 s of warm-up; unix backends");
            System.out.println("take no offloads, so 65534 bytes (passt's MTU 65520 + 14) is the largest frame a guest sends on them");
            System.out.println("(net.unix.max_dgram_qlen = " + readTrimmed("/proc/sys/net/unix/max_dgram_qlen")
                    + ": how many datagrams wait before a unixgram sender blocks)");
            if (!inProcess(netClasspath, work, "org.krun.device.net.internal.NetFrameBench", String.valueOf(frameSeconds))) {
                System.out.println("part 2 failed");
                System.exit(1);
            }
            System.out.println();
        }
        boolean failed = false;
        if (parts.contains("3")) {
            failed |= guestTsiAndPasst(repo, tsibench, bytes, connections, rounds, hardware);
            System.out.println();
        }
        if (parts.contains("4")) {
            failed |= GuestIperf.run(repo, work, iperfAmount, iperfRounds, hardware);
            System.out.println();
        }
        if (parts.contains("5")) {
            failed |= tapTransfer(repo, work, tapMib, tapMtu, hardware);
        }
        if (failed) {
            System.exit(1);
        }
    }

    /** Runs an in-process bench class in a JVM of its own, warnings only in its log; whether it succeeded. */
    static boolean inProcess(String classpath, Path work, String mainClass, String... args) throws IOException, InterruptedException {
        Path logConfig = work.resolve("logback-warn.xml");
        Files.writeString(logConfig, """
                <configuration>
                  <appender name="STDERR" class="ch.qos.logback.core.ConsoleAppender">
                    <target>System.err</target>
                    <encoder><pattern>%d{HH:mm:ss.SSS} %-5level [%thread] %logger{20} %msg%n</pattern></encoder>
                  </appender>
                  <root level="WARN"><appender-ref ref="STDERR"/></root>
                </configuration>
                """);
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Dlogback.configurationFile=" + logConfig, "--enable-native-access=ALL-UNNAMED", "-cp", classpath, mainClass));
        command.addAll(List.of(args));
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        System.out.print(new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        return p.waitFor() == 0;
    }

    static String readTrimmed(String file) {
        try {
            // readAllLines: Files.readString of a /proc file returned its first byte only (JDK 25, "1" for "10")
            return String.join(" ", Files.readAllLines(Path.of(file))).trim();
        } catch (IOException e) {
            return "unknown";
        }
    }

    /** Part 3: tsibench in the guest through TSI and through passt; whether any run failed. */
    static boolean guestTsiAndPasst(Path repo, Path tsibench, long bytes, int connections, int rounds, boolean hardware)
            throws IOException, InterruptedException {
        System.out.println("part 3: from inside a guest booted by krun run (tsibench.c): " + (bytes >> 20) + " MiB each way, "
                + connections + " connections one after the other; " + rounds + " round(s), each one boot with TSI (no options)");
        System.out.println("and one with a virtio-net card on passt (--net passt): the same program, servers and sizes");

        AtomicLong sunk = new AtomicLong();
        try (ServerSocket sink = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
                ServerSocket source = new ServerSocket(0, 64, InetAddress.getLoopbackAddress());
                ServerSocket closer = new ServerSocket(0, 256, InetAddress.getLoopbackAddress())) {
            serve(sink, c -> {
                byte[] buf = new byte[256 * 1024];
                try (InputStream in = c.getInputStream()) {
                    for (int r; (r = in.read(buf)) > 0;) {
                        sunk.addAndGet(r);
                    }
                }
            });
            serve(source, c -> {
                byte[] buf = new byte[256 * 1024];
                try (OutputStream o = c.getOutputStream()) {
                    for (long sent = 0; sent < bytes; sent += buf.length) {
                        o.write(buf, 0, (int) Math.min(buf.length, bytes - sent));
                    }
                }
            });
            serve(closer, c -> c.getOutputStream().write('x'));

            boolean passt = onPath("passt");
            List<Kind> kinds = new ArrayList<>(List.of(new Kind("TSI", List.of(), "192.0.2.1")));
            if (passt) {
                // A network card on passt, which krun starts; passt's gateway address is the host's loopback.
                kinds.add(new Kind("virtio-net (passt)", List.of("--net", "passt"), "10.0.2.2"));
            } else {
                System.out.println("passt is not installed (apt-get install passt): virtio-net is not measured");
            }
            boolean failed = false;
            for (int round = 1; round <= rounds; round++) {
                for (Kind k : kinds) {
                    Figures f = runGuest(repo, tsibench, k, sink.getLocalPort(), source.getLocalPort(), closer.getLocalPort(),
                            bytes, connections, sunk, round);
                    k.figures().add(f);
                    failed |= f.failure() != null;
                    System.out.printf("round %d, %-18s guest->host %.2f MiB/s, host->guest %.2f MiB/s, %.1f connections/s (krun run wall %.1f s)%s%n",
                            round, k.name() + ":", f.up(), f.down(), f.connections(), f.wall(),
                            f.failure() == null ? "" : "\n  FAILED (NaN: not measured): " + f.failure().strip().replace("\n", "\n  "));
                }
            }
            System.out.println();
            String header = String.format("%-40s %10s", "median over " + rounds + " round(s)", "TSI");
            if (kinds.size() > 1) {
                header += String.format(" %20s %16s", "virtio-net (passt)", "TSI / virtio-net");
            }
            System.out.println(header);
            row("guest -> host, MiB/s", kinds, f -> f.up());
            row("host -> guest, MiB/s", kinds, f -> f.down());
            row("connections/s (connect, 1 byte, close)", kinds, f -> f.connections());
            System.out.println();
            if (kinds.size() > 1) {
                System.out.println("Both runs: the same guest program, servers and sizes, one boot each, the same kernel; TSI through");
                System.out.println("virtio-vsock and krun's VMM making the host sockets, virtio-net through passt's user-mode stack.");
                if (!hardware) {
                    System.out.println("Without hardware virtualisation both are bound by the interpreted guest kernel: the ratio says which");
                    System.out.println("path costs the guest's kernel less code, not which is faster where guest code runs natively.");
                }
            }
            return failed;
        }
    }

    /** One way for the guest to reach the host: krun run's extra options and the host's address in the guest. */
    record Kind(String name, List<String> options, String hostAddress, List<Figures> figures) {
        Kind(String name, List<String> options, String hostAddress) {
            this(name, options, hostAddress, new ArrayList<>());
        }
    }

    /** A boot's rates (NaN where not measured) and, when it failed, why. */
    record Figures(double up, double down, double connections, double wall, String failure) {
    }

    /** One boot of krun run with tsibench in the guest; what it measured before any failure. */
    static Figures runGuest(Path repo, Path tsibench, Kind kind, int sinkPort, int sourcePort, int closerPort, long bytes,
            int connections, AtomicLong sunk, int round) throws IOException, InterruptedException {
        sunk.set(0);
        List<String> command = new ArrayList<>(List.of(repo.resolve("krun").toString(), "run", "--timeout", "1200"));
        command.addAll(kind.options());
        command.addAll(List.of("-v", tsibench.getParent() + ":/bench", "--", "/bench/" + tsibench.getFileName(),
                "" + sinkPort, "" + sourcePort, "" + closerPort, "" + bytes, "" + connections, kind.hostAddress()));
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        int status = p.waitFor();
        double wall = (System.nanoTime() - t0) / 1e9;
        String failure = status != 0 || out.contains("error ") ? "krun run exited with status " + status + ":\n" + out : null;
        double u = Double.NaN, d = Double.NaN, c = Double.NaN;
        for (String line : out.lines().toList()) {
            String[] w = line.trim().split(" ");
            if (w.length == 3 && w[0].equals("upload")) {
                u = Long.parseLong(w[1]) / 1048576.0 / Double.parseDouble(w[2]);
            } else if (w.length == 3 && w[0].equals("download")) {
                d = Long.parseLong(w[1]) / 1048576.0 / Double.parseDouble(w[2]);
            } else if (w.length == 3 && w[0].equals("connect")) {
                c = Integer.parseInt(w[1]) / Double.parseDouble(w[2]);
            }
        }
        if (!Double.isNaN(u) && sunk.get() != bytes) {
            failure = (failure == null ? "" : failure + "\n") + "the host's sink got " + sunk.get() + " of " + bytes + " bytes";
            u = Double.NaN;
        }
        return new Figures(u, d, c, wall, failure);
    }

    /** A figure's medians, TSI's first, and where virtio-net ran, its own and the ratio TSI / virtio-net. */
    static void row(String label, List<Kind> kinds, java.util.function.ToDoubleFunction<Figures> figure) {
        double tsi = median(kinds.get(0).figures().stream().map(figure::applyAsDouble).toList());
        StringBuilder line = new StringBuilder(String.format("%-40s %10.2f", label, tsi));
        if (kinds.size() > 1) {
            double net = median(kinds.get(1).figures().stream().map(figure::applyAsDouble).toList());
            line.append(String.format(" %20.2f %15.2fx", net, tsi / net));
        }
        System.out.println(line);
    }

    static boolean onPath(String program) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            if (!dir.isEmpty() && Files.isExecutable(Path.of(dir, program))) {
                return true;
            }
        }
        return false;
    }

    interface Handler {
        void handle(Socket c) throws IOException;
    }

    static void serve(ServerSocket server, Handler handler) {
        Thread.ofVirtual().start(() -> {
            while (true) {
                Socket c;
                try {
                    c = server.accept();
                } catch (IOException e) {
                    return;
                }
                Thread.ofVirtual().start(() -> {
                    try (c) {
                        handler.handle(c);
                    } catch (IOException e) {
                        // the guest went away
                    }
                });
            }
        });
    }

    static double median(List<Double> values) {
        List<Double> v = new ArrayList<>(values);
        Collections.sort(v);
        return v.get(v.size() / 2);
    }

    // ---- part 5: a long TCP transfer each way over a TAP card with offloads

    /**
     * TapLinuxGuestTest's boot with {@code mib} MiB each way over eth0 (a TAP card with offloads, in a network
     * namespace the test makes) at MTU {@code mtu} on both ends (the card's and the TAP's): the guest's netcheck
     * sends the test pattern (the namespace answers its checksum) and receives it (checked byte by byte), and the
     * test prints MiB/s, frames per MiB and the guest's CPU per MiB each way. Needs root (CAP_NET_ADMIN); whether it
     * failed.
     */
    static boolean tapTransfer(Path repo, Path work, long mib, int mtu, boolean hardware) throws Exception {
        System.out.println("part 5: TCP over a TAP card (--net tap, virtio-net headers, checksum and TSO offloads), " + mib
                + " MiB each way between the guest and a network namespace the test makes, MTU " + mtu + " on both ends;");
        System.out.println("put: guest -> namespace, which answers the checksum of what it got; get: namespace -> guest, every");
        System.out.println("byte checked (the guest prints its checksum, put's for the same bytes); the guest's CPU from its /proc/stat");
        if (!hardware) {
            System.out.println("!!! kvm-pvm host: the guest's TCP stack runs in KVM's instruction emulator; the figures measure that,");
            System.out.println("!!! and a loaded machine (see the load) gives the vCPU less of a core: the guest's CPU per MiB is the steadier figure");
        }
        if (!"root".equals(System.getProperty("user.name"))) {
            System.out.println("part 5 SKIPPED: TAP devices and network namespaces need root");
            return false;
        }
        Path kernel = Path.of(System.getProperty("user.home"), ".cache/krun/kernel/current/vmlinux").toRealPath();
        Path log = work.resolve("tap.log");
        long started = System.nanoTime();
        Process p = new ProcessBuilder("mvn", "-B", "-o", "-Dstyle.color=never", "test", "-pl", "org.krun.device.net",
                "-Dtest=TapLinuxGuestTest", "-Dsurefire.failIfNoSpecifiedTests=false", "-Dkrun.kernel=" + kernel,
                "-Dkrun.tap.test.bytes=" + (mib << 20), "-Dkrun.tap.test.mtu=" + mtu, "-Dkrun.tap.test.socat.bytes=65536")
                .directory(repo.toFile()).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        int status = p.waitFor();
        double seconds = (System.nanoTime() - started) / 1e9;
        for (String l : Files.readAllLines(log)) {
            if (l.contains("[tap guest] eth0 put ") || l.contains("[tap guest] eth0 frames") || l.contains("[tap guest] iface eth0")
                    || l.contains("[tap guest] sysctl") || l.contains("[tap guest] boot to exit") || l.contains("TAP transfer")
                    || l.contains("Tests run:") && !l.contains("--") || l.contains("FAIL")) {
                System.out.println("  " + l.replace("[tap guest] ", "").strip());
            }
        }
        System.out.printf("part 5: %s in %.0f s (mvn and the boot included)%n", status == 0 ? "passed" : "FAILED", seconds);
        if (status != 0) {
            List<String> all = Files.readAllLines(log);
            System.out.println("the end of its log:");
            all.subList(Math.max(0, all.size() - 60), all.size()).forEach(l -> System.out.println("  " + l));
        }
        return status != 0;
    }

    // ---- part 4: iperf3 in the guest over virtio-net on passt, krun vs QEMU microvm

    /**
     * Debian's iperf3 (the host's binary and its libraries, copied into the default rootfs) in the guest, run by
     * krun's init, against {@code iperf3 -s} on 127.0.0.1: guest -> host, then host -> guest ({@code -R}), each
     * for some seconds or bytes, the receiver's rate. krun: {@code krun run --net passt --initrd ROOTFS}. QEMU:
     * {@code qemu-system-x86_64 -M microvm} with the same kernel (PVH entry, acpi=off), the same rootfs packed
     * with krun's init and a configuration for it, a virtio-net-device on QEMU's stream netdev connected to the
     * same passt binary, which listens on a unix socket ({@code --socket}) with the options krun gives it, and
     * the same MAC, MTU (65520, passt's), memory (512 MiB) and one vCPU. The guest's init configures the card by
     * DHCP from passt in both. Rounds alternate krun and QEMU.
     */
    static final class GuestIperf {
        static final String MAC = "5a:94:ef:e4:0c:ee";
        static final int MTU = 65520;
        static final int MEMORY_MIB = 512;
        static final int TIMEOUT_SECONDS = 1200;
        /** isa-debug-exit makes QEMU exit with (status << 1) | 1: the script's 21 gives 43 (see bench/boot). */
        static final int QEMU_GUEST_EXIT = 43;
        static final String UP = "KRUN-BENCH-UP";
        static final String DOWN = "KRUN-BENCH-DOWN";
        static final java.util.regex.Pattern RECEIVER =
                java.util.regex.Pattern.compile("([0-9.]+) Kbits/sec\\s.*receiver");

        /** One boot's rates, MiB/s (NaN where not measured), its wall time, iperf3 runs that failed and were tried again, and what failed. */
        record Result(double up, double down, double wall, int retried, String failure) {
            Result(double up, double down, double wall, String failure) {
                this(up, down, wall, 0, failure);
            }
        }

        /** Whether any run failed. */
        static boolean run(Path repo, Path work, String amount, int rounds, boolean hardware) throws Exception {
            System.out.println("part 4: iperf3 in the guest over a virtio-net card on passt, against iperf3 -s on the host's 127.0.0.1");
            System.out.println("(the guest reaches it as passt's gateway 10.0.2.2), under krun (--net passt) and under QEMU's microvm");
            System.out.println("(virtio-net-device on QEMU's stream netdev, connected to the same passt listening on a unix socket):");
            System.out.println("the same kernel, rootfs, guest command, MAC, MTU " + MTU + ", " + MEMORY_MIB + " MiB and 1 vCPU;");
            System.out.println("iperf3 " + limit(amount) + " guest -> host, then the same with -R (host -> guest), the receiver's rate;");
            System.out.println(rounds + " round(s), krun and QEMU alternating, medians");
            if (!hardware) {
                System.out.println("!!! kvm-pvm host: the guest kernel (its TCP stack, virtio-net driver, interrupts) runs in KVM's");
                System.out.println("!!! instruction emulator at about 1 M instructions/s: these rates measure that emulator, for krun and");
                System.out.println("!!! QEMU alike. They say nothing about either VMM on a host with vmx/svm; short runs (" + limit(amount) + ") by default.");
            }
            for (String tool : List.of("iperf3", "passt")) {
                if (!onPath(tool)) {
                    System.out.println("part 4 SKIPPED: " + tool + " is not installed (apt-get install " + tool + ")");
                    return false;
                }
            }
            boolean qemu = onPath("qemu-system-x86_64");
            if (!qemu) {
                System.out.println("QEMU is not installed (apt-get install qemu-system-x86): krun only");
            }
            Path kernel = Path.of(System.getProperty("user.home"), ".cache/krun/kernel/current/vmlinux").toRealPath();
            Path dir = work.resolve("iperf");
            Path tree = guestTree(dir);
            Path rootfs = dir.resolve("rootfs.cpio");
            cpio(tree, rootfs);
            List<Result> krun = new ArrayList<>();
            List<Result> qemuResults = new ArrayList<>();
            String qemuFailure = null;
            boolean failed = false;
            for (int round = 1; round <= rounds; round++) {
                Result k = withServer(port -> runKrun(repo, rootfs, port, amount));
                krun.add(k);
                failed |= k.failure() != null;
                report(round, "krun", k);
                if (qemu && qemuFailure == null) {
                    Result q = withServer(port -> runQemu(repo, kernel, tree, dir, port, amount, hardware));
                    report(round, "QEMU microvm", q);
                    if (q.failure() != null && qemuResults.isEmpty() && Double.isNaN(q.up()) && Double.isNaN(q.down())) {
                        qemuFailure = q.failure(); // it never worked here: do not try again each round
                    } else {
                        qemuResults.add(q);
                        failed |= q.failure() != null;
                    }
                }
            }
            System.out.println();
            System.out.printf("%-40s %12s %12s %10s%n", "median over " + rounds + " round(s), MiB/s", "krun", "QEMU", "krun/QEMU");
            row("guest -> host (iperf3)", krun, qemuResults, Result::up);
            row("host -> guest (iperf3 -R)", krun, qemuResults, Result::down);
            row("wall time of the boot and both runs, s", krun, qemuResults, Result::wall);
            System.out.println("(ratios krun/QEMU: above 1 means krun is faster, for wall time that krun took longer)");
            if (qemuFailure != null) {
                System.out.println("QEMU microvm could not run here, so it has no figures: " + qemuFailure.strip().replace("\n", "\n  "));
            }
            return failed;
        }

        interface Run {
            Result run(int port) throws Exception;
        }

        /** An iperf3 server on 127.0.0.1 for one boot (fresh each time: a client that died cannot wedge the next). */
        static Result withServer(Run run) throws Exception {
            int port;
            try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
                port = probe.getLocalPort();
            }
            Process server = new ProcessBuilder("iperf3", "-s", "-B", "127.0.0.1", "-p", String.valueOf(port))
                    .redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            try {
                Thread.sleep(300);
                if (!server.isAlive()) {
                    return new Result(Double.NaN, Double.NaN, Double.NaN, "the host's iperf3 server exited with " + server.exitValue());
                }
                return run.run(port);
            } finally {
                server.destroy();
                if (!server.waitFor(5, TimeUnit.SECONDS)) {
                    server.destroyForcibly().waitFor();
                }
            }
        }

        static void report(int round, String vmm, Result r) {
            System.out.printf("round %d, %-13s guest->host %8.3f MiB/s, host->guest %8.3f MiB/s (wall %.1f s)%s%s%n", round, vmm + ":",
                    r.up(), r.down(), r.wall(), r.retried() == 0 ? "" : "; " + r.retried() + " iperf3 run(s) failed and were tried again",
                    r.failure() == null ? "" : "\n  FAILED (NaN: not measured): "
                            + r.failure().strip().replace("\n", "\n  "));
        }

        static void row(String label, List<Result> krun, List<Result> qemu, java.util.function.ToDoubleFunction<Result> f) {
            double k = medianOf(krun, f);
            double q = medianOf(qemu, f);
            System.out.printf("%-40s %12.3f %12.3f %10.2f%n", label, k, q, k / q);
        }

        /** The median of the figures measured (NaN when none was). */
        static double medianOf(List<Result> results, java.util.function.ToDoubleFunction<Result> f) {
            List<Double> v = results.stream().map(f::applyAsDouble).filter(d -> !Double.isNaN(d)).sorted().toList();
            int n = v.size();
            return n == 0 ? Double.NaN : n % 2 == 1 ? v.get(n / 2) : (v.get(n / 2 - 1) + v.get(n / 2)) / 2;
        }

        /**
         * Both directions, each behind a marker line; the card is up (DHCP) before the command runs. Each
         * direction is tried up to {@value #ATTEMPTS} times: on kvm-pvm under load, iperf3's -R connections to
         * the emulated guest were reset ("Connection reset by peer", "Transport endpoint is not connected",
         * under krun and QEMU alike; likely passt giving up on a guest that acks too late, not verified); the
         * first receiver line counts, the failed attempts are reported.
         */
        static String script(int port, String amount) {
            String client = "iperf3 -c 10.0.2.2 -p " + port + " " + limit(amount) + " -f k";
            String retry = "for i in" + " x".repeat(ATTEMPTS) + "; do ";
            return "echo " + UP + "; " + retry + client + " && break; done; echo " + DOWN + "; " + retry + client + " -R && break; done";
        }

        static final int ATTEMPTS = 3;

        /** The default rootfs with the host's iperf3 and the shared libraries it loads (ldd). */
        static Path guestTree(Path dir) throws Exception {
            Path tree = dir.resolve("root");
            Files.createDirectories(dir);
            Path rootfs = Path.of(System.getProperty("user.home"), ".cache/krun/rootfs/default").toRealPath();
            exec(List.of("cp", "-a", rootfs + "/.", tree.toString()));
            Path iperf3 = Path.of(exec(List.of("sh", "-c", "command -v iperf3")).trim()).toRealPath();
            copy(iperf3, tree.resolve("usr/bin/iperf3"));
            for (String line : exec(List.of("ldd", iperf3.toString())).lines().toList()) {
                int arrow = line.indexOf("=> ");
                String lib = arrow >= 0 ? line.substring(arrow + 3).trim().split(" ")[0]
                        : line.trim().startsWith("/") ? line.trim().split(" ")[0] : null;
                if (lib != null && lib.startsWith("/")) {
                    copy(Path.of(lib).toRealPath(), tree.resolve(lib.substring(1)));
                }
            }
            return tree;
        }

        /** iperf3's option for an amount: "10s" is -t 10 (seconds), anything else (256K, 1M) -n (bytes). */
        static String limit(String amount) {
            return amount.endsWith("s") ? "-t " + amount.substring(0, amount.length() - 1) : "-n " + amount;
        }

        static Result runKrun(Path repo, Path rootfs, int port, String amount) throws Exception {
            List<String> command = List.of(repo.resolve("krun").toString(), "run", "--timeout", String.valueOf(TIMEOUT_SECONDS),
                    "--mem", String.valueOf(MEMORY_MIB), "--net", "passt", "--initrd", rootfs.toString(), "--",
                    "/bin/sh", "-c", script(port, amount));
            long t0 = System.nanoTime();
            Process p = new ProcessBuilder(command).redirectErrorStream(true)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            int status = p.waitFor();
            double wall = (System.nanoTime() - t0) / 1e9;
            return parse(out, wall, status == 0 ? null : "krun run exited with status " + status);
        }

        static Result runQemu(Path repo, Path kernel, Path tree, Path dir, int port, String amount, boolean hardware) throws Exception {
            // The same rootfs as krun's run, with krun's init and its configuration, as one initramfs.
            Path qtree = dir.resolve("qemu-root");
            if (!Files.isDirectory(qtree)) {
                exec(List.of("cp", "-a", tree + "/.", qtree.toString()));
                Files.createDirectories(qtree.resolve("krun"));
                copy(repo.resolve("org.krun.vmm/target/classes/org/krun/vmm/guest/krun-init"), qtree.resolve("krun/init"));
                qtree.resolve("krun/init").toFile().setExecutable(true);
            }
            String cmd = (script(port, amount) + "; exit 21").replace("\\", "\\\\").replace("\"", "\\\"");
            Files.writeString(qtree.resolve("krun/config.json"), "{\"cmd\":[\"/bin/sh\",\"-c\",\"" + cmd + "\"],\"env\":[],"
                    + "\"workdir\":\"/\",\"hostname\":\"krun\",\"rlimits\":[],\"console\":\"terminal\",\"columns\":80,"
                    + "\"rows\":24,\"exit_port\":244}\n");
            Path initrd = dir.resolve("qemu-initrd.cpio");
            cpio(qtree, initrd);
            // passt drops to nobody before it makes its socket: a directory it can write, under one it can pass.
            Path sockets = dir.resolve("passt");
            Files.createDirectories(sockets);
            Files.setPosixFilePermissions(dir.getParent(), java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
            Files.setPosixFilePermissions(dir, java.nio.file.attribute.PosixFilePermissions.fromString("rwx--x--x"));
            Files.setPosixFilePermissions(sockets, java.nio.file.attribute.PosixFilePermissions.fromString("rwxrwxrwx"));
            Path socket = sockets.resolve("passt.sock");
            Files.deleteIfExists(socket);
            Path passtLog = dir.resolve("passt.log");
            // What krun gives passt (Passt.arguments), with a listening socket for QEMU instead of --fd.
            Process passt = new ProcessBuilder("passt", "--foreground", "--quiet", "--one-off", "--socket", socket.toString(),
                    "--address", "10.0.2.15", "--netmask", "24", "--gateway", "10.0.2.2", "--dns-forward", "10.0.2.3", "--no-dhcp-dns")
                    .redirectErrorStream(true).redirectOutput(passtLog.toFile()).start();
            try {
                for (int i = 0; i < 100 && !Files.exists(socket) && passt.isAlive(); i++) {
                    Thread.sleep(50);
                }
                if (!Files.exists(socket)) {
                    return new Result(Double.NaN, Double.NaN, Double.NaN, "passt made no socket at " + socket + ": "
                            + lastLines(Files.readString(passtLog), 3));
                }
                Path console = dir.resolve("qemu-console.txt");
                Files.deleteIfExists(console);
                String append = "console=hvc0 reboot=k panic=-1 rdinit=/krun/init quiet loglevel=4 clocksource=kvm-clock krun.net=" + MAC + ",dhcp"; // as krun's KVM backend
                if (!hardware) {
                    append += " noxsave nofsgsbase clearcpuid=popcnt,smap,erms,fsrm"; // what krun adds on kvm-pvm (KvmHypervisor)
                }
                // On kvm-pvm, QEMU 7.2 with -cpu host aborts at start: "failed to set MSR 0x10a to 0x69"
                // (IA32_ARCH_CAPABILITIES): the model without that feature boots.
                String cpu = hardware ? "host" : "host,-arch-capabilities";
                // acpi=off: krun's kernel has no ACPI, so QEMU announces the virtio-mmio devices on the command line.
                List<String> command = List.of("qemu-system-x86_64", "-M", "microvm,x-option-roms=off,isa-serial=off,rtc=on,acpi=off",
                        "-enable-kvm", "-cpu", cpu, "-m", String.valueOf(MEMORY_MIB), "-smp", "1", "-nodefaults",
                        "-no-user-config", "-nographic", "-no-reboot", "-kernel", kernel.toString(), "-initrd", initrd.toString(),
                        "-append", append,
                        "-device", "virtio-serial-device", "-chardev", "file,id=con0,path=" + console,
                        "-device", "virtconsole,chardev=con0",
                        "-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + socket,
                        "-device", "virtio-net-device,netdev=n0,mac=" + MAC + ",host_mtu=" + MTU,
                        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01");
                long t0 = System.nanoTime();
                Path qemuOut = dir.resolve("qemu-output.txt");
                Process p = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(qemuOut.toFile())
                        .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
                boolean done = p.waitFor(TIMEOUT_SECONDS, TimeUnit.SECONDS);
                if (!done) {
                    p.destroyForcibly().waitFor();
                }
                byte[] own = Files.readAllBytes(qemuOut);
                double wall = (System.nanoTime() - t0) / 1e9;
                String out = Files.exists(console) ? Files.readString(console) : "";
                String failure = null;
                if (!done || p.exitValue() != QEMU_GUEST_EXIT) {
                    failure = "qemu-system-x86_64 " + (done ? "exited with status " + p.exitValue() : "did not finish in "
                            + TIMEOUT_SECONDS + " s") + ": " + lastLines(new String(own, StandardCharsets.UTF_8), 4)
                            + (out.isBlank() ? "" : "\nits console: " + lastLines(out, 6));
                }
                return parse(out, wall, failure);
            } finally {
                passt.destroy();
                if (!passt.waitFor(5, TimeUnit.SECONDS)) {
                    passt.destroyForcibly().waitFor();
                }
            }
        }

        /** The receiver's rate of each direction in the guest's output; a failure when one is missing. */
        static Result parse(String out, double wall, String failure) {
            out = out.replace("\r", "");
            int up = out.indexOf(UP + "\n");
            int down = out.indexOf(DOWN + "\n");
            double u = up < 0 ? Double.NaN : receiverRate(out.substring(up, down < 0 ? out.length() : down));
            double d = down < 0 ? Double.NaN : receiverRate(out.substring(down));
            if (failure == null && (Double.isNaN(u) || Double.isNaN(d))) {
                failure = "no iperf3 result";
            }
            if (failure != null) {
                failure += "\nthe guest's output ends: " + lastLines(out, 12);
            }
            int retried = (int) out.lines().filter(l -> l.startsWith("iperf3: error")).count();
            return new Result(u, d, wall, retried, failure);
        }

        /** iperf3's receiver line in Kbits/s (-f k: 1000 bits), as MiB/s; NaN without one. */
        static double receiverRate(String section) {
            java.util.regex.Matcher m = RECEIVER.matcher(section);
            return m.find() ? Double.parseDouble(m.group(1)) * 1000 / 8 / 1048576 : Double.NaN;
        }

        static String lastLines(String text, int n) {
            List<String> lines = text.strip().lines().toList();
            return String.join("\n  ", lines.subList(Math.max(0, lines.size() - n), lines.size()));
        }

        static void cpio(Path tree, Path archive) throws Exception {
            exec(List.of("sh", "-c", "cd '" + tree + "' && find . | cpio -o -H newc --quiet > '" + archive + "'"));
        }

        static void copy(Path from, Path to) throws IOException {
            Files.createDirectories(to.getParent());
            Files.copy(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }

        static String exec(List<String> cmd) throws IOException, InterruptedException {
            Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT)
                    .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() != 0) {
                throw new IOException("failed (" + p.exitValue() + "): " + cmd + "\n" + out);
            }
            return out;
        }
    }
}
