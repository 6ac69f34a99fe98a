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
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

/**
 * bench/net: TCP through transparent socket impersonation (no network card: the guest kernel hands its
 * sockets to krun's VMM over vsock), measured from inside a guest booted by {@code krun run}, side by side
 * with a virtio-net card on passt.
 *
 * <p>Part 1 (any host) runs TsiBench (org.krun.device.vsock's test sources): the device in-process, no guest.
 *
 * <p>Part 2, the host side: three servers on 127.0.0.1 (a sink that reads to the end, a source that sends a sized
 * stream, and one that answers each connection with a byte and closes). The guest side: tsibench (built
 * here with musl-gcc, shared into the guest with {@code -v}) uploads, downloads and connects in a loop,
 * reaching the servers as host.krun.internal through TSI, and, in a second boot of the same round, through
 * a virtio-net card on passt ({@code --net passt}, the servers at passt's gateway address 10.0.2.2). Prints
 * MiB/s each way and connections/s for both side by side with the ratio, medians over the rounds, and the
 * kind of host: on kvm-pvm hosts the guest kernel's network stack and virtio drivers are interpreted, so
 * the figures there say how slow the emulator is, not how fast TSI or passt is.
 *
 * Usage: java bench/NetBench.java REPO TSIBENCH MIB|auto CONNECTIONS|auto ROUNDS PART1_CLASSPATH
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
        System.out.println("bench/net: TCP through TSI (guest sockets made on the host by krun's VMM, over virtio-vsock),");
        System.out.println("and through a virtio-net card on passt, side by side");
        System.out.println("host: " + host + "; " + HostInfo.cpuModel() + "; " + Runtime.getRuntime().availableProcessors() + " CPUs");
        if (!hardware) {
            System.out.println("NOTE: guest kernel code is interpreted on this host: these rates measure the emulator running the");
            System.out.println("guest's TCP stack and its vsock or virtio-net driver, not krun's TSI or passt. Compare only with runs on the\n"
                    + "same kind of host.");
        }
        System.out.println();
        System.out.println("part 1, any host: the vsock device's TSI in-process (driver-side mock queues playing the guest");
        System.out.println("kernel, the device's event loop, servers on 127.0.0.1); no guest, so comparable across hosts");
        Process part1 = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", args[5], "org.krun.device.vsock.internal.TsiBench", "256", "2000")
                .redirectErrorStream(true).start();
        System.out.print(new String(part1.getInputStream().readAllBytes(), StandardCharsets.UTF_8));
        if (part1.waitFor() != 0) {
            System.out.println("part 1 failed");
            System.exit(1);
        }
        System.out.println();
        System.out.println("part 2: from inside a guest booted by krun run (tsibench.c): " + (bytes >> 20) + " MiB each way, "
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
            if (failed) {
                System.exit(1);
            }
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
}
