package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.hv.kvm.internal.KvmHypervisor;
import org.slf4j.LoggerFactory;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.filter.Filter;
import ch.qos.logback.core.read.ListAppender;
import ch.qos.logback.core.spi.FilterReply;

/**
 * Many VMs in one JVM give back everything they took: file descriptors (KVM VM and vCPU fds, eventfds,
 * epoll), threads (vCPUs, device loop), the guest RAM and kvm_run mappings (found in /proc/self/smaps
 * by an unusual guest memory size), and they log no warnings on the way. Needs /dev/kvm.
 */
class VmResourceLeakTest {
    /** An unusual size, so that its mapping is recognisable in /proc/self/smaps. */
    private static final int MEMORY_MIB = 68;
    private static final long GUEST_RAM_BYTES = MEMORY_MIB * 1024L * 1024L;
    private static final int SEQUENTIAL_VMS = 20;
    private static final int CONCURRENT_VMS = 4;
    private static final long SETTLE_MILLIS = 500;

    private static KvmHypervisor kvm;
    private static KrunService krun;
    /** What the core logs at WARN and above: a clean VM lifecycle logs nothing there. */
    private static final ListAppender<ILoggingEvent> WARNINGS = new ListAppender<>();

    @BeforeAll
    static void openKvmAndWarmUp() throws Exception {
        FastGuests.assumeKvm();
        Logger krunLogger = (Logger) LoggerFactory.getLogger("org.krun");
        WARNINGS.addFilter(new ThresholdFilter());
        WARNINGS.start();
        krunLogger.addAppender(WARNINGS);
        kvm = KvmHypervisor.open();
        krun = FastGuests.krun(kvm);
        // The first VM loads classes and lets the JVM and logging open what they keep for good.
        runPortIo();
    }

    @AfterAll
    static void closeKvm() {
        ((Logger) LoggerFactory.getLogger("org.krun")).detachAppender(WARNINGS);
        if (kvm != null) {
            kvm.close();
        }
    }

    private static void runPortIo() throws InterruptedException {
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        VirtualMachine vm = krun.create(FastGuests.config("portio.elf", MEMORY_MIB, new ByteArrayOutputStream(), serial));
        vm.start();
        VmExit exit = FastGuests.await(vm, serial);
        assertEquals(VmExit.commandExited(0x3f), exit, () -> "guest serial output: " + serial);
    }

    @BeforeEach
    void forgetWarnings() {
        synchronized (WARNINGS) {
            WARNINGS.list.clear();
        }
    }

    @Test
    void twentySequentialVmsLeaveNoFdThreadOrGuestMemoryBehind() throws Exception {
        Snapshot before = Snapshot.take();

        for (int i = 0; i < SEQUENTIAL_VMS; i++) {
            runPortIo();
        }

        assertReturnsTo(before);
    }

    @Test
    void concurrentVmsFinishedOrKilledLeaveNoFdThreadOrGuestMemoryBehind() throws Exception {
        Snapshot before = Snapshot.take();
        List<VirtualMachine> vms = new ArrayList<>();
        List<ByteArrayOutputStream> outs = new ArrayList<>();
        List<ByteArrayOutputStream> serials = new ArrayList<>();
        try {
            for (int i = 0; i < CONCURRENT_VMS; i++) {
                ByteArrayOutputStream out = new ByteArrayOutputStream();
                ByteArrayOutputStream serial = new ByteArrayOutputStream();
                VirtualMachine vm = krun.create(FastGuests.config("virtio.elf", MEMORY_MIB, out, serial));
                vms.add(vm);
                outs.add(out);
                serials.add(serial);
                vm.start();
            }
            // Every guest has greeted and now waits for input: all the VMs are alive at once.
            for (int i = 0; i < CONCURRENT_VMS; i++) {
                ByteArrayOutputStream out = outs.get(i);
                assertTrue(FastGuests.awaitWhileRunning(vms.get(i), () -> out.toString(US_ASCII).contains("\n")),
                        "vm " + i + " did not greet; serial: " + serials.get(i));
            }
            Snapshot running = Snapshot.take();
            // The probes see what is to be released, or their silence afterwards would prove nothing.
            assertEquals(2 * CONCURRENT_VMS, running.guestMappings(), "guest RAM and kvm_run mappings while running");
            assertEquals(2 * CONCURRENT_VMS, running.krunThreads().size(), () -> "krun threads: " + running.krunThreads());
            assertTrue(running.fds().size() > before.fds().size(), "VMs hold file descriptors while running");

            // The first is killed while its vCPU sleeps in hlt inside KVM_RUN; the others finish.
            vms.get(0).kill();
            assertEquals(VmExit.killed(), FastGuests.await(vms.get(0), serials.get(0)));
            for (int i = 1; i < CONCURRENT_VMS; i++) {
                OutputStream input = vms.get(i).consoleInput();
                input.write("ping\n".getBytes(US_ASCII));
                input.flush();
            }
            for (int i = 1; i < CONCURRENT_VMS; i++) {
                VmExit exit = FastGuests.await(vms.get(i), serials.get(i));
                assertEquals(VmExit.commandExited(0x7f), exit, "vm " + i + "; serial: " + serials.get(i));
                assertEquals("hello from the guest\nping\n", outs.get(i).toString(US_ASCII));
            }
        } finally {
            vms.forEach(VirtualMachine::close);
        }

        assertReturnsTo(before);
    }

    /** Polls for up to SETTLE_MILLIS (threads exit just after the VM reports its exit), then compares. */
    private static void assertReturnsTo(Snapshot before) throws InterruptedException {
        long deadline = System.nanoTime() + SETTLE_MILLIS * 1_000_000;
        Snapshot after = Snapshot.take();
        while (!after.sameCounts(before) && System.nanoTime() < deadline) {
            Thread.sleep(10);
            after = Snapshot.take();
        }
        Snapshot now = after;
        assertEquals(0, now.guestMappings(), "guest RAM (" + MEMORY_MIB + " MiB) or kvm_run mappings left");
        assertEquals(List.of(), now.krunThreads(), "krun threads left");
        assertEquals(before.threads(), now.threads(), () -> "threads (/proc/self/task, JIT compiler threads aside): "
                + "before " + before.threadNames() + ", after " + now.threadNames());
        assertEquals(before.fds().size(), now.fds().size(), () -> "open fds: new " + difference(now.fds(), before.fds())
                + ", gone " + difference(before.fds(), now.fds()));
        assertEquals(List.of(), unexpectedWarnings(), "warnings logged by the core");
    }

    /** WARN and above, less the refusal that virtio.elf provokes on purpose (FEATURES_OK without VERSION_1). */
    private static List<String> unexpectedWarnings() {
        synchronized (WARNINGS) {
            return WARNINGS.list.stream()
                    .filter(e -> !e.getFormattedMessage().equals("virtio device 3: driver features 0x0 refused"))
                    .map(e -> e.getLevel() + " " + e.getThreadName() + ": " + e.getFormattedMessage()
                            + (e.getThrowableProxy() == null ? "" : " (" + e.getThrowableProxy().getMessage() + ")"))
                    .toList();
        }
    }

    /** Passes WARN and above. */
    private static final class ThresholdFilter extends Filter<ILoggingEvent> {
        @Override
        public FilterReply decide(ILoggingEvent event) {
            return event.getLevel().isGreaterOrEqual(Level.WARN) ? FilterReply.NEUTRAL : FilterReply.DENY;
        }
    }

    private static Map<String, String> difference(Map<String, String> a, Map<String, String> b) {
        Map<String, String> d = new TreeMap<>(a);
        d.keySet().removeAll(b.keySet());
        return d;
    }

    /** The first line of a memory area in /proc/self/smaps. */
    private static final Pattern AREA = Pattern.compile("[0-9a-f]+-[0-9a-f]+ ");

    /**
     * What this process holds, from /proc/self. HotSpot starts and stops JIT compiler threads by itself
     * (UseDynamicNumberOfCompilerThreads), so those are left out of the thread count.
     */
    record Snapshot(Map<String, String> fds, List<String> threadNames, int guestMappings) {

        static Snapshot take() {
            return new Snapshot(readFds(Path.of("/proc/self/fd")), readThreadNames(Path.of("/proc/self/task")),
                    countGuestMappings());
        }

        int threads() {
            return threadNames.size();
        }

        List<String> krunThreads() {
            return threadNames.stream().filter(n -> n.startsWith("krun-")).toList();
        }

        boolean sameCounts(Snapshot other) {
            return fds.size() == other.fds.size() && threads() == other.threads() && guestMappings == 0;
        }

        private static Map<String, String> readFds(Path dir) {
            Map<String, String> fds = new TreeMap<>();
            try (Stream<Path> s = Files.list(dir)) {
                for (Path p : s.toList()) {
                    try {
                        fds.put(p.getFileName().toString(), Files.readSymbolicLink(p).toString());
                    } catch (IOException e) {
                        // closed while listing (the listing's own descriptor, or another thread's)
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return fds;
        }

        private static List<String> readThreadNames(Path dir) {
            List<String> names = new ArrayList<>();
            try (Stream<Path> s = Files.list(dir)) {
                for (Path task : s.toList()) {
                    try {
                        String name = Files.readString(task.resolve("comm")).strip();
                        if (!name.startsWith("C1 CompilerThre") && !name.startsWith("C2 CompilerThre")) {
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
            return names;
        }

        /**
         * Guest RAM is an anonymous mapping with MADV_DONTFORK (VmFlags "dc"); the kernel merges the RAM of
         * VMs that happen to be adjacent into one area, so each area counts as its size in guest RAMs. The
         * vCPUs' kvm_run mappings count one each.
         */
        private static int countGuestMappings() {
            int count = 0;
            long areaSize = 0;
            try (Stream<String> lines = Files.lines(Path.of("/proc/self/smaps"))) {
                for (String line : (Iterable<String>) lines::iterator) {
                    if (AREA.matcher(line).lookingAt()) {
                        String[] range = line.substring(0, line.indexOf(' ')).split("-");
                        areaSize = Long.parseUnsignedLong(range[1], 16) - Long.parseUnsignedLong(range[0], 16);
                        if (line.contains("kvm-vcpu")) {
                            count++;
                        }
                    } else if (line.startsWith("VmFlags:") && (" " + line.substring(8) + " ").contains(" dc ")
                            && areaSize % GUEST_RAM_BYTES == 0) {
                        count += (int) (areaSize / GUEST_RAM_BYTES);
                    }
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return count;
        }
    }
}
