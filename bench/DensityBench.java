import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import org.krun.api.ConsoleSpec;
import org.krun.api.DiskSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.device.balloon.internal.BalloonFactory;
import org.krun.device.blk.internal.BlkFactory;
import org.krun.device.console.internal.ConsoleFactory;
import org.krun.device.rng.internal.RngFactory;
import org.krun.device.virtiofs.internal.FsFactory;
import org.krun.device.vsock.internal.VsockFactory;
import org.krun.hv.kvm.internal.KvmHypervisor;
import org.krun.vmm.internal.KrunService;

/**
 * bench/density: what each extra idle VM costs the JVM that runs it.
 *
 * <p>Starts 1, 10, ... VMs in one JVM, each with the default devices (console, balloon, rng, vsock) plus a raw
 * disk and a virtio-fs share, waits until every guest is idle, lets them sit, and reads /proc: the resident
 * set (VmRSS), the guest RAM resident (Rss of the guest RAM mappings in /proc/self/smaps), the VMM's own
 * share (the rest, over a baseline taken before the VMs), threads (/proc/self/task), fds (/proc/self/fd),
 * idle CPU (utime + stime of /proc/self/stat over a few seconds) and the time until all were idle. It also
 * groups the live Java threads by name, so where the threads come from is visible.
 *
 * <p>Guests: "fast" is the freestanding burst.elf of the OSGi tests (no Linux), which sends 32 requests one
 * at a time to the disk and to the share, then waits for console input in hlt; "linux" is krun's kernel with
 * the default root (a virtio-fs share), idle in {@code sleep} after printing a line: the warm-up VM boots and
 * makes a template (docs/templates.md) in the bench's folder, and every VM after it is restored from that
 * template, as {@code krun run} does (with {@code linux-cold} every VM boots). Restored VMs map the template's
 * RAM copy-on-write, so the pages they have not written are shared: the guest PSS column divides each shared
 * page among its mappings, where guest RSS counts it in each.
 *
 * Usage: java -cp ... bench/DensityBench.java fast|linux|linux-cold MEMORY_MIB IDLE_SECONDS COUNT...
 */
public class DensityBench {
    static final String READY = "krun-density-ready";

    public static void main(String[] args) throws Exception {
        String guest = args[0];
        int memoryMib = Integer.parseInt(args[1]);
        double idleSeconds = Double.parseDouble(args[2]);
        List<Integer> counts = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            counts.add(Integer.parseInt(args[i]));
        }
        System.out.println("bench/density: the cost of each extra idle VM in one JVM");
        System.out.println("host: " + HostInfo.hostKind() + "; " + HostInfo.cpuModel() + "; "
                + Runtime.getRuntime().availableProcessors() + " CPUs; Java " + Runtime.version());
        System.out.println("guest: " + (guest.startsWith("linux")
                ? "krun's Linux kernel and default root, idle in `sleep` (" + Path.of(System.getProperty("krun.kernel")) + "), "
                        + (guest.equals("linux") ? "restored from a template the warm-up VM made" : "each booted cold")
                : "freestanding burst.elf (no Linux): 32 requests to the disk and to the share, then idle in hlt")
                + "; " + memoryMib + " MiB, 1 vCPU; devices: console, balloon, rng, vsock (defaults), a 16 MiB raw disk,"
                + " a virtio-fs share");

        Path dir = Files.createTempDirectory("krun-bench-density");
        Path disk = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(16 << 20);
        }
        Path share = Files.createDirectories(dir.resolve("share"));
        KvmHypervisor kvm = KvmHypervisor.open();
        KrunService krun = new KrunService();
        krun.addHypervisor(kvm);
        krun.addDeviceFactory(new ConsoleFactory());
        krun.addDeviceFactory(new BalloonFactory());
        krun.addDeviceFactory(new RngFactory());
        krun.addDeviceFactory(new VsockFactory());
        krun.addDeviceFactory(new BlkFactory());
        krun.addDeviceFactory(new FsFactory());
        Bench bench = new Bench(krun, guest, memoryMib, disk, share, dir.resolve("templates"));
        try {
            // One VM first, started, idled and closed: classes, JIT, logging and the JVM's own pools.
            bench.round(1, 0, false);
            System.out.println();
            System.out.printf("%5s %12s %12s %12s %14s %13s %9s %9s %10s %12s%n", "VMs", "RSS MiB", "guest RSS",
                    "guest PSS", "VMM MiB/VM", "threads/VM", "fds/VM", "idle CPU", "CPU/VM", "start all s");
            for (int n : counts) {
                bench.round(n, idleSeconds, true);
            }
        } finally {
            kvm.close();
            try (Stream<Path> all = Files.walk(dir)) {
                for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    record Bench(KrunService krun, String guest, int memoryMib, Path disk, Path share, Path templates) {

        VmConfig config(int i) {
            VmConfig.Builder b = VmConfig.builder().memoryMib(memoryMib)
                    .console(ConsoleSpec.terminal(OutputStream.nullOutputStream(), 80, 24))
                    .device(DiskSpec.raw(disk).withReadOnly(true)).device(new FsShareSpec("share", share, true));
            if (guest.startsWith("linux")) {
                b.kernel(Path.of(System.getProperty("krun.kernel"))).root(Path.of(System.getProperty("krun.rootfs")))
                        .command("/bin/sh", "-c", "echo " + READY + "; exec sleep 1000000");
                if (guest.equals("linux")) {
                    b.templateCache(templates);
                }
            } else {
                b.kernel(Path.of(System.getProperty("krun.guests"), "burst.elf")).command("fast-guest");
            }
            return b.build();
        }

        boolean idle(VirtualMachine vm) {
            String tail = new String(vm.consoleTail(), StandardCharsets.UTF_8);
            return tail.contains(guest.startsWith("linux") ? READY : "idle blk=");
        }

        void round(int n, double idleSeconds, boolean print) throws Exception {
            Usage before = Usage.settled(memoryMib);
            List<VirtualMachine> vms = new ArrayList<>();
            long start = System.nanoTime();
            try {
                for (int i = 0; i < n; i++) {
                    VirtualMachine vm = krun.create(config(i));
                    vms.add(vm);
                    vm.start();
                }
                long deadline = System.nanoTime() + Duration.ofSeconds(guest.startsWith("linux") ? 300 + 120L * n : 60).toNanos();
                for (VirtualMachine vm : vms) {
                    while (!idle(vm)) {
                        if (vm.exit().isDone() || System.nanoTime() > deadline) {
                            throw new IllegalStateException("VM " + vm.id() + " did not become idle: "
                                    + (vm.exit().isDone() ? vm.exit().get() : "timed out") + "; console: "
                                    + new String(vm.consoleTail(), StandardCharsets.UTF_8));
                        }
                        Thread.sleep(20);
                    }
                }
                double startSeconds = (System.nanoTime() - start) / 1e9;
                if (!print) {
                    return;
                }
                // Let the devices' pools see they have nothing to do (their keep-alive), then measure.
                Thread.sleep(12_000);
                Usage idle = Usage.take(memoryMib);
                long cpu0 = Usage.cpuTicks();
                long t0 = System.nanoTime();
                Thread.sleep((long) (idleSeconds * 1000));
                long ticks = Usage.cpuTicks() - cpu0;
                double wall = (System.nanoTime() - t0) / 1e9;
                double cpuPercent = 100.0 * ticks / 100.0 / wall; // USER_HZ is 100 on Linux
                double vmmKib = (idle.rssKib() - idle.guestKib()) - (before.rssKib() - before.guestKib());
                System.out.printf("%5d %12.1f %12.1f %12.1f %14.2f %13.1f %9.1f %8.2f%% %9.3f%% %12.1f%n", n,
                        idle.rssKib() / 1024.0, idle.guestKib() / 1024.0, idle.guestPssKib() / 1024.0, vmmKib / 1024.0 / n,
                        (idle.tasks() - before.tasks()) / (double) n,
                        (idle.fds() - before.fds()) / (double) n, cpuPercent, cpuPercent / n, startSeconds);
                if (idle.guestMappings() != n) {
                    System.out.println("      (found " + idle.guestMappings() + " guest RAM mappings of " + memoryMib
                            + " MiB for " + n + " VMs: the guest RSS column is off)");
                }
                System.out.println("      threads by name, idle, for " + n + " VM(s): " + groups(idle.threads(), before.threads()));
            } finally {
                for (VirtualMachine vm : vms) {
                    vm.close();
                }
            }
        }
    }

    /** The threads that were not there before, by name with digits and VM ids blurred: {name pattern=count}. */
    static Map<String, Integer> groups(List<String> now, List<String> before) {
        List<String> extra = new ArrayList<>(now);
        before.forEach(extra::remove);
        Map<String, Integer> g = new TreeMap<>();
        for (String name : extra) {
            g.merge(name.replaceAll("vm[0-9]+", "vmN").replaceAll("[0-9]+\\)?$", "N"), 1, Integer::sum);
        }
        return g;
    }

    /** What the process holds now: tasks, its threads (compiler threads aside); threads, the Java threads' names. */
    record Usage(long rssKib, long guestKib, long guestPssKib, int guestMappings, int tasks, List<String> threads, int fds) {

        static Usage settled(int memoryMib) throws Exception {
            System.gc();
            Thread.sleep(500);
            return take(memoryMib);
        }

        static Usage take(int memoryMib) throws IOException {
            // Guest RAM: private anonymous mappings made with MAP_NORESERVE ("nr" in VmFlags) whose size is a
            // multiple of the guest's (the kernel merges adjacent ones), or, for a VM restored from a template,
            // the private mapping of the template's "ram" file; the JVM's heap is sized apart (-Xmx).
            long guest = 0;
            long guestPss = 0;
            int mappings = 0;
            long want = memoryMib * 1024L;
            long size = 0;
            long rss = 0;
            long pss = 0;
            boolean candidate = false;
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                if (line.matches("[0-9a-f]+-[0-9a-f]+ .*")) {
                    String[] f = line.split("\\s+");
                    String[] range = f[0].split("-");
                    size = (Long.parseUnsignedLong(range[1], 16) - Long.parseUnsignedLong(range[0], 16)) / 1024;
                    candidate = f[1].equals("rw-p") && (f.length == 5 || f[f.length - 1].endsWith("/ram"));
                } else if (line.startsWith("Rss:")) {
                    rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("Pss:")) {
                    pss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("VmFlags:") && candidate && size % want == 0
                        && List.of(line.substring(8).trim().split(" ")).contains("nr")) {
                    mappings += (int) (size / want);
                    guest += rss;
                    guestPss += pss;
                }
            }
            // Every thread of the process (/proc/self/task), the JIT's compiler threads aside (the JVM adds and
            // drops them as it likes); the Java threads by name, to see where they come from.
            int tasks = 0;
            List<String> comms = new ArrayList<>();
            try (Stream<Path> s = Files.list(Path.of("/proc/self/task"))) {
                for (Path t : s.toList()) {
                    try {
                        String comm = Files.readString(t.resolve("comm")).strip();
                        if (!comm.startsWith("C1 CompilerThre") && !comm.startsWith("C2 CompilerThre")) {
                            tasks++;
                            comms.add(comm);
                        }
                    } catch (IOException gone) {
                        // a thread that just ended
                    }
                }
            }
            List<String> threads = new ArrayList<>();
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                threads.add(t.getName());
            }
            // Threads the JVM does not know, by their comm (kernel-side task names, cut at 15 characters).
            for (Thread t : Thread.getAllStackTraces().keySet()) {
                String name = t.getName();
                comms.remove(name.length() > 15 ? name.substring(0, 15) : name);
            }
            for (String comm : comms) {
                threads.add("(" + comm + ")");
            }
            long vmRss = 0;
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    vmRss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
            int fds;
            try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
                fds = (int) s.count() - 1; // the listing's own
            }
            return new Usage(vmRss, guest, guestPss, mappings, tasks, threads, fds);
        }

        static long cpuTicks() throws IOException {
            String stat = Files.readString(Path.of("/proc/self/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime (fields 14 and 15)
        }
    }
}
