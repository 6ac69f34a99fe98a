package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

import javax.inject.Inject;

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
 * What an idle VM costs its JVM in threads and file descriptors (issue 15): a few VMs with every default
 * device (console, balloon, entropy, vsock), a raw disk and a virtio-fs share run burst.elf, which sends 32
 * requests one after another to the disk and to the share, then idles in hlt. Counted from /proc/self/task
 * and /proc/self/fd against the figures before the VMs started: right after the burst, a device holds one
 * worker for requests that come one at a time (not one per request up to its bound); once its workers'
 * keep-alive has passed, an idle VM holds at most {@link #IDLE_THREADS_PER_VM} threads. No duration is
 * asserted: the test waits, with a bound, for the guests and for the workers to end. The figures are printed.
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerClass.class)
public class IdleVmFootprintIT {
    private static final int VMS = 3;
    /** Requests burst.elf sends to each of the disk and the share. */
    private static final int BURST = 32;
    /**
     * Right after the burst: the vCPU, the event loop, KVM's own task (NX huge page recovery, where the host
     * kernel has one), a worker each for the disk and the share, and one more that a request may have started
     * before the last worker was idle again. Before issue 15, 23: every request started a thread up to the
     * pool's bound (16 for the share, 4 for the disk).
     */
    private static final int AFTER_BURST_THREADS_PER_VM = 6;
    /** An idle VM: the vCPU, the event loop, KVM's own task; one to spare. */
    private static final int IDLE_THREADS_PER_VM = 4;
    /**
     * The VM and vCPU descriptors, an ioeventfd per queue and an irqfd per device, the event loop's epoll and
     * wake-up eventfd, the disk image and the share's directory: 26.
     */
    private static final int FDS_PER_VM = 26;
    /** Descriptors the JVM may open by itself meanwhile (a jar, a class file). */
    private static final int FDS_SLACK = 2;

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

    private VmConfig burst(OutputStream out) {
        return VmConfig.builder().kernel(ItSupport.guest("burst.elf")).command("fast-guest").memoryMib(64)
                .console(ConsoleSpec.terminal(out, 80, 24)).timeout(ItSupport.WAIT.multipliedBy(2))
                .device(DiskSpec.raw(disk).withReadOnly(true)).device(new FsShareSpec("share", share, true)).build();
    }

    /** Starts a burst.elf VM and waits until it reports its requests answered and idles. */
    private VirtualMachine startIdle(ByteArrayOutputStream out) throws InterruptedException {
        VirtualMachine vm = krun.create(burst(out));
        vm.start();
        assertTrue("burst.elf went idle: " + ItSupport.text(out), ItSupport.awaitOutput(vm, out, "\n"));
        assertTrue("burst.elf got every reply: " + ItSupport.text(out),
                ItSupport.text(out).contains("idle blk=" + BURST + " fs=" + BURST));
        return vm;
    }

    private static void stop(VirtualMachine vm) throws Exception {
        vm.consoleInput().write("bye\n".getBytes(StandardCharsets.UTF_8));
        vm.consoleInput().flush();
        assertEquals(VmExit.commandExited(0), vm.waitFor(ItSupport.WAIT));
        vm.close();
    }

    @Test
    public void anIdleVmHoldsAFewThreadsAndFds() throws Exception {
        Path dir = Files.createTempDirectory("krun-idle");
        disk = dir.resolve("disk.img");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(1 << 20);
        }
        share = Files.createDirectories(dir.resolve("share"));
        List<VirtualMachine> vms = new ArrayList<>();
        try {
            // One VM first: classes, the JVM's and the framework's own threads and descriptors.
            stop(startIdle(new ByteArrayOutputStream()));
            Usage before = Usage.take();
            for (int i = 0; i < VMS; i++) {
                vms.add(startIdle(new ByteArrayOutputStream()));
            }
            Usage burst = Usage.take();
            // The devices' workers end after their keep-alive: wait for it, with a bound, never asserting how long.
            boolean workersEnded = ItSupport.await(() -> Usage.take().workers() == 0);
            Usage idle = Usage.take();
            System.out.printf("idle VM footprint: %d VMs; threads %d before, %d after the burst (%.1f per VM: %s), "
                    + "%d idle (%.1f per VM: %s); fds %d before, %d idle (%.1f per VM)%n", VMS, before.threads().size(),
                    burst.threads().size(), burst.perVm(before), burst.added(before), idle.threads().size(),
                    idle.perVm(before), idle.added(before), before.fds(), idle.fds(),
                    (idle.fds() - before.fds()) / (double) VMS);
            assertTrue("threads per VM right after one request at a time to each device: " + burst.perVm(before)
                    + ", at most " + AFTER_BURST_THREADS_PER_VM + " expected; new threads: " + burst.added(before),
                    burst.perVm(before) <= AFTER_BURST_THREADS_PER_VM);
            assertTrue("the devices' workers ended once idle; left: " + idle.added(before), workersEnded);
            assertTrue("threads per idle VM: " + idle.perVm(before) + ", at most " + IDLE_THREADS_PER_VM
                    + " expected; new threads: " + idle.added(before), idle.perVm(before) <= IDLE_THREADS_PER_VM);
            assertTrue("fds per idle VM: " + (idle.fds() - before.fds()) / (double) VMS + ", at most " + FDS_PER_VM
                    + " expected", idle.fds() - before.fds() <= FDS_PER_VM * VMS + FDS_SLACK);
            for (VirtualMachine vm : vms) {
                stop(vm);
            }
            vms.clear();
        } finally {
            vms.forEach(VirtualMachine::close);
            try (Stream<Path> all = Files.walk(dir)) {
                for (Path p : all.sorted(Comparator.reverseOrder()).toList()) {
                    Files.deleteIfExists(p);
                }
            }
        }
    }

    /** The process's threads (their names, JIT compiler threads aside: the JVM adds and drops them) and fds. */
    private record Usage(List<String> threads, int fds) {

        static Usage take() {
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
                int fds;
                try (Stream<Path> f = Files.list(Path.of("/proc/self/fd"))) {
                    fds = (int) f.count() - 1; // the listing's own
                }
                return new Usage(threads, fds);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        }

        /** The devices' worker threads (virtio-fs, virtio-blk). */
        long workers() {
            return threads.stream().filter(n -> n.startsWith("krun-fs-") || n.startsWith("krun-blk-")).count();
        }

        double perVm(Usage before) {
            return (threads.size() - before.threads().size()) / (double) VMS;
        }

        /** The threads that were not there before, by name with the VM ids and counters blurred. */
        Map<String, Integer> added(Usage before) {
            List<String> extra = new ArrayList<>(threads);
            before.threads().forEach(extra::remove);
            Map<String, Integer> g = new TreeMap<>();
            extra.forEach(n -> g.merge(n.replaceAll("vm[0-9]+", "vmN").replaceAll("[0-9]+$", "N"), 1, Integer::sum));
            return g;
        }
    }
}
