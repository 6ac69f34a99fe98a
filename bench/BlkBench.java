import java.io.IOException;
import java.lang.ProcessBuilder.Redirect;
import java.lang.invoke.VarHandle;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.function.IntConsumer;

import org.krun.api.DiskSpec;
import org.krun.device.blk.internal.BlkFactory;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

/**
 * bench/blk: virtio-blk throughput.
 *
 * <p>Part 1, on any host: the device's own throughput in-process. A driver thread keeps a fixed number of
 * requests in flight through the driver-side mock queue (the test-jar's MockDriverQueue) against a raw
 * image in the host page cache; the device runs as in a VM (its event-loop thread, its I/O pool) and
 * "interrupts" wake the driver. Requests/s and MiB/s for 4 KiB random and 1 MiB sequential reads and
 * writes, 1 and 32 in flight.
 *
 * <p>Part 2, only where hardware virtualisation exists: fio in the guest (sequential 1 MiB, random 4 KiB,
 * read and write, queue depth 1 and 32, O_DIRECT in the guest) on the same raw image under krun and under
 * QEMU's microvm (virtio-blk-device, cache=writeback: both through the host page cache, as krun's
 * default), alternating, with medians and krun/QEMU ratios. On kvm-pvm hosts guest kernel code is
 * interpreted, so guest-side figures mean nothing there and QEMU cannot boot: the part is skipped, saying so.
 *
 * Usage: java -cp ... bench/BlkBench.java REPO SECONDS ROUNDS
 */
public class BlkBench {

    record Workload(String name, int blockSize, boolean write, boolean random, int inFlight) {
    }

    static final List<Workload> IN_PROCESS = List.of(
            new Workload("4 KiB random read", 4096, false, true, 1),
            new Workload("4 KiB random read", 4096, false, true, 32),
            new Workload("4 KiB random write", 4096, true, true, 1),
            new Workload("4 KiB random write", 4096, true, true, 32),
            new Workload("1 MiB sequential read", 1 << 20, false, false, 1),
            new Workload("1 MiB sequential read", 1 << 20, false, false, 32),
            new Workload("1 MiB sequential write", 1 << 20, true, false, 1),
            new Workload("1 MiB sequential write", 1 << 20, true, false, 32));

    public static void main(String[] args) throws Exception {
        Path repo = Path.of(args[0]);
        double seconds = Double.parseDouble(args[1]);
        int rounds = Integer.parseInt(args[2]);
        String host = HostInfo.hostKind();
        System.out.println("bench/blk: virtio-blk throughput");
        System.out.println("host: " + host + "; " + HostInfo.cpuModel() + "; " + Runtime.getRuntime().availableProcessors() + " CPUs");
        System.out.println();
        inProcess(seconds);
        System.out.println();
        if (host.startsWith("hardware")) {
            GuestFio.run(repo, rounds);
        } else {
            System.out.println("part 2, fio in the guest under krun and QEMU microvm: SKIPPED. This host is " + host + ":");
            System.out.println("guest kernel code is interpreted there, so guest I/O rates would measure the emulator, not the");
            System.out.println("VMMs, and QEMU cannot boot at all (see ../shared/KVM-HOST.md). Run bench/blk on a host with");
            System.out.println("vmx or svm in /proc/cpuinfo for that part.");
        }
    }

    // ---- part 1: in-process

    static void inProcess(double seconds) throws Exception {
        Path dir = Files.createTempDirectory("krun-bench-blk");
        Path image = dir.resolve("disk.raw");
        long size = 256L << 20;
        byte[] chunk = new byte[1 << 20];
        new Random(1).nextBytes(chunk);
        try (var out = Files.newOutputStream(image)) {
            for (long done = 0; done < size; done += chunk.length) {
                out.write(chunk);
            }
        }
        System.out.println("part 1: the device in-process: " + (size >> 20) + " MiB raw image in the host page cache ("
                + image + "),");
        System.out.println("driver-side mock queue, device event loop and 4 I/O threads, " + seconds + " s per line");
        System.out.printf("%-24s %9s %12s %10s%n", "workload", "in flight", "requests/s", "MiB/s");
        try {
            for (Workload w : IN_PROCESS) {
                double[] r = runInProcess(image, size, w, seconds);
                System.out.printf("%-24s %9d %12.0f %10.1f%n", w.name(), w.inFlight(), r[0], r[1]);
            }
        } finally {
            Files.deleteIfExists(image);
            Files.deleteIfExists(dir);
        }
    }

    /** A single-threaded event loop, as a VM's. */
    static final class Loop implements EventLoop {
        private volatile Thread thread;
        final ExecutorService executor = Executors.newSingleThreadExecutor(r -> {
            Thread t = new Thread(r, "bench-event-loop");
            t.setDaemon(true);
            thread = t;
            return t;
        });

        @Override
        public void execute(Runnable task) {
            executor.execute(task);
        }

        @Override
        public boolean inEventLoop() {
            return Thread.currentThread() == thread;
        }

        @Override
        public AutoCloseable register(int fd, int events, IntConsumer handler) {
            throw new UnsupportedOperationException();
        }

        @Override
        public Watch watch(int fd, int events, IntConsumer handler) {
            throw new UnsupportedOperationException();
        }
    }

    /** Returns {requests/s, MiB/s}. */
    static double[] runInProcess(Path image, long size, Workload w, double seconds) throws Exception {
        int slots = w.inFlight();
        long ramSize = (long) slots * w.blockSize() + (8 << 20);
        Loop loop = new Loop();
        Semaphore interrupts = new Semaphore(0);
        try (TestGuestMemory ram = TestGuestMemory.create(ramSize);
                VirtioDevice device = new BlkFactory().create(DiskSpec.raw(image))) {
            GuestMemory mem = ram.memory();
            MockDriverQueue driver = new MockDriverQueue(ram, 256);
            driver.setAutoPublish(false);
            Virtqueue queue = driver.configuredQueue();
            long features = device.deviceFeatures() | VirtioFeatures.VERSION_1;
            DeviceContext context = new DeviceContext() {
                @Override
                public GuestMemory memory() {
                    return mem;
                }

                @Override
                public long driverFeatures() {
                    return features;
                }

                @Override
                public List<Virtqueue> queues() {
                    return List.of(queue);
                }

                @Override
                public InterruptTrigger interrupt() {
                    return reasons -> interrupts.release();
                }

                @Override
                public EventLoop eventLoop() {
                    return loop;
                }

                @Override
                public void needsReset(String reason) {
                    throw new IllegalStateException("device needs reset: " + reason);
                }
            };
            loop.executor.submit(() -> device.activate(context)).get();
            long[] header = new long[slots];
            long[] data = new long[slots];
            long[] status = new long[slots];
            for (int s = 0; s < slots; s++) {
                header[s] = ram.allocate(16, 16);
                data[s] = ram.allocate(w.blockSize(), 4096);
                status[s] = ram.allocate(1, 1);
            }
            Map<Integer, Integer> slotOf = new HashMap<>();
            Random random = new Random(2);
            long blocks = size / w.blockSize();
            long[] next = {0};
            IntConsumer submit = s -> {
                long block = w.random() ? (long) (random.nextDouble() * blocks) : next[0]++ % blocks;
                mem.setInt(header[s], w.write() ? 1 : 0);
                mem.setInt(header[s] + 4, 0);
                mem.setLong(header[s] + 8, block * w.blockSize() / 512);
                mem.setByte(status[s], (byte) 0xff);
                int[] d = driver.reserveDescriptors(3);
                driver.writeDescriptor(d[0], header[s], 16, MockDriverQueue.DESC_F_NEXT, d[1]);
                driver.writeDescriptor(d[1], data[s], w.blockSize(),
                        MockDriverQueue.DESC_F_NEXT | (w.write() ? 0 : MockDriverQueue.DESC_F_WRITE), d[2]);
                driver.writeDescriptor(d[2], status[s], 1, MockDriverQueue.DESC_F_WRITE, 0);
                driver.makeAvailable(d[0]);
                slotOf.put(d[0], s);
            };
            Runnable kick = () -> {
                VarHandle.releaseFence(); // ring entries before the index that publishes them
                driver.publish();
                loop.execute(() -> device.queueNotify(0));
            };
            for (int s = 0; s < slots; s++) {
                submit.accept(s);
            }
            kick.run();
            long warmup = System.nanoTime() + 500_000_000L;
            long start = 0;
            long end = Long.MAX_VALUE;
            long completed = 0;
            int outstanding = slots;
            while (outstanding > 0) {
                if (!interrupts.tryAcquire(10, TimeUnit.SECONDS)) {
                    throw new IllegalStateException("no completion within 10 s");
                }
                interrupts.drainPermits();
                VarHandle.acquireFence();
                long now = System.nanoTime();
                if (start == 0 && now >= warmup) {
                    start = now;
                    end = now + (long) (seconds * 1e9);
                    completed = 0;
                }
                boolean resubmitted = false;
                for (MockDriverQueue.Used u : driver.usedEntries()) {
                    int s = slotOf.remove(u.id());
                    if (mem.getByte(status[s]) != 0) {
                        throw new IllegalStateException("request failed with status " + mem.getByte(status[s]));
                    }
                    completed++;
                    if (now < end) {
                        submit.accept(s);
                        resubmitted = true;
                    } else {
                        outstanding--;
                    }
                }
                if (resubmitted) {
                    kick.run();
                }
            }
            double elapsed = (System.nanoTime() - start) / 1e9;
            double rate = completed / elapsed;
            return new double[] {rate, rate * w.blockSize() / (1 << 20)};
        } finally {
            loop.executor.shutdownNow();
        }
    }

    // ---- part 2: fio in the guest, krun vs QEMU microvm (hardware virtualisation only)

    static final class GuestFio {
        record Job(String name, String rw, String bs, int depth) {
        }

        static final List<Job> JOBS = List.of(
                new Job("seq read 1M qd1", "read", "1M", 1), new Job("seq read 1M qd32", "read", "1M", 32),
                new Job("seq write 1M qd1", "write", "1M", 1), new Job("seq write 1M qd32", "write", "1M", 32),
                new Job("rand read 4k qd1", "randread", "4k", 1), new Job("rand read 4k qd32", "randread", "4k", 32),
                new Job("rand write 4k qd1", "randwrite", "4k", 1), new Job("rand write 4k qd32", "randwrite", "4k", 32));
        static final int RUNTIME_SECONDS = 10;
        static final long IMAGE_BYTES = 1L << 30;
        /** isa-debug-exit makes QEMU exit with (status << 1) | 1: the script's 21 gives 43 (see bench/boot). */
        static final int QEMU_GUEST_EXIT = 43;

        /** The guest script: every job in turn, each result line marked with the job's index. */
        static String script() {
            StringBuilder sb = new StringBuilder();
            for (int i = 0; i < JOBS.size(); i++) {
                Job j = JOBS.get(i);
                sb.append("printf 'FIO%d;' ").append(i).append("; fio --name=j").append(i)
                        .append(" --filename=/dev/vda --direct=1 --ioengine=libaio --rw=").append(j.rw())
                        .append(" --bs=").append(j.bs()).append(" --iodepth=").append(j.depth())
                        .append(" --runtime=").append(RUNTIME_SECONDS).append(" --time_based --ramp_time=2")
                        .append(" --group_reporting --output-format=terse --terse-version=3; ");
            }
            return sb.toString();
        }

        static void run(Path repo, int rounds) throws Exception {
            for (String tool : List.of("fio", "qemu-system-x86_64")) {
                if (!onPath(tool)) {
                    System.out.println("guest-side fio: SKIPPED: " + tool + " is not installed (apt-get install -y "
                            + (tool.equals("fio") ? "fio" : "qemu-system-x86") + ")");
                    return;
                }
            }
            Path kernel = Path.of(System.getProperty("user.home"), ".cache/krun/kernel/current/vmlinux").toRealPath();
            Path work = Files.createTempDirectory("krun-bench-blk-guest");
            Path image = work.resolve("disk.raw");
            exec(List.of("dd", "if=/dev/zero", "of=" + image, "bs=1M", "count=" + (IMAGE_BYTES >> 20), "status=none"));
            Path tree = guestTree(repo, work);
            Path initrd = work.resolve("qemu-initrd.cpio");
            exec(List.of("sh", "-c", "cd '" + tree + "' && find . | cpio -o -H newc --quiet > '" + initrd + "'"));
            System.out.println("part 2: fio in the guest on a " + (IMAGE_BYTES >> 30) + " GiB raw image (host page cache), "
                    + RUNTIME_SECONDS + " s per job, " + rounds + " rounds alternating krun and QEMU microvm, median");
            Map<String, List<double[]>> krun = new LinkedHashMap<>();
            Map<String, List<double[]>> qemu = new LinkedHashMap<>();
            for (int round = 0; round < rounds; round++) {
                collect(krun, runKrun(repo, tree, image));
                collect(qemu, runQemu(kernel, initrd, image, work));
            }
            System.out.printf("%-20s %12s %10s %12s %10s %10s %10s%n", "job", "krun MB/s", "krun IOPS", "QEMU MB/s",
                    "QEMU IOPS", "MB/s ratio", "IOPS ratio");
            for (Job j : JOBS) {
                double[] k = median(krun.get(j.name()));
                double[] q = median(qemu.get(j.name()));
                System.out.printf("%-20s %12.1f %10.0f %12.1f %10.0f %10.2f %10.2f%n", j.name(), k[0], k[1], q[0], q[1],
                        q[0] > 0 ? k[0] / q[0] : Double.NaN, q[1] > 0 ? k[1] / q[1] : Double.NaN);
            }
            System.out.println("(ratios are krun/QEMU: above 1 means krun is faster)");
        }

        static boolean onPath(String tool) {
            for (String d : System.getenv().getOrDefault("PATH", "/usr/bin").split(":")) {
                if (Files.isExecutable(Path.of(d, tool))) {
                    return true;
                }
            }
            return false;
        }

        /** The default rootfs plus fio and its libraries, and krun's init with a config for QEMU's run. */
        static Path guestTree(Path repo, Path work) throws Exception {
            Path tree = work.resolve("root");
            Path rootfs = Path.of(System.getProperty("user.home"), ".cache/krun/rootfs/default").toRealPath();
            exec(List.of("cp", "-a", rootfs + "/.", tree.toString()));
            Path fio = Path.of(exec(List.of("sh", "-c", "command -v fio")).trim()).toRealPath();
            copy(fio, tree.resolve("usr/bin/fio"));
            for (String line : exec(List.of("ldd", fio.toString())).lines().toList()) {
                int arrow = line.indexOf("=> ");
                String lib = arrow >= 0 ? line.substring(arrow + 3).trim().split(" ")[0]
                        : line.trim().startsWith("/") ? line.trim().split(" ")[0] : null;
                if (lib != null && lib.startsWith("/")) {
                    copy(Path.of(lib).toRealPath(), tree.resolve(lib.substring(1)));
                }
            }
            Files.createDirectories(tree.resolve("krun"));
            copy(repo.resolve("org.krun.vmm/target/classes/org/krun/vmm/guest/krun-init"), tree.resolve("krun/init"));
            tree.resolve("krun/init").toFile().setExecutable(true);
            String cmd = (script() + "exit 21").replace("\\", "\\\\").replace("\"", "\\\"");
            Files.writeString(tree.resolve("krun/config.json"), "{\"cmd\":[\"/bin/sh\",\"-c\",\"" + cmd + "\"],\"env\":[],"
                    + "\"workdir\":\"/\",\"hostname\":\"krun\",\"rlimits\":[],\"console\":\"terminal\",\"columns\":80,"
                    + "\"rows\":24,\"exit_port\":244}\n");
            return tree;
        }

        static Map<String, double[]> runKrun(Path repo, Path tree, Path image) throws Exception {
            // krun serves its own init and configuration: the tree's /krun is shadowed by them.
            String out = exec(List.of(repo.resolve("krun").toString(), "run", "--root", tree.toString(), "--mem", "1024",
                    "--disk", image.toString(), "--", "/bin/sh", "-c", script()));
            return parse(out, "krun");
        }

        static Map<String, double[]> runQemu(Path kernel, Path initrd, Path image, Path work) throws Exception {
            Path console = work.resolve("qemu-console.txt");
            Files.deleteIfExists(console);
            List<String> cmd = List.of("qemu-system-x86_64", "-M", "microvm,x-option-roms=off,isa-serial=off,rtc=on",
                    "-enable-kvm", "-cpu", "host", "-m", "1024", "-smp", "1", "-nodefaults", "-no-user-config",
                    "-nographic", "-no-reboot", "-kernel", kernel.toString(), "-initrd", initrd.toString(), "-append",
                    "console=hvc0 reboot=k panic=-1 rdinit=/krun/init quiet loglevel=1",
                    "-device", "virtio-serial-device", "-chardev", "file,id=con0,path=" + console,
                    "-device", "virtconsole,chardev=con0",
                    "-drive", "id=d0,file=" + image + ",format=raw,if=none,cache=writeback,aio=threads",
                    "-device", "virtio-blk-device,drive=d0",
                    "-device", "isa-debug-exit,iobase=0xf4,iosize=0x01");
            Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(Redirect.DISCARD).start();
            if (!p.waitFor(600, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                throw new IOException("QEMU did not finish within 600 s");
            }
            if (p.exitValue() != QEMU_GUEST_EXIT) {
                throw new IOException("QEMU exited " + p.exitValue() + "; console:\n" + Files.readString(console));
            }
            return parse(Files.readString(console), "QEMU");
        }

        /** fio terse v3 lines: field 7/8 read KiB/s and IOPS, 48/49 write (1-based). */
        static Map<String, double[]> parse(String out, String who) throws IOException {
            Map<String, double[]> r = new HashMap<>();
            for (String line : out.replace("\r", "").lines().toList()) {
                int at = line.indexOf("FIO");
                if (at < 0 || line.indexOf(';', at) < 0) {
                    continue;
                }
                int index = Integer.parseInt(line.substring(at + 3, line.indexOf(';', at)));
                String[] f = line.substring(line.indexOf(';', at) + 1).split(";");
                if (f.length < 49 || !f[0].equals("3")) {
                    continue;
                }
                Job j = JOBS.get(index);
                boolean write = j.rw().contains("write");
                double kib = Double.parseDouble(f[write ? 47 : 6]);
                double iops = Double.parseDouble(f[write ? 48 : 7]);
                r.put(j.name(), new double[] {kib * 1024 / 1e6, iops});
            }
            if (r.size() != JOBS.size()) {
                throw new IOException(who + ": fio results for " + r.keySet() + " only; output:\n" + out);
            }
            return r;
        }

        static void collect(Map<String, List<double[]>> into, Map<String, double[]> run) {
            run.forEach((k, v) -> into.computeIfAbsent(k, x -> new ArrayList<>()).add(v));
        }

        static double[] median(List<double[]> v) {
            double[] out = new double[2];
            for (int c = 0; c < 2; c++) {
                int col = c;
                List<Double> s = v.stream().map(a -> a[col]).sorted().toList();
                int n = s.size();
                out[c] = n % 2 == 1 ? s.get(n / 2) : (s.get(n / 2 - 1) + s.get(n / 2)) / 2;
            }
            return out;
        }

        static void copy(Path from, Path to) throws IOException {
            Files.createDirectories(to.getParent());
            Files.copy(from, to, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        }

        static String exec(List<String> cmd) throws IOException, InterruptedException {
            Process p = new ProcessBuilder(cmd).redirectError(Redirect.INHERIT)
                    .redirectInput(Redirect.from(new java.io.File("/dev/null"))).start();
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (p.waitFor() != 0) {
                throw new IOException("failed (" + p.exitValue() + "): " + cmd + "\n" + out);
            }
            return out;
        }
    }
}
