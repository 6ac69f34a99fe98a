import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import javax.management.ObjectName;

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
import org.slf4j.LoggerFactory;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;

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
    /** What a Linux guest prints for each line it reads, before its own number and the line. */
    static final String ANSWER = "answer from vm";
    /** Set when a check failed: the bench ends with status 1 after printing everything. */
    static boolean failed;

    public static void main(String[] args) throws Exception {
        String guest = args[0];
        int memoryMib = Integer.parseInt(args[1]);
        double idleSeconds = Double.parseDouble(args[2]);
        List<Integer> counts = new ArrayList<>();
        for (int i = 3; i < args.length; i++) {
            counts.add(Integer.parseInt(args[i]));
        }
        if (guest.equals("qemu")) {
            System.out.println("bench/density qemu: the VMM memory overhead of one VM per process, krun run beside QEMU microvm");
            System.out.println("host: " + HostInfo.hostKind() + "; " + HostInfo.cpuModel() + "; "
                    + Runtime.getRuntime().availableProcessors() + " CPUs");
            beside(Path.of(System.getProperty("krun.repo")), Path.of(System.getProperty("krun.kernel")), memoryMib);
            System.exit(failed ? 1 : 0);
        }
        System.out.println("bench/density: the cost of each extra idle VM in one JVM");
        System.out.println("host: " + HostInfo.hostKind() + "; " + HostInfo.cpuModel() + "; "
                + Runtime.getRuntime().availableProcessors() + " CPUs; Java " + Runtime.version());
        System.out.println("guest: " + (guest.startsWith("linux")
                ? "krun's Linux kernel and default root, `sleep` in the background and a shell loop answering each line"
                        + " on its console (" + Path.of(System.getProperty("krun.kernel")) + "), "
                        + (guest.equals("linux") ? "restored from a template the warm-up VM made" : "each booted cold")
                : "freestanding burst.elf (no Linux): 32 requests to the disk and to the share, then idle in hlt")
                + "; " + memoryMib + " MiB, 1 vCPU; devices: console, balloon (free page reporting), rng, vsock (defaults),"
                + " a 16 MiB raw disk, a virtio-fs share");

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
        Bench bench = new Bench(krun, guest, memoryMib, disk, share, dir.resolve("templates"), new TreeMap<>(), BalloonLog.attach());
        try {
            // One VM first, started, idled and closed: classes, JIT, logging and the JVM's own pools.
            bench.round(1, 0, false);
            System.out.println();
            System.out.println("guest RSS counts a page shared by restored VMs in each; guest PSS divides it among them;"
                    + " guest wr/VM: the guest RAM a VM wrote since its restore (its own copies), per VM");
            System.out.printf("%5s %12s %12s %12s %12s %14s %13s %9s %9s %10s %12s%n", "VMs", "RSS MiB", "guest RSS",
                    "guest PSS", "guest wr/VM", "VMM MiB/VM", "threads/VM", "fds/VM", "idle CPU", "CPU/VM", "start all s");
            for (int n : counts) {
                bench.round(n, idleSeconds, true);
            }
            guestBounded(bench.guestWritten(), memoryMib);
        } finally {
            kvm.close();
            delete(dir);
        }
        System.exit(failed ? 1 : 0);
    }

    /**
     * Free page reporting at many VMs: the guest RAM each VM holds of its own (written since the restore, or
     * all of it booted cold) must not grow with the number of VMs (at most twice the figure of the fewest VMs,
     * or 4 MiB more), and stays under half the guest's RAM.
     */
    static void guestBounded(Map<Integer, Double> writtenKib, int memoryMib) {
        if (writtenKib.size() < 2) {
            return;
        }
        int fewest = ((TreeMap<Integer, Double>) writtenKib).firstKey();
        int most = ((TreeMap<Integer, Double>) writtenKib).lastKey();
        double low = writtenKib.get(fewest) / 1024.0;
        double high = writtenKib.get(most) / 1024.0;
        boolean ok = high <= Math.max(2 * low, low + 4) && high < memoryMib / 2.0;
        System.out.printf("guest RAM of its own per VM: %.1f MiB at %d VM(s), %.1f MiB at %d VMs, of %d MiB each: %s%n",
                low, fewest, high, most, memoryMib, ok ? "bounded" : "FAILED: grows with the VMs or exceeds half the guest RAM");
        failed |= !ok;
    }

    static void delete(Path dir) throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }

    /**
     * One VM per process, side by side: {@code krun run --no-template} and QEMU's microvm on the same kernel,
     * the same initramfs (the default rootfs as a cpio; krun's init on top in QEMU's) and the same guest RAM,
     * both running {@code sleep} after printing a line, both booted cold at the same time. Once both guests
     * printed it and a few seconds passed, each process's VMM memory overhead: its RSS minus the guest RAM
     * pages it holds (smaps of the guest RAM mapping).
     */
    static void beside(Path repo, Path kernel, int memoryMib) throws Exception {
        if (!Files.isExecutable(Path.of("/usr/bin/qemu-system-x86_64"))) {
            System.out.println("QEMU microvm: not installed (apt-get install qemu-system-x86), comparison skipped");
            failed = true;
            return;
        }
        List<String> command = List.of("/bin/sh", "-c", "echo " + READY + "; exec sleep 1000000");
        BootBench.QemuSetup setup = BootBench.QemuSetup.prepare(repo, kernel, command);
        Path dir = setup.initrd().getParent();
        System.out.println("kernel: " + kernel.toRealPath() + "; initramfs: the default rootfs as a cpio ("
                + Files.size(setup.rootfsCpio()) / 1024 + " KiB); " + memoryMib + " MiB, 1 vCPU; both idle in `sleep`,"
                + " booted cold");
        Path krunOut = dir.resolve("krun.out");
        Path qemuOut = dir.resolve("qemu.out");
        List<String> krunCommand = new ArrayList<>(List.of(repo.resolve("krun").toString(), "run", "--no-template",
                "--kernel", kernel.toString(), "--initrd", setup.rootfsCpio().toString(), "--mem", Integer.toString(memoryMib),
                "--cpus", "1", "--"));
        krunCommand.addAll(command);
        Process k = new ProcessBuilder(krunCommand).redirectErrorStream(true).redirectOutput(krunOut.toFile())
                .redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null"))).start();
        Process q = new ProcessBuilder(setup.command(memoryMib, "file,id=con0,path=" + qemuOut)).redirectErrorStream(true)
                .redirectOutput(dir.resolve("qemu.log").toFile()).start();
        try {
            long t0 = System.nanoTime();
            long deadline = t0 + Duration.ofSeconds(900).toNanos();
            while (!(printed(krunOut) && printed(qemuOut))) {
                if (!k.isAlive() || !q.isAlive() || System.nanoTime() > deadline) {
                    failed = true;
                    System.out.println("FAILED: " + (!k.isAlive() ? "krun run exited " + k.exitValue()
                            : !q.isAlive() ? "QEMU exited " + q.exitValue() : "no guest line within 900 s")
                            + "; krun: " + tail(krunOut) + "; QEMU: " + tail(qemuOut) + " " + tail(dir.resolve("qemu.log")));
                    return;
                }
                Thread.sleep(200);
            }
            System.out.printf("both guests idle in sleep after %.1f s (booted side by side); measuring after 12 s more%n",
                    (System.nanoTime() - t0) / 1e9);
            Thread.sleep(12_000);
            Memory km = Memory.of(Path.of("/proc/" + k.pid()), memoryMib, false);
            Memory qm = Memory.of(Path.of("/proc/" + q.pid()), memoryMib, true);
            System.out.printf("%-30s %10s %20s %16s %9s %6s%n", "one VM per process", "RSS MiB", "guest RAM resident",
                    "overhead MiB", "threads", "fds");
            row("krun run (JVM, pid " + k.pid() + ")", km, k.pid());
            row("QEMU microvm (pid " + q.pid() + ")", qm, q.pid());
            if (km.guestMappings() != 1 || qm.guestMappings() != 1) {
                failed = true;
                System.out.println("FAILED: guest RAM mappings found: krun " + km.guestMappings() + ", QEMU "
                        + qm.guestMappings() + " (one each expected)");
                return;
            }
            double kOver = (km.rssKib() - km.guestKib()) / 1024.0;
            double qOver = (qm.rssKib() - qm.guestKib()) / 1024.0;
            System.out.printf("krun / QEMU VMM memory overhead: %.1f MiB / %.1f MiB = %.2f%n", kOver, qOver, kOver / qOver);
        } finally {
            stop(k);
            stop(q);
            delete(dir);
        }
    }

    static void row(String what, Memory m, long pid) throws IOException {
        int threads;
        int fds;
        try (Stream<Path> t = Files.list(Path.of("/proc/" + pid + "/task"));
                Stream<Path> f = Files.list(Path.of("/proc/" + pid + "/fd"))) {
            threads = (int) t.count();
            fds = (int) f.count();
        }
        System.out.printf("%-30s %10.1f %20.1f %16.1f %9d %6d%n", what, m.rssKib() / 1024.0, m.guestKib() / 1024.0,
                (m.rssKib() - m.guestKib()) / 1024.0, threads, fds);
    }

    static boolean printed(Path out) throws IOException {
        return Files.exists(out) && Files.readString(out, StandardCharsets.ISO_8859_1).contains(READY);
    }

    static String tail(Path out) throws IOException {
        if (!Files.exists(out)) {
            return "(no output)";
        }
        String s = Files.readString(out, StandardCharsets.ISO_8859_1).strip();
        return s.substring(Math.max(0, s.length() - 400)).replace("\r", "").replace("\n", " | ");
    }

    static void stop(Process p) throws InterruptedException {
        p.destroy();
        if (!p.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor();
        }
    }

    /**
     * The balloon's figures for each VM it served, from its DEBUG line at close ("virtio-balloon: N free page
     * reports (X MiB), P pages inflated, Y MiB released, R refused"): the bench's own appender on that one
     * logger, which prints nothing.
     */
    static final class BalloonLog extends AppenderBase<ILoggingEvent> {
        static final Pattern LINE = Pattern.compile("virtio-balloon: (\\d+) free page reports \\((\\d+) MiB\\), \\d+ pages"
                + " inflated, (\\d+) MiB released");
        int devices;
        int reporting;
        long reports;
        long releasedMib;

        static BalloonLog attach() {
            BalloonLog log = new BalloonLog();
            ch.qos.logback.classic.Logger logger = (ch.qos.logback.classic.Logger) LoggerFactory.getLogger(
                    "org.krun.device.balloon.internal.VirtioBalloon");
            log.setContext(logger.getLoggerContext());
            log.start();
            logger.setLevel(ch.qos.logback.classic.Level.DEBUG);
            logger.setAdditive(false);
            logger.addAppender(log);
            return log;
        }

        @Override
        protected synchronized void append(ILoggingEvent event) {
            Matcher m = LINE.matcher(event.getFormattedMessage());
            if (m.find()) {
                devices++;
                long n = Long.parseLong(m.group(1));
                reporting += n > 0 ? 1 : 0;
                reports += n;
                releasedMib += Long.parseLong(m.group(3));
            }
        }

        synchronized String since(int devices0, int reporting0, long reports0, long released0) {
            return (reporting - reporting0) + " of " + (devices - devices0) + " balloons got free page reports, "
                    + (reports - reports0) + " reports, " + (releasedMib - released0) + " MiB released to the host in all";
        }
    }

    /** MiB every tenth Linux guest writes to its tmpfs and frees again, to see free page reporting at work. */
    static final int FILL_MIB = Integer.parseInt(System.getenv().getOrDefault("KRUN_DENSITY_FILL", "2"));

    /** VMs started but not yet idle, at most (KRUN_DENSITY_STARTING; 0: all at once). */
    static final int STARTING = Integer.parseInt(System.getenv().getOrDefault("KRUN_DENSITY_STARTING", "4"));

    /** Descriptors the JVM may open by itself meanwhile (a jar, a class file). */
    static final int FD_SLACK = 2;
    /** The JVM's own allocations through Unsafe meanwhile. */
    static final long NATIVE_SLACK_KIB = 1024;

    record Bench(KrunService krun, String guest, int memoryMib, Path disk, Path share, Path templates,
            Map<Integer, Double> guestWritten, BalloonLog balloons) {

        VmConfig config(int i) {
            VmConfig.Builder b = VmConfig.builder().memoryMib(memoryMib)
                    .console(ConsoleSpec.terminal(OutputStream.nullOutputStream(), 80, 24))
                    .device(DiskSpec.raw(disk).withReadOnly(true)).device(new FsShareSpec("share", share, true));
            if (guest.startsWith("linux")) {
                b.kernel(Path.of(System.getProperty("krun.kernel"))).root(Path.of(System.getProperty("krun.rootfs")))
                        .command("/bin/sh", "-c", guestLoop(i));
                if (guest.equals("linux")) {
                    b.templateCache(templates);
                }
            } else {
                b.kernel(Path.of(System.getProperty("krun.guests"), "burst.elf")).command("fast-guest");
            }
            return b.build();
        }

        /**
         * The Linux guest's command: {@code sleep} in the background, then a shell loop over the console's
         * lines, all in shell builtins (a fork costs a second here): "fill" writes {@link #FILL_MIB} MiB to a
         * file in /tmp (tmpfs: guest RAM) and says so, "free" empties the file (the guest frees those pages:
         * free page reporting should give them back to the host) and says so, any other line is answered
         * after the VM's number. The 64 KiB line written 16 times a MiB is made by doubling a 16-byte one.
         */
        static String guestLoop(int i) {
            return "sleep 1000000 & echo " + READY + "; while read -r line; do case \"$line\" in "
                    + "fill) s=0123456789abcdef; for k in 1 2 3 4 5 6 7 8 9 10 11 12; do s=$s$s; done; n=0; "
                    + "while [ $n -lt " + FILL_MIB * 16 + " ]; do echo $s; n=$((n+1)); done > /tmp/fill; s=; "
                    + "echo filled by vm" + i + ".;; "
                    + "free) : > /tmp/fill; echo freed by vm" + i + ".;; "
                    + "*) echo \"" + ANSWER + i + ": $line\";; esac; done";
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
                // At most STARTING VMs on their way to idle at a time: on kvm-pvm (two cores, load 100), 100 Linux
                // guests restored at once all kept their vCPUs busy and none got far: after 18 minutes each had
                // written 0.6-0.9 MiB of guest RAM, where an idle one has written 3 MiB. Why (bench/guestprof on
                // 16 restored at once, host load 26-29): the vCPUs never left KVM_RUN (2 ioctls in 10 s) and
                // the VMM's other threads were idle; each guest kernel got about 14,000 emulated instructions a
                // second and spent them on its timer interrupt (10,000-20,000 instructions each, catching up on
                // the wall time that passed while its vCPU waited: timekeeping, hrtimers, the scheduler's tick and
                // load averages), so none got to its command. Busy guests need a CPU share above what their
                // ticks cost; a VM that is idle in hlt has no tick and costs nothing.
                long deadline = System.nanoTime() + Duration.ofSeconds(guest.startsWith("linux") ? 300 + 120L * n : 60).toNanos();
                for (int i = 0; i < n; i++) {
                    for (int j = 0; STARTING > 0 && j < i - STARTING + 1; j++) {
                        awaitIdle(vms.get(j), deadline);
                    }
                    VirtualMachine vm = krun.create(config(i));
                    vms.add(vm);
                    vm.start();
                }
                for (VirtualMachine vm : vms) {
                    awaitIdle(vm, deadline);
                }
                double startSeconds = (System.nanoTime() - start) / 1e9;
                if (!print) {
                    return;
                }
                // A Linux guest prints its line while the `sleep` it started in the background may still be
                // loading from the root share: wait (bounded) until the devices' workers have ended, then let
                // the pools see they have nothing to do (their keep-alive), then measure.
                long quiet = System.nanoTime() + Duration.ofSeconds(60 + 5L * n).toNanos();
                while (Usage.take(memoryMib).workers() > 0 && System.nanoTime() < quiet) {
                    Thread.sleep(500);
                }
                Thread.sleep(12_000);
                Usage idle = Usage.take(memoryMib);
                long cpu0 = Usage.cpuTicks();
                long t0 = System.nanoTime();
                Thread.sleep((long) (idleSeconds * 1000));
                long ticks = Usage.cpuTicks() - cpu0;
                double wall = (System.nanoTime() - t0) / 1e9;
                double cpuPercent = 100.0 * ticks / 100.0 / wall; // USER_HZ is 100 on Linux
                double vmmKib = (idle.rssKib() - idle.guestKib()) - (before.rssKib() - before.guestKib());
                System.out.printf("%5d %12.1f %12.1f %12.1f %12.2f %14.2f %13.1f %9.1f %8.2f%% %9.3f%% %12.1f%n", n,
                        idle.rssKib() / 1024.0, idle.guestKib() / 1024.0, idle.guestPssKib() / 1024.0,
                        idle.guestAnonKib() / 1024.0 / n, vmmKib / 1024.0 / n,
                        (idle.tasks() - before.tasks()) / (double) n,
                        (idle.fds() - before.fds()) / (double) n, cpuPercent, cpuPercent / n, startSeconds);
                if (idle.guestMappings() != n) {
                    System.out.println("      (found " + idle.guestMappings() + " guest RAM mappings of " + memoryMib
                            + " MiB for " + n + " VMs: the guest RSS column is off)");
                }
                System.out.println("      threads by name, idle, for " + n + " VM(s): " + groups(idle.threads(), before.threads()));
                guestWritten.put(n, idle.guestAnonKib() / (double) n);
                if (guest.startsWith("linux")) {
                    ask(vms);
                    fillAndFree(vms, idle.guestAnonKib());
                }
            } finally {
                int devices0;
                int reporting0;
                long reports0;
                long released0;
                synchronized (balloons) {
                    devices0 = balloons.devices;
                    reporting0 = balloons.reporting;
                    reports0 = balloons.reports;
                    released0 = balloons.releasedMib;
                }
                for (VirtualMachine vm : vms) {
                    vm.close();
                }
                if (print) {
                    System.out.println("      free page reporting, from each VM's start to its close: "
                            + balloons.since(devices0, reporting0, reports0, released0));
                }
            }
            if (print) {
                backToBaseline(n, before);
            }
        }

        /**
         * Writes a line to each VM's console input and waits until each guest's shell loop has printed it
         * back after its own number: every VM must answer, and with its own answer (the line carries the
         * VM's number and a nonce; the terminal's echo of the line is not an answer).
         */
        void ask(List<VirtualMachine> vms) throws Exception {
            String nonce = Long.toHexString(new SecureRandom().nextLong());
            long t0 = System.nanoTime();
            for (int i = 0; i < vms.size(); i++) {
                OutputStream in = vms.get(i).consoleInput();
                in.write(("q" + i + "-" + nonce + "\n").getBytes(StandardCharsets.UTF_8));
                in.flush();
            }
            long deadline = System.nanoTime() + Duration.ofSeconds(120 + 5L * vms.size()).toNanos();
            List<Integer> missing = new ArrayList<>();
            for (int i = 0; i < vms.size(); i++) {
                String want = ANSWER + i + ": q" + i + "-" + nonce;
                while (!new String(vms.get(i).consoleTail(), StandardCharsets.UTF_8).contains(want)
                        && !vms.get(i).exit().isDone() && System.nanoTime() < deadline) {
                    Thread.sleep(20);
                }
                if (!new String(vms.get(i).consoleTail(), StandardCharsets.UTF_8).contains(want)) {
                    missing.add(i);
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            System.out.printf("      answers: %d of %d VMs printed their own answer to a line written to their console"
                    + " (all within %.1f s)%n", vms.size() - missing.size(), vms.size(), seconds);
            if (!missing.isEmpty()) {
                failed = true;
                String tail = new String(vms.get(missing.get(0)).consoleTail(), StandardCharsets.UTF_8);
                System.out.println("      FAILED: no answer from VM(s) " + missing + "; the first one's console ends: "
                        + tail.substring(Math.max(0, tail.length() - 300)).replace("\r", "").replace("\n", " | "));
            }
        }

        void awaitIdle(VirtualMachine vm, long deadline) throws Exception {
            while (!idle(vm)) {
                if (vm.exit().isDone() || System.nanoTime() > deadline) {
                    throw new IllegalStateException("VM " + vm.id() + " did not become idle: "
                            + (vm.exit().isDone() ? vm.exit().get() : "timed out") + "; console: "
                            + new String(vm.consoleTail(), StandardCharsets.UTF_8));
                }
                Thread.sleep(20);
            }
        }

        /**
         * Free page reporting at work: every tenth VM (the first of each ten) writes {@link #FILL_MIB} MiB to
         * its tmpfs (the host copies those pages out of the template: the guest RAM of the VMs' own grows by
         * about that much for each), then frees them; the guest kernels report the free pages and the balloons
         * release them, so at least half of what the writes added to the guest RAM of the VMs' own (all VMs
         * together) must be given back (not all: a freed page whose 128 KiB block holds a page still in use is
         * not reported; one 64 MiB VM writing 4 MiB gave back 3.2 of 4.4 MiB). Every tenth, not all: writing guest RAM runs the emulated
         * guest kernel, seconds per MiB on kvm-pvm. Waited for, with a bound, never timed.
         */
        void fillAndFree(List<VirtualMachine> vms, long idleAnonKib) throws Exception {
            if (FILL_MIB == 0) {
                return;
            }
            List<Integer> fillers = new ArrayList<>();
            for (int i = 0; i < vms.size(); i += 10) {
                fillers.add(i);
            }
            int f = fillers.size();
            long t0 = System.nanoTime();
            if (!tell(vms, fillers, "fill", "filled by vm")) {
                return;
            }
            double fillSeconds = (System.nanoTime() - t0) / 1e9;
            Usage filled = Usage.take(memoryMib);
            long t1 = System.nanoTime();
            if (!tell(vms, fillers, "free", "freed by vm")) {
                return;
            }
            long bound = idleAnonKib + (filled.guestAnonKib() - idleAnonKib) / 2;
            long deadline = System.nanoTime() + Duration.ofSeconds(60 + 2L * vms.size()).toNanos();
            Usage freed = Usage.take(memoryMib);
            while (freed.guestAnonKib() > bound && System.nanoTime() < deadline) {
                Thread.sleep(500);
                freed = Usage.take(memoryMib);
            }
            boolean grew = filled.guestAnonKib() - idleAnonKib >= FILL_MIB * 1024L * f * 3 / 4;
            boolean ok = grew && freed.guestAnonKib() <= bound;
            System.out.printf("      free page reporting: %d of %d VMs wrote %d MiB each to /tmp (in %.1f s) and freed it;"
                    + " guest RAM of the VMs' own, all together: %.1f MiB idle, %.1f MiB written, %.1f MiB %.1f s after"
                    + " freeing: %s%n", f, vms.size(), FILL_MIB, fillSeconds, idleAnonKib / 1024.0,
                    filled.guestAnonKib() / 1024.0, freed.guestAnonKib() / 1024.0, (System.nanoTime() - t1) / 1e9,
                    ok ? "given back" : !grew ? "FAILED: the writes did not show" : "FAILED: less than half given back");
            failed |= !ok;
        }

        /** Writes {@code line} to the consoles of the VMs {@code which} and waits (bounded) for each to print {@code reply}, its number, ".". */
        boolean tell(List<VirtualMachine> vms, List<Integer> which, String line, String reply) throws Exception {
            for (int i : which) {
                vms.get(i).consoleInput().write((line + "\n").getBytes(StandardCharsets.UTF_8));
                vms.get(i).consoleInput().flush();
            }
            long deadline = System.nanoTime() + Duration.ofSeconds(300 + 60L * FILL_MIB * which.size()).toNanos();
            for (int i : which) {
                String want = reply + i + ".";
                while (!new String(vms.get(i).consoleTail(), StandardCharsets.UTF_8).contains(want)) {
                    if (vms.get(i).exit().isDone() || System.nanoTime() > deadline) {
                        failed = true;
                        String tail = new String(vms.get(i).consoleTail(), StandardCharsets.UTF_8);
                        System.out.println("      FAILED: VM " + i + " did not print '" + want + "' after '" + line
                                + "'; its console ends: " + tail.substring(Math.max(0, tail.length() - 300))
                                        .replace("\r", "").replace("\n", " | "));
                        return false;
                    }
                    Thread.sleep(20);
                }
            }
            return true;
        }

        /**
         * After all VMs are closed: the threads, descriptors, guest RAM and KVM mappings and the JVM's native
         * allocations (NMT's "Other": FFM arenas and direct buffers) must be back where they were before the
         * VMs started. The threads of closed VMs end on their own: waited for, with a bound, never timed.
         */
        void backToBaseline(int n, Usage before) throws Exception {
            Usage after = Usage.settled(memoryMib);
            for (int i = 0; i < 300 && (after.tasks() > before.tasks() || after.fds() > before.fds() + FD_SLACK); i++) {
                Thread.sleep(100);
                after = Usage.settled(memoryMib);
            }
            List<String> checks = new ArrayList<>();
            if (after.tasks() > before.tasks()) {
                checks.add("threads left: " + groups(after.threads(), before.threads()));
            }
            if (after.fds() > before.fds() + FD_SLACK) {
                checks.add((after.fds() - before.fds()) + " fds left");
            }
            if (after.guestMappings() != 0 || after.kvmMappings() != 0) {
                checks.add(after.guestMappings() + " guest RAM and " + after.kvmMappings() + " KVM mappings left");
            }
            if (after.nmtOtherKib() > before.nmtOtherKib() + NATIVE_SLACK_KIB) {
                checks.add("native allocations (NMT Other) grew by " + (after.nmtOtherKib() - before.nmtOtherKib()) + " KiB");
            }
            System.out.printf("      all %d stopped: threads %d before, %d after; fds %d, %d; guest RAM + KVM mappings %d, %d;"
                    + " NMT Other (FFM, direct buffers) %.1f MiB, %.1f MiB; NMT total committed %.1f MiB, %.1f MiB;"
                    + " RSS %.1f MiB, %.1f MiB: %s%n", n, before.tasks(), after.tasks(), before.fds(), after.fds(),
                    before.guestMappings() + before.kvmMappings(), after.guestMappings() + after.kvmMappings(),
                    before.nmtOtherKib() / 1024.0, after.nmtOtherKib() / 1024.0, before.nmtTotalKib() / 1024.0,
                    after.nmtTotalKib() / 1024.0, before.rssKib() / 1024.0, after.rssKib() / 1024.0,
                    checks.isEmpty() ? "back to baseline" : "FAILED: " + String.join("; ", checks));
            failed |= !checks.isEmpty();
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

    /**
     * What the process holds now: its resident set, the guest RAM part of it (RSS, PSS and the pages written
     * since a template restore, "Anonymous" in smaps), the guest RAM and KVM mappings, tasks (compiler threads
     * aside), the Java threads' names, fds, and NMT's figures (zero without -XX:NativeMemoryTracking).
     */
    record Usage(long rssKib, long guestKib, long guestPssKib, long guestAnonKib, int guestMappings, int kvmMappings,
            int tasks, List<String> threads, int fds, long nmtOtherKib, long nmtTotalKib) {

        static Usage settled(int memoryMib) throws Exception {
            System.gc();
            Thread.sleep(500);
            return take(memoryMib);
        }

        static Usage take(int memoryMib) throws IOException {
            Memory m = Memory.of(Path.of("/proc/self"), memoryMib);
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
            int fds;
            try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
                fds = (int) s.count() - 1; // the listing's own
            }
            long[] nmt = nmt();
            return new Usage(m.rssKib(), m.guestKib(), m.guestPssKib(), m.guestAnonKib(), m.guestMappings(),
                    m.kvmMappings(), tasks, threads, fds, nmt[0], nmt[1]);
        }

        /** NMT's committed KiB for "Other" (Unsafe: FFM arenas, direct buffers) and in total; zeros without NMT. */
        static long[] nmt() {
            try {
                String summary = (String) ManagementFactory.getPlatformMBeanServer().invoke(
                        new ObjectName("com.sun.management:type=DiagnosticCommand"), "vmNativeMemory",
                        new Object[] {new String[] {"summary"}}, new String[] {String[].class.getName()});
                Matcher other = Pattern.compile("-\\s+Other \\(reserved=\\d+KB, committed=(\\d+)KB\\)").matcher(summary);
                Matcher total = Pattern.compile("Total: reserved=\\d+KB, committed=(\\d+)KB").matcher(summary);
                return new long[] {other.find() ? Long.parseLong(other.group(1)) : 0,
                        total.find() ? Long.parseLong(total.group(1)) : 0};
            } catch (Exception e) {
                return new long[2];
            }
        }

        /** The devices' worker threads (virtio-fs, virtio-blk): they exist only while there are requests. */
        long workers() {
            return threads.stream().filter(t -> t.startsWith("krun-fs-") || t.startsWith("krun-blk-")).count();
        }

        static long cpuTicks() throws IOException {
            String stat = Files.readString(Path.of("/proc/self/stat"));
            String[] f = stat.substring(stat.lastIndexOf(')') + 2).split(" ");
            return Long.parseLong(f[11]) + Long.parseLong(f[12]); // utime, stime (fields 14 and 15)
        }
    }

    /**
     * A process's resident set and the guest RAM part of it, from /proc/PID/smaps. krun's guest RAM: private
     * anonymous mappings made with MAP_NORESERVE ("nr" in VmFlags) whose size is a multiple of the guest's
     * (the kernel merges adjacent ones), or, for a VM restored from a template, the private mapping of the
     * template's "ram" file; the JVM's heap is sized apart (-Xmx). QEMU's (with {@code qemu}): its private
     * anonymous mappings of the guest's size up to 4 MiB more (its RAM block, aligned).
     */
    record Memory(long rssKib, long guestKib, long guestPssKib, long guestAnonKib, int guestMappings, int kvmMappings) {

        static Memory of(Path proc, int memoryMib) throws IOException {
            return of(proc, memoryMib, false);
        }

        static Memory of(Path proc, int memoryMib, boolean qemu) throws IOException {
            long guest = 0;
            long guestPss = 0;
            long guestAnon = 0;
            int mappings = 0;
            int kvm = 0;
            long want = memoryMib * 1024L;
            long size = 0;
            long rss = 0;
            long pss = 0;
            long anon = 0;
            boolean candidate = false;
            for (String line : Files.readAllLines(proc.resolve("smaps"))) {
                if (line.matches("[0-9a-f]+-[0-9a-f]+ .*")) {
                    String[] f = line.split("\\s+");
                    String[] range = f[0].split("-");
                    size = (Long.parseUnsignedLong(range[1], 16) - Long.parseUnsignedLong(range[0], 16)) / 1024;
                    candidate = f[1].equals("rw-p") && (f.length == 5 || (!qemu && f[f.length - 1].endsWith("/ram")));
                    if (f.length > 5 && f[5].contains("kvm")) {
                        kvm++;
                    }
                } else if (line.startsWith("Rss:")) {
                    rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("Pss:")) {
                    pss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("Anonymous:")) {
                    anon = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("VmFlags:") && candidate) {
                    boolean ram = qemu ? size >= want && size <= want + 4096
                            : size % want == 0 && List.of(line.substring(8).trim().split(" ")).contains("nr");
                    if (ram) {
                        mappings += qemu ? 1 : (int) (size / want);
                        guest += rss;
                        guestPss += pss;
                        guestAnon += anon;
                    }
                }
            }
            long vmRss = 0;
            for (String line : Files.readAllLines(proc.resolve("status"))) {
                if (line.startsWith("VmRSS:")) {
                    vmRss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
            return new Memory(vmRss, guest, guestPss, guestAnon, mappings, kvm);
        }
    }
}
