package org.krun.example.embedding.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.example.embedding.ParallelVms.Job;
import org.krun.example.embedding.ParallelVms.Outcome;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * Ten VMs at once in one JVM through the example component: each returns its own exit status and output,
 * and afterwards the process holds no thread or file descriptor more than before. Where the host has
 * hardware virtualisation (vmx or svm in /proc/cpuinfo) all ten boot Linux; on kvm-pvm hosts, where a
 * Linux boot costs 25-30 s of host CPU, three boot Linux and seven run the fast guest probe.elf. Needs
 * /dev/kvm and the guest kernel.
 */
class ParallelVmsTest {
    private static final int VMS = 10;
    private static final int LINUX_VMS_ON_KVM_PVM = 3;
    private static final Duration BATCH_TIMEOUT = Duration.ofSeconds(900);
    private static final long SETTLE_MILLIS = 2_000;

    private static KrunService krun;
    private static ParallelVmsComponent component;

    @BeforeAll
    static void wire() throws Exception {
        LinuxGuest.assumeKvm();
        krun = LinuxGuest.krun();
        component = new ParallelVmsComponent(krun);
        // The first VM loads classes and lets the JVM and logging open what they keep for good.
        List<Outcome> warmUp = component.runAll(List.of(probe(0)), Duration.ofSeconds(60));
        assertEquals(VmExit.commandExited(20), warmUp.get(0).exit(), () -> warmUp.get(0).out());
    }

    @AfterAll
    static void unwire() {
        if (component != null) {
            component.deactivate();
        }
    }

    private static boolean hardwareVirtualization() throws IOException {
        return Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                .filter(l -> l.startsWith("flags"))
                .anyMatch(l -> List.of(l.split("\\s+")).contains("vmx") || List.of(l.split("\\s+")).contains("svm"));
    }

    /** A Linux guest whose command prints its own name and exits with its own status, 10 + i. */
    private static Job linux(int i) {
        VmConfig config = LinuxGuest.config("/bin/sh", "-c", "echo \"$JOB says hello\"; echo \"$JOB to stderr\" >&2; "
                + "exit $STATUS")
                .env("JOB", "linux-" + i)
                .env("STATUS", Integer.toString(10 + i))
                .timeout(BATCH_TIMEOUT)
                .build();
        return Job.of("linux-" + i, config);
    }

    /** probe.elf saying its own name and exiting with its own status, 20 + i. */
    private static Job probe(int i) {
        VmConfig config = VmConfig.builder()
                .kernel(Path.of(System.getProperty("krun.guests"), "probe.elf"))
                .command("fast-guest")
                .memoryMib(64)
                .kernelArg("probe.say=fast-" + i)
                .kernelArg("probe.status=" + (20 + i))
                .timeout(BATCH_TIMEOUT)
                .build();
        return new Job("fast-" + i, config, ConsoleSpec.Mode.TERMINAL, null);
    }

    @Test
    void tenConcurrentVmsEachReturnTheirOwnStatusAndOutputAndLeaveNothingBehind() throws Exception {
        int linuxVms = hardwareVirtualization() ? VMS : LINUX_VMS_ON_KVM_PVM;
        System.err.println("ParallelVmsTest: " + linuxVms + " Linux guests and " + (VMS - linuxVms) + " fast guests at once");
        List<Job> jobs = new ArrayList<>();
        for (int i = 0; i < VMS; i++) {
            jobs.add(i < linuxVms ? linux(i) : probe(i));
        }
        Snapshot before = Snapshot.take();

        List<Outcome> outcomes = component.runAll(jobs, BATCH_TIMEOUT);

        assertEquals(VMS, outcomes.size());
        assertEquals(VMS, outcomes.stream().map(Outcome::vmId).distinct().count(), "each job ran in a VM of its own");
        for (int i = 0; i < VMS; i++) {
            Outcome o = outcomes.get(i);
            if (i < linuxVms) {
                assertEquals("linux-" + i, o.name());
                assertEquals(VmExit.commandExited(10 + i), o.exit(), o.name() + ": " + o.err());
                assertEquals("linux-" + i + " says hello\n", o.out(), o.name());
                assertTrue(o.err().contains("linux-" + i + " to stderr\n"), o.name() + " stderr: " + o.err());
            } else {
                assertEquals("fast-" + i, o.name());
                assertEquals(VmExit.commandExited(20 + i), o.exit(), o.name() + ": " + o.out());
                assertEquals("fast-" + i + "\ndevices: 3\n", o.out(), o.name());
            }
        }
        assertEquals(List.of(), krun.list(), "every VM is closed");
        Snapshot after = Snapshot.settle(before);
        assertEquals(List.of(), after.krunThreads(), "krun threads left");
        assertEquals(before.threadNames(), after.threadNames(), "threads (/proc/self/task; JIT and GC workers aside)");
        assertEquals(before.fds().size(), after.fds().size(),
                () -> "open fds: before " + before.fds() + ", after " + after.fds());
    }

    /**
     * What this process holds, from /proc/self. HotSpot sizes its JIT compiler and GC worker pools by itself,
     * so those threads are left out.
     */
    private record Snapshot(Map<String, String> fds, List<String> threadNames) {

        static Snapshot take() {
            Map<String, String> fds = new TreeMap<>();
            try (Stream<Path> s = Files.list(Path.of("/proc/self/fd"))) {
                for (Path p : s.toList()) {
                    try {
                        fds.put(p.getFileName().toString(), Files.readSymbolicLink(p).toString());
                    } catch (IOException e) {
                        // closed while listing (the listing's own descriptor)
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            List<String> names = new ArrayList<>();
            try (Stream<Path> s = Files.list(Path.of("/proc/self/task"))) {
                for (Path task : s.toList()) {
                    try {
                        String name = Files.readString(task.resolve("comm")).strip();
                        if (!name.startsWith("C1 CompilerThre") && !name.startsWith("C2 CompilerThre")
                                && !name.startsWith("GC Thread#") && !name.startsWith("G1 Conc#")
                                && !name.startsWith("G1 Refine#")) {
                            names.add(name);
                        }
                    } catch (IOException e) {
                        // the thread exited while listing
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            names.sort(null);
            return new Snapshot(fds, names);
        }

        /** Threads end just after their VM reports its exit: poll a little for the counts to return. */
        static Snapshot settle(Snapshot before) throws InterruptedException {
            long deadline = System.nanoTime() + SETTLE_MILLIS * 1_000_000;
            Snapshot now = take();
            while ((now.fds.size() != before.fds.size() || !now.threadNames.equals(before.threadNames))
                    && System.nanoTime() < deadline) {
                Thread.sleep(20);
                now = take();
            }
            return now;
        }

        List<String> krunThreads() {
            return threadNames.stream().filter(n -> n.startsWith("krun-")).toList();
        }
    }
}
