package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import javax.inject.Inject;
import javax.management.ObjectName;

import org.junit.Assume;
import org.junit.Before;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.krun.api.ConsoleSpec;
import org.krun.api.DiskSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.ops4j.pax.exam.Configuration;
import org.ops4j.pax.exam.Option;
import org.ops4j.pax.exam.junit.PaxExam;
import org.ops4j.pax.exam.spi.reactors.ExamReactorStrategy;
import org.ops4j.pax.exam.spi.reactors.PerClass;

/**
 * A thousand VM lifecycles in one framework, every VM with every device (console, entropy, balloon, vsock
 * with socket impersonation, a raw disk, a virtio-fs share), in four shapes taken in turn: run to the end,
 * killed while running, closed while running, created and closed without a start; and a few Linux boots
 * killed half-way where krun's kernel is built. Afterwards the process holds the file descriptors and
 * threads it held before, and its native memory (NMT, committed) and resident set have not grown beyond
 * what a JVM's own caches take. The figures are printed.
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerClass.class)
public class VmLifecycleSoakIT {
    private static final int CYCLES = Integer.getInteger("krun.soak.cycles", 1000);
    private static final int WARM_UP = 20;
    private static final int LINUX_EVERY = 250;
    /** Native memory and RSS a JVM may add by itself over a thousand cycles (code cache, metaspace, GC). */
    private static final long NMT_SLACK_KIB = 48 * 1024;
    private static final long RSS_SLACK_KIB = 96 * 1024;
    private static final Pattern NMT_TOTAL = Pattern.compile("Total: reserved=(\\d+)KB, committed=(\\d+)KB");
    /** NMT's "Other": native memory allocated through FFM arenas and Unsafe, which is krun's own. */
    private static final Pattern NMT_OTHER = Pattern.compile("- +Other \\(reserved=(\\d+)KB, committed=(\\d+)KB");
    private static final long OTHER_SLACK_KIB = 1024;

    @Inject
    Krun krun;

    private Path disk;
    private Path share;

    @Configuration
    public Option[] config() throws IOException {
        return ItSupport.options("org.krun.device.rng", "org.krun.device.balloon", "org.krun.device.blk",
                "org.krun.device.virtiofs", "org.krun.device.vsock");
    }

    @Before
    public void needsKvm() {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
    }

    /** Counts newlines. */
    static final class Lines extends OutputStream {
        final AtomicLong count = new AtomicLong();

        @Override
        public void write(int b) {
            if (b == '\n') {
                count.incrementAndGet();
            }
        }
    }

    private VmConfig.Builder fastGuest(String elf, OutputStream out) {
        return VmConfig.builder().kernel(ItSupport.guest(elf)).command("fast-guest").memoryMib(64)
                .console(ConsoleSpec.terminal(out, 80, 24)).timeout(ItSupport.WAIT)
                .device(DiskSpec.raw(disk)).device(new FsShareSpec("soak", share, false));
    }

    private void cycle(int i) throws Exception {
        switch (i % 4) {
            case 0 -> {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                try (VirtualMachine vm = krun.create(fastGuest("probe.elf", out).build())) {
                    vm.start();
                    VmExit exit = vm.waitFor(ItSupport.WAIT);
                    // console, the disk, the share, then the defaults: balloon, rng, vsock
                    assertEquals(ItSupport.text(out), VmExit.commandExited(6), exit);
                }
            }
            case 1 -> {
                Lines ticks = new Lines();
                try (VirtualMachine vm = krun.create(fastGuest("ticker.elf", ticks).build())) {
                    vm.start();
                    assertTrue("ticker started", ItSupport.await(() -> ticks.count.get() > 0 || vm.exit().isDone()));
                    vm.kill();
                    assertEquals(VmExit.Reason.KILLED, vm.waitFor(ItSupport.WAIT).reason());
                }
            }
            case 2 -> {
                Lines ticks = new Lines();
                VirtualMachine vm = krun.create(fastGuest("ticker.elf", ticks).build());
                vm.start();
                assertTrue("ticker started", ItSupport.await(() -> ticks.count.get() > 0 || vm.exit().isDone()));
                vm.close();
                assertEquals(VmExit.Reason.KILLED, vm.exit().getNow(null).reason());
            }
            default -> krun.create(fastGuest("probe.elf", OutputStream.nullOutputStream()).build()).close();
        }
    }

    /** krun's kernel, where it has been built (the launcher's cache). */
    private static Optional<Path> linuxKernel() {
        Path p = Path.of(System.getProperty("krun.kernel",
                System.getProperty("user.home") + "/.cache/krun/kernel/current/vmlinux"));
        return Files.isRegularFile(p) ? Optional.of(p) : Optional.empty();
    }

    /** A Linux boot killed a few seconds in (its devices probed, the kernel busy). */
    private void linuxCycle(Path kernel) throws Exception {
        try (VirtualMachine vm = krun.create(VmConfig.builder().kernel(kernel).command("/bin/true").memoryMib(128)
                .device(DiskSpec.raw(disk)).device(new FsShareSpec("soak", share, false)).build())) {
            vm.start();
            Thread.sleep(3_000);
            vm.kill();
            assertEquals(VmExit.Reason.KILLED, vm.waitFor(ItSupport.WAIT).reason());
        }
    }

    @Test
    public void aThousandLifecyclesLeaveNoFdThreadOrMemoryBehind() throws Exception {
        Path dir = Files.createTempDirectory("krun-soak");
        disk = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(1 << 20);
        }
        share = Files.createDirectories(dir.resolve("share"));
        Optional<Path> kernel = linuxKernel();
        if (kernel.isEmpty()) {
            System.err.println("*** krun's kernel is not built: the soak runs fast guests only, no Linux boots ***");
        }
        try {
            for (int i = 0; i < WARM_UP; i++) {
                cycle(i);
            }
            kernel.ifPresent(k -> {
                try {
                    linuxCycle(k);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            Snapshot before = Snapshot.settled(null);
            long start = System.nanoTime();
            int linux = 0;
            for (int i = 0; i < CYCLES; i++) {
                cycle(i);
                if (kernel.isPresent() && i % LINUX_EVERY == LINUX_EVERY - 1) {
                    linuxCycle(kernel.get());
                    linux++;
                }
            }
            double seconds = (System.nanoTime() - start) / 1e9;
            Snapshot after = Snapshot.settled(before);
            System.out.printf("soak: %d VM lifecycles (+%d Linux boots killed) in %.1f s (%.1f ms each); fds %d -> %d; "
                    + "threads %d -> %d; NMT committed %d -> %d KiB (Other %d -> %d KiB); RSS %d -> %d KiB (anonymous %d -> %d KiB)%n", CYCLES, linux, seconds,
                    seconds * 1000 / CYCLES, before.fds().size(), after.fds().size(), before.threads().size(),
                    after.threads().size(), before.nmtCommittedKib(), after.nmtCommittedKib(), before.nmtOtherKib(),
                    after.nmtOtherKib(), before.rssKib(),
                    after.rssKib(), before.rssAnonKib(), after.rssAnonKib());
            if (Boolean.getBoolean("krun.soak.maps")) {
                System.out.println("mappings before:\n" + before.maps() + "\nmappings after:\n" + after.maps());
            }
            assertEquals("open fds: new " + difference(after.fds(), before.fds()) + ", gone "
                    + difference(before.fds(), after.fds()), before.fds().size(), after.fds().size());
            assertEquals("krun threads left", List.of(), after.threads().stream().filter(t -> t.startsWith("krun")).toList());
            List<String> extra = new ArrayList<>(after.threads());
            before.threads().forEach(extra::remove);
            assertEquals("threads that were not there before (the framework's own pools may shrink)", List.of(), extra);
            assertTrue("native memory krun allocates (NMT Other) grew from " + before.nmtOtherKib() + " to "
                    + after.nmtOtherKib() + " KiB", after.nmtOtherKib() - before.nmtOtherKib() < OTHER_SLACK_KIB);
            assertTrue("native memory grew by " + (after.nmtCommittedKib() - before.nmtCommittedKib()) + " KiB",
                    after.nmtCommittedKib() - before.nmtCommittedKib() < NMT_SLACK_KIB);
            assertTrue("resident set grew by " + (after.rssKib() - before.rssKib()) + " KiB",
                    after.rssKib() - before.rssKib() < RSS_SLACK_KIB);
            assertEquals("the disk image kept its size", 1 << 20, Files.size(disk));
        } finally {
            try (Stream<Path> all = Files.walk(dir)) {
                for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    private static TreeMap<String, String> difference(TreeMap<String, String> a, TreeMap<String, String> b) {
        TreeMap<String, String> d = new TreeMap<>(a);
        d.keySet().removeAll(b.keySet());
        return d;
    }

    /** What the process holds: fds (number to target), thread names (JIT compiler threads aside), NMT, RSS. */
    private record Snapshot(TreeMap<String, String> fds, List<String> threads, long nmtCommittedKib, long nmtOtherKib,
            long rssKib,
            long rssAnonKib, String maps) {

        /**
         * Mappings of 1 MiB or more with their resident sizes, and the smaller ones summed, from
         * /proc/self/smaps: a diagnosis, taken only with -Dkrun.soak.maps=true.
         */
        static String readMaps() throws IOException {
            if (!Boolean.getBoolean("krun.soak.maps")) {
                return "";
            }
            StringBuilder sb = new StringBuilder();
            String area = null;
            long size = 0;
            long smallCount = 0;
            long smallRss = 0;
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps"))) {
                if (line.matches("[0-9a-f]+-[0-9a-f]+ .*")) {
                    area = line;
                } else if (line.startsWith("Size:")) {
                    size = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("Rss:") && area != null) {
                    long rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                    if (size >= 1024) {
                        sb.append(area).append(" size ").append(size).append(" rss ").append(rss).append('\n');
                    } else {
                        smallCount++;
                        smallRss += rss;
                    }
                }
            }
            sb.append("small mappings: ").append(smallCount).append(", rss ").append(smallRss).append('\n');
            for (String line : nmtSummary().lines().toList()) {
                if (line.startsWith("-") || line.contains("(malloc=")) {
                    sb.append("nmt ").append(line.strip()).append('\n');
                }
            }
            return sb.toString();
        }

        /** After a full GC, polling up to five seconds for fds and threads to come back to {@code like}'s. */
        static Snapshot settled(Snapshot like) throws Exception {
            long deadline = System.nanoTime() + 5_000_000_000L;
            Snapshot s;
            do {
                System.gc();
                Thread.sleep(100);
                s = take();
            } while (like != null && (s.fds().size() != like.fds().size() || !s.threads().equals(like.threads()))
                    && System.nanoTime() < deadline);
            return s;
        }

        static Snapshot take() throws Exception {
            TreeMap<String, String> fds = new TreeMap<>();
            try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
                for (Path p : s.toList()) {
                    try {
                        fds.put(p.getFileName().toString(), Files.readSymbolicLink(p).toString());
                    } catch (IOException gone) {
                        // the listing's own descriptor
                    }
                }
            }
            List<String> threads = new ArrayList<>();
            try (Stream<Path> s = Files.list(Path.of("/proc/self/task"))) {
                for (Path t : s.toList()) {
                    try {
                        String name = Files.readString(t.resolve("comm")).strip();
                        if (!name.startsWith("C1 CompilerThre") && !name.startsWith("C2 CompilerThre")) {
                            threads.add(name);
                        }
                    } catch (IOException gone) {
                        // a thread that just ended
                    }
                }
            }
            threads.sort(null);
            long rss = 0;
            long anon = 0;
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    rss = Long.parseLong(line.replaceAll("[^0-9]", ""));
                } else if (line.startsWith("RssAnon:")) {
                    anon = Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
            String nmt = nmtSummary();
            return new Snapshot(fds, threads, committedKib(NMT_TOTAL, nmt), committedKib(NMT_OTHER, nmt), rss, anon,
                    readMaps());
        }

        static String nmtSummary() {
            try {
                return (String) ManagementFactory.getPlatformMBeanServer().invoke(
                        new ObjectName("com.sun.management:type=DiagnosticCommand"), "vmNativeMemory",
                        new Object[] {new String[] {"summary"}}, new String[] {String[].class.getName()});
            } catch (javax.management.JMException e) {
                throw new IllegalStateException(e);
            }
        }

        /** A committed figure of NMT's summary (the JVM runs with -XX:NativeMemoryTracking=summary). */
        static long committedKib(Pattern figure, String summary) {
            Matcher m = figure.matcher(summary);
            if (!m.find()) {
                throw new IllegalStateException("no " + figure + " in NMT's summary (is NMT on?): " + summary);
            }
            return Long.parseLong(m.group(2));
        }
    }
}
