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
 * sockets to krun's VMM over vsock), measured from inside a guest booted by {@code krun run}.
 *
 * <p>Part 1 (any host) runs TsiBench (org.krun.device.vsock's test sources): the device in-process, no guest.
 *
 * <p>Part 2, the host side: three servers on 127.0.0.1 (a sink that reads to the end, a source that sends a sized
 * stream, and one that answers each connection with a byte and closes). The guest side: tsibench (built
 * here with musl-gcc, shared into the guest with {@code -v}) uploads, downloads and connects in a loop,
 * reaching the servers as host.krun.internal. Prints MiB/s each way and connections/s, the median over
 * the rounds (one boot each), and the kind of host: on kvm-pvm hosts the guest kernel's network stack and
 * virtio driver are interpreted, so the figures there say how slow the emulator is, not how fast TSI is.
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
        System.out.println("bench/net: TCP through TSI (guest sockets made on the host by krun's VMM, over virtio-vsock)");
        System.out.println("host: " + host + "; " + HostInfo.cpuModel() + "; " + Runtime.getRuntime().availableProcessors() + " CPUs");
        if (!hardware) {
            System.out.println("NOTE: guest kernel code is interpreted on this host: these rates measure the emulator running the");
            System.out.println("guest's TCP stack and vsock driver, not krun's TSI. Compare only with runs on the same kind of host.");
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
                + connections + " connections one after the other; " + rounds + " round(s), one boot each");

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

            List<Double> up = new ArrayList<>();
            List<Double> down = new ArrayList<>();
            List<Double> rate = new ArrayList<>();
            for (int round = 1; round <= rounds; round++) {
                sunk.set(0);
                long t0 = System.nanoTime();
                Process p = new ProcessBuilder(repo.resolve("krun").toString(), "run", "--timeout", "1200",
                        "-v", tsibench.getParent() + ":/bench", "--", "/bench/" + tsibench.getFileName(),
                        "" + sink.getLocalPort(), "" + source.getLocalPort(), "" + closer.getLocalPort(), "" + bytes,
                        "" + connections).redirectErrorStream(true).start();
                String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
                int status = p.waitFor();
                double wall = (System.nanoTime() - t0) / 1e9;
                if (status != 0 || out.contains("error ")) {
                    System.out.println("round " + round + " failed (status " + status + "):\n" + out);
                    System.exit(1);
                }
                double u = 0, d = 0, c = 0;
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
                if (sunk.get() != bytes) {
                    System.out.println("round " + round + ": the host's sink got " + sunk.get() + " of " + bytes + " bytes");
                    System.exit(1);
                }
                up.add(u);
                down.add(d);
                rate.add(c);
                System.out.printf("round %d: guest->host %.2f MiB/s, host->guest %.2f MiB/s, %.1f connections/s (krun run wall %.1f s)%n",
                        round, u, d, c, wall);
            }
            System.out.println();
            System.out.printf("%-36s %10s%n", "median over " + rounds + " round(s)", "");
            System.out.printf("%-36s %10.2f%n", "guest -> host, MiB/s", median(up));
            System.out.printf("%-36s %10.2f%n", "host -> guest, MiB/s", median(down));
            System.out.printf("%-36s %10.1f%n", "connections/s (connect, 1 byte, close)", median(rate));
            System.out.println();
            System.out.println("TSI vs virtio-net side by side: not measured (needs a network card device and hardware virtualisation).");
        }
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
