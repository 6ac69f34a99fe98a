package org.krun.device.virtiofs.internal;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

/**
 * bench/fs, in-process part: the FUSE server's own rate, requests driven through real descriptor chains
 * (MockDriverQueue) against a host directory, no guest involved. Prints operations/s and MB/s, median of
 * three rounds after a warm-up. Run by bench/fs.
 */
public final class FsBench {

    private interface Op {
        void run(int i);
    }

    public static void main(String[] args) throws Exception {
        Path dir = Files.createTempDirectory(args.length > 0 ? Path.of(args[0]) : Path.of("/tmp"), "krun-fsbench");
        try {
            run(dir);
        } finally {
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static void run(Path dir) throws Exception {
        Files.writeString(dir.resolve("existing"), "x");
        byte[] mib = new byte[1 << 20];
        Files.write(dir.resolve("big"), new byte[64 << 20]);
        try (PassthroughFs fs = new PassthroughFs(dir, false); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long existing = FuseClient.entry(c.lookup(1, "existing")).nodeid();
            long big = FuseClient.entry(c.lookup(1, "big")).nodeid();
            long bigFh = c.open(big, 2).body().getLong();
            System.out.printf("%-34s %14s %12s%n", "operation (in-process, no guest)", "ops/s", "MB/s");
            report("LOOKUP", 20_000, 0, i -> c.lookup(1, "existing"));
            report("GETATTR", 20_000, 0, i -> c.send(Fuse.GETATTR, existing, new byte[16]));
            int[] created = {0};
            report("CREATE + RELEASE (new file)", 5_000, 0, i -> {
                FuseClient.Reply r = c.create(1, "f" + created[0]++, 0101, 0644);
                long nodeid = FuseClient.entry(r).nodeid();
                c.release(nodeid, FuseClient.createdHandle(r), false);
                c.forget(nodeid, 1); // as a guest's inode cache does: the share's inode bound (FsLimits) holds otherwise
            });
            byte[] k4 = new byte[4096];
            report("WRITE 4 KiB", 20_000, 4096, i -> c.write(big, bigFh, (long) (i % 16384) * 4096, k4));
            report("READ 4 KiB", 20_000, 4096, i -> c.read(big, bigFh, (long) (i % 16384) * 4096, 4096));
            report("WRITE 1 MiB", 500, 1 << 20, i -> c.write(big, bigFh, (long) (i % 64) << 20, mib));
            report("READ 1 MiB", 500, 1 << 20, i -> c.read(big, bigFh, (long) (i % 64) << 20, 1 << 20));
        }
    }

    private static void report(String name, int n, int bytes, Op op) {
        for (int i = 0; i < n / 4; i++) {
            op.run(i); // warm-up: JIT, page cache
        }
        List<Double> rates = new ArrayList<>();
        for (int round = 0; round < 3; round++) {
            long t0 = System.nanoTime();
            for (int i = 0; i < n; i++) {
                op.run(i);
            }
            rates.add(n / ((System.nanoTime() - t0) / 1e9));
        }
        rates.sort(null);
        double ops = rates.get(1);
        System.out.printf("%-34s %14.0f %12s%n", name, ops, bytes == 0 ? "" : String.format("%.1f", ops * bytes / 1e6));
    }
}
