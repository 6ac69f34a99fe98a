import java.io.IOException;
import java.lang.ProcessBuilder.Redirect;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * bench/boot: runs {@code krun run -- /bin/true} several times booting cold ({@code --no-template}) and as
 * many times from a template, alternating, and prints the median of each phase, read from the VM's boot
 * timeline (logged at DEBUG) and the wall clock around the process, and the cold/template ratio. Where the
 * host has hardware virtualisation it alternates with QEMU's microvm on the same kernel and initramfs
 * and prints the ratio; on kvm-pvm hosts it records whether QEMU boots at all.
 *
 * Usage: java bench/BootBench.java REPO RUNS
 */
public class BootBench {

    record Run(long spawn, long end, Map<String, Long> t, int status) {
        long between(String from, String to) {
            Long a = from.equals("spawn") ? (Long) spawn : t.get(from);
            Long b = to.equals("end") ? (Long) end : t.get(to);
            return a == null || b == null ? -1 : b - a;
        }
    }

    static final Pattern TIMELINE = Pattern.compile("timeline: (.*)$");
    /** The init's steps after the root is switched (port 0xf5), and the run's end: both kinds of run share them. */
    static final String[][] AFTER_ROOT = {
        {"  init: /proc, /sys, /dev, mounts, provided files", "root", "files"},
        {"  init: console ports", "files", "console"},
        {"  init: network", "console", "network"},
        {"  init: environment, fork, to exec", "network", "exec"},
        {"  the command itself", "exec", "exited"},
        {"  init: sync, unmount, status", "exited", "status"},
        {"guest reboot", "status", "stop"},
        {"VM teardown", "stop", "released"},
        {"JVM exit", "released", "end"},
        {"total wall time", "spawn", "end"},
    };
    static final String[][] PHASES = concat(new String[][] {
        {"krun script and JVM launch", "spawn", "jvm"},
        {"JVM and framework start (to VirtualMachine.start)", "jvm", "start"},
        {"VMM set-up to first KVM_RUN", "start", "first_run"},
        {"kernel entry to init", "first_run", "init"},
        {"init to command exit (/bin/true)", "init", "status"},
        {"  init: configuration read, root switched", "init", "root"},
    }, AFTER_ROOT);
    /** A run restored from a template (docs/templates.md): no kernel boot; the init gets its configuration. */
    static final String[][] TEMPLATE_PHASES = concat(new String[][] {
        {"krun script and JVM launch", "spawn", "jvm"},
        {"JVM and framework start (to VirtualMachine.start)", "jvm", "start"},
        {"template lookup and restore to first KVM_RUN", "start", "first_run"},
        {"first KVM_RUN to init's configuration read", "first_run", "config"},
        {"configuration to command exit (/bin/true)", "config", "status"},
        {"  init: root switched", "config", "root"},
    }, AFTER_ROOT);

    static String[][] concat(String[][] a, String[][] b) {
        String[][] all = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, all, a.length, b.length);
        return all;
    }

    public static void main(String[] args) throws Exception {
        Path repo = Path.of(args[0]);
        int runs = Integer.parseInt(args[1]);
        String host = HostInfo.hostKind();
        boolean hardware = host.startsWith("hardware");
        Path kernel = repo.resolve(Path.of(System.getProperty("user.home"), ".cache/krun/kernel/current/vmlinux").toString());
        System.out.println("bench/boot: krun run -- /bin/true, " + runs + " runs (plus one warm-up), median");
        System.out.println("host: " + host + "; " + HostInfo.cpuModel() + "; " + Runtime.getRuntime().availableProcessors() + " CPUs");
        System.out.println("kernel: " + kernel.toRealPath() + " (" + Files.size(kernel) / 1024 + " KiB ELF vmlinux)");
        if (!hardware) {
            System.out.println("note: guest kernel code is emulated on this host: guest-side phases are not comparable "
                    + "with hardware virtualisation; the VMM's own phases are.");
        }

        krun(repo, false); // warm-up: page cache, CDS
        krun(repo, true); // makes the template (or finds it)
        List<Run> cold = new ArrayList<>();
        List<Run> warm = new ArrayList<>();
        // Alternating, so that the host's load shifts both alike.
        for (int i = 0; i < runs; i++) {
            keep(cold, krun(repo, false), "cold run " + i);
            keep(warm, krun(repo, true), "template run " + i);
        }
        System.out.println();
        System.out.println("cold boot (krun run --no-template -- /bin/true), " + cold.size() + " runs:");
        table(cold, PHASES);
        System.out.println();
        System.out.println("from a template (krun run -- /bin/true), " + warm.size() + " runs:");
        table(warm, TEMPLATE_PHASES);
        if (!cold.isEmpty() && !warm.isEmpty()) {
            long c = median(cold.stream().map(r -> r.between("spawn", "end")).sorted().toList());
            long w = median(warm.stream().map(r -> r.between("spawn", "end")).sorted().toList());
            System.out.printf("%ncold / template, median whole process: %.1f s / %.1f s = %.1fx%n", c / 1e6, w / 1e6, (double) c / w);
            List<Long> cvs = cold.stream().map(r -> r.between("start", "released")).filter(x -> x >= 0).sorted().toList();
            List<Long> wvs = warm.stream().map(r -> r.between("start", "released")).filter(x -> x >= 0).sorted().toList();
            if (!cvs.isEmpty() && !wvs.isEmpty()) {
                long cv = median(cvs);
                long wv = median(wvs);
                System.out.printf("cold / template, median VM part (start to released): %.1f s / %.1f s = %.1fx%n",
                        cv / 1e6, wv / 1e6, (double) cv / wv);
            }
        }
        System.out.println();
        compareWithQemu(repo, kernel, runs, hardware);
    }

    static void keep(List<Run> runs, Run r, String what) {
        if (r.status != 0) {
            System.out.println(what + " exited " + r.status + "; ignoring it");
        } else {
            runs.add(r);
        }
    }

    static void table(List<Run> runs, String[][] phases) {
        System.out.printf("%-52s %10s %10s %10s%n", "phase", "median ms", "min ms", "max ms");
        for (String[] p : phases) {
            List<Long> v = runs.stream().map(r -> r.between(p[1], p[2])).filter(x -> x >= 0).sorted().toList();
            if (v.isEmpty()) {
                continue;
            }
            System.out.printf("%-52s %10.1f %10.1f %10.1f%n", p[0], median(v) / 1000.0, v.get(0) / 1000.0,
                    v.get(v.size() - 1) / 1000.0);
        }
    }

    /**
     * krun and QEMU's microvm, alternating, on the same kernel and the same initramfs (the default rootfs
     * packed as a cpio, krun's init on top), running the same command; wall time from process start to exit.
     */
    static void compareWithQemu(Path repo, Path kernel, int runs, boolean hardware) throws Exception {
        if (!Files.isExecutable(Path.of("/usr/bin/qemu-system-x86_64"))) {
            System.out.println("QEMU microvm: not installed (apt-get install qemu-system-x86), comparison skipped");
            return;
        }
        QemuSetup qemu = QemuSetup.prepare(repo, kernel);
        long probe = qemu.run();
        if (probe < 0) {
            System.out.println("QEMU microvm on this host: " + qemu.failure());
            return;
        }
        System.out.println("QEMU microvm boots krun's kernel here (PVH entry)"
                + (hardware ? "" : "; on kvm-pvm both spend their time in emulated guest kernel code, so the ratio "
                        + "says little about hardware hosts"));
        List<Long> k = new ArrayList<>();
        List<Long> q = new ArrayList<>();
        for (int i = 0; i < runs; i++) {
            k.add(qemu.runKrun(repo));
            q.add(qemu.run());
        }
        List<Long> ks = k.stream().filter(x -> x > 0).sorted().toList();
        List<Long> qs = q.stream().filter(x -> x > 0).sorted().toList();
        if (ks.isEmpty() || qs.isEmpty()) {
            System.out.println("comparison incomplete: krun runs ok " + ks.size() + ", QEMU runs ok " + qs.size());
            return;
        }
        System.out.printf("same kernel + initramfs, sh -c 'exit 21', median wall: krun %.1f ms, QEMU microvm %.1f ms%n",
                median(ks) / 1000.0, median(qs) / 1000.0);
        System.out.printf("krun/QEMU wall-time ratio: %.2f%n", (double) median(ks) / median(qs));
    }

    static long median(List<Long> sorted) {
        int n = sorted.size();
        return n % 2 == 1 ? sorted.get(n / 2) : (sorted.get(n / 2 - 1) + sorted.get(n / 2)) / 2;
    }

    static long nowMicros() {
        Instant t = Instant.now();
        return t.getEpochSecond() * 1_000_000 + t.getNano() / 1_000;
    }

    /** One {@code krun run -- /bin/true}; from a template (made by an earlier run) or, without, booting cold. */
    static Run krun(Path repo, boolean template) throws IOException, InterruptedException {
        long spawn = nowMicros();
        List<String> cmd = new ArrayList<>(List.of(repo.resolve("krun").toString(), "--log-level", "debug", "run"));
        if (!template) {
            cmd.add("--no-template");
        }
        cmd.addAll(List.of("--", "/bin/true"));
        Process p = new ProcessBuilder(cmd)
                .redirectInput(Redirect.from(new java.io.File("/dev/null")))
                .redirectOutput(Redirect.DISCARD).start();
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        int status = p.waitFor();
        long end = nowMicros();
        Map<String, Long> t = new LinkedHashMap<>();
        for (String line : err.lines().toList()) {
            Matcher m = TIMELINE.matcher(line);
            if (m.find()) {
                for (String kv : m.group(1).trim().split(" ")) {
                    String[] a = kv.split("=");
                    t.put(a[0], Long.parseLong(a[1]));
                }
            }
        }
        if (t.isEmpty()) {
            System.out.println("no timeline in krun's output:\n" + err);
        }
        return new Run(spawn, end, t, status);
    }

    /** The same kernel, the default rootfs and krun's init as one initramfs, booted by QEMU's microvm. */
    record QemuSetup(Path kernel, Path initrd, Path rootfsCpio, String[] lastFailure) {
        static final String APPEND = "console=hvc0 reboot=k panic=-1 rdinit=/krun/init quiet loglevel=1 clocksource=kvm-clock"; // as krun's KVM backend
        /** isa-debug-exit makes QEMU exit with (status << 1) | 1: the guest command's 21 gives 43. */
        static final int QEMU_GUEST_EXIT = 43;

        static QemuSetup prepare(Path repo, Path kernel) throws IOException, InterruptedException {
            // The command exits 21 so that QEMU's isa-debug-exit status, (21 << 1) | 1 = 43, cannot be
            // mistaken for QEMU's own failure status 1. `exit` is a shell builtin: the same work as /bin/true.
            return prepare(repo, kernel, List.of("/bin/sh", "-c", "exit 21"));
        }

        /** The initramfs for QEMU with krun's init running {@code command}; plain words, no quotes or backslashes. */
        static QemuSetup prepare(Path repo, Path kernel, List<String> command) throws IOException, InterruptedException {
            for (String word : command) {
                if (word.contains("\"") || word.contains("\\")) {
                    throw new IllegalArgumentException("the QEMU guest's command takes no quotes or backslashes: " + word);
                }
            }
            Path dir = Files.createTempDirectory("krun-bench-qemu");
            Path tree = dir.resolve("root");
            Path rootfs = Path.of(System.getProperty("user.home"), ".cache/krun/rootfs/default").toRealPath();
            run(List.of("cp", "-a", rootfs.toString(), tree.toString()));
            Path rootfsCpio = dir.resolve("rootfs.cpio");
            run(List.of("sh", "-c", "cd '" + tree + "' && find . | cpio -o -H newc --quiet > '" + rootfsCpio + "'"));
            Files.createDirectories(tree.resolve("krun"));
            Files.copy(repo.resolve("org.krun.vmm/target/classes/org/krun/vmm/guest/krun-init"), tree.resolve("krun/init"));
            tree.resolve("krun/init").toFile().setExecutable(true);
            Files.writeString(tree.resolve("krun/config.json"), "{\"cmd\":[\"" + String.join("\",\"", command) + "\"],\"env\":[],"
                    + "\"workdir\":\"/\",\"hostname\":\"krun\",\"rlimits\":[],\"console\":\"terminal\",\"columns\":80,"
                    + "\"rows\":24,\"exit_port\":244}\n");
            Path initrd = dir.resolve("initrd.cpio");
            run(List.of("sh", "-c", "cd '" + tree + "' && find . | cpio -o -H newc --quiet > '" + initrd + "'"));
            return new QemuSetup(kernel, initrd, rootfsCpio, new String[1]);
        }

        String failure() {
            return lastFailure[0] == null ? "did not boot" : lastFailure[0];
        }

        /** krun on the same kernel with the same rootfs as its initramfs (krun adds its init on top). */
        long runKrun(Path repo) throws IOException, InterruptedException {
            long spawn = nowMicros();
            Process p = new ProcessBuilder(repo.resolve("krun").toString(), "run", "--initrd", rootfsCpio.toString(),
                    "--", "/bin/sh", "-c", "exit 21").redirectErrorStream(true).redirectOutput(Redirect.DISCARD)
                    .redirectInput(Redirect.from(new java.io.File("/dev/null"))).start();
            return p.waitFor() == 21 ? nowMicros() - spawn : -1;
        }

        List<String> command() {
            return command(512, "null,id=con0");
        }

        /** QEMU's command line: {@code memoryMib} of guest RAM, the console to {@code chardev} (its id con0). */
        List<String> command(int memoryMib, String chardev) {
            boolean pvm = Files.isDirectory(Path.of("/sys/module/kvm_pvm"));
            String append = pvm
                    ? APPEND + " noxsave nofsgsbase clearcpuid=popcnt,smap,erms,fsrm" // what krun adds on kvm-pvm hosts
                    : APPEND;
            // On kvm-pvm, QEMU 7.2 with -cpu host aborts at start ("failed to set MSR 0x10a", IA32_ARCH_CAPABILITIES,
            // then kvm_buf_set_msrs' assertion): the model without that feature boots (as bench/net part 4).
            String cpu = pvm ? "host,-arch-capabilities" : "host";
            // acpi=off: krun's kernel has no ACPI, so QEMU must announce the virtio-mmio devices on the command line.
            return List.of("qemu-system-x86_64", "-M", "microvm,x-option-roms=off,isa-serial=off,rtc=on,acpi=off", "-enable-kvm",
                    "-cpu", cpu, "-m", Integer.toString(memoryMib), "-smp", "1", "-nodefaults", "-no-user-config", "-nographic",
                    "-no-reboot", "-kernel", kernel.toString(), "-initrd", initrd.toString(), "-append", append,
                    "-device", "virtio-serial-device", "-chardev", chardev, "-device", "virtconsole,chardev=con0",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01");
        }

        /** Wall time in µs of one boot to the command's exit; -1 if it failed (then {@link #failure()} says how). */
        long run() throws IOException, InterruptedException {
            long spawn = nowMicros();
            Process p = new ProcessBuilder(command()).redirectErrorStream(true).start();
            boolean done = p.waitFor(180, TimeUnit.SECONDS);
            if (!done) {
                p.destroyForcibly();
                p.waitFor();
            }
            long wall = nowMicros() - spawn;
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
            if (done && p.exitValue() == QEMU_GUEST_EXIT) {
                return wall;
            }
            String tail = out.lines().reduce((a, b) -> b).orElse("");
            lastFailure[0] = "did not boot (" + (done ? "exit " + p.exitValue() : "no result within 180 s, killed")
                    + (tail.isEmpty() ? "" : "; last output: " + tail) + ")";
            return -1;
        }

        static void run(List<String> cmd) throws IOException, InterruptedException {
            Process p = new ProcessBuilder(cmd).inheritIO().start();
            if (p.waitFor() != 0) {
                throw new IOException("failed: " + cmd);
            }
        }
    }
}
