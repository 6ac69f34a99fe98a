package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.KrunException;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.api.VmExit;
import org.krun.hv.kvm.internal.KvmHypervisor;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.krun.vmm.internal.snapshot.SnapshotFile;
import org.krun.vmm.internal.snapshot.SnapshotState;

/**
 * VM snapshot and restore under the real KVM backend with counter.elf (src/test/guest), a guest that
 * counts in memory and prints a line every 5 ticks of its local APIC timer: paused mid-run, snapshotted,
 * killed, and restored twice from the one snapshot into VMs that both go on from where it was (their
 * line numbers and counters continue, their timers tick) and share the snapshot's unchanged pages.
 */
class SnapshotGuestTest {
    private static final int MEMORY_MIB = 64;
    private static final int LAST_LINE = 60;
    private static final Pattern LINE = Pattern.compile("line 0x([0-9a-f]{16}) count 0x([0-9a-f]{16}) ticks 0x([0-9a-f]{16})\n");

    private static KvmHypervisor kvm;
    private static KrunService krun;

    @TempDir
    Path dir;

    @BeforeAll
    static void openKvm() {
        FastGuests.assumeKvm();
        kvm = KvmHypervisor.open();
        krun = FastGuests.krun(kvm);
    }

    @AfterAll
    static void closeKvm() {
        if (kvm != null) {
            kvm.close();
        }
    }

    /** One printed line of counter.elf. */
    record Line(long line, long count, long ticks) {
    }

    static List<Line> lines(String serial) {
        List<Line> out = new ArrayList<>();
        Matcher m = LINE.matcher(serial);
        while (m.find()) {
            out.add(new Line(Long.parseUnsignedLong(m.group(1), 16), Long.parseUnsignedLong(m.group(2), 16),
                    Long.parseUnsignedLong(m.group(3), 16)));
        }
        return out;
    }

    private static VmConfig config(ByteArrayOutputStream out, ByteArrayOutputStream serial) {
        return FastGuests.config("counter.elf", MEMORY_MIB, out, serial);
    }

    private static String text(ByteArrayOutputStream b) {
        synchronized (b) {
            return b.toString(US_ASCII);
        }
    }

    @Test
    void restoredVmsContinueCountingFromTheSnapshotWithTimersTicking() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        VirtualMachine original = krun.create(config(out, serial));
        long coldStart = System.nanoTime();
        original.start();
        long coldStartNanos = System.nanoTime() - coldStart;
        assertTrue(FastGuests.awaitWhileRunning(original, () -> lines(text(serial)).size() >= 10),
                () -> "counter.elf printed no 10 lines: " + serial);

        long pauseStart = System.nanoTime();
        original.pause();
        long pauseNanos = System.nanoTime() - pauseStart;
        String atPause = text(serial);
        Thread.sleep(200);
        assertEquals(atPause, text(serial), "a paused guest printed");
        long snapStart = System.nanoTime();
        original.snapshot(dir);
        long snapshotNanos = System.nanoTime() - snapStart;
        original.kill();
        assertEquals(VmExit.Reason.KILLED, FastGuests.await(original, serial).reason());
        List<Line> before = lines(atPause);
        Line last = before.get(before.size() - 1);

        ByteArrayOutputStream[] serials = {new ByteArrayOutputStream(), new ByteArrayOutputStream()};
        VirtualMachine[] restored = new VirtualMachine[2];
        long[] restoreNanos = new long[2];
        for (int i = 0; i < 2; i++) {
            long t = System.nanoTime();
            restored[i] = krun.restore(config(new ByteArrayOutputStream(), serials[i]), dir);
            restored[i].start();
            restoreNanos[i] = System.nanoTime() - t;
        }
        ByteArrayOutputStream s0 = serials[0];
        ByteArrayOutputStream s1 = serials[1];
        boolean halfway = FastGuests.awaitWhileRunning(restored[1], () -> lines(text(s0)).size() > 10 && lines(text(s1)).size() > 10);
        String sharing = halfway ? ramSharing(dir.resolve(SnapshotFile.RAM_FILE)) : "not measured (VMs stopped early)";
        // A snapshot of a restored VM into the same directory, while its sibling runs on the old RAM file: the
        // new files replace the old by rename, so the sibling's mapping keeps the old one.
        restored[0].pause();
        String chainedAt = text(serials[0]);
        restored[0].snapshot(dir);
        restored[0].resume();
        List<Line> chainedBefore = lines(chainedAt);
        Line chainedLast = chainedBefore.get(chainedBefore.size() - 1);
        ByteArrayOutputStream chainedSerial = new ByteArrayOutputStream();
        VirtualMachine chained = krun.restore(config(new ByteArrayOutputStream(), chainedSerial), dir);
        chained.start();
        VmExit[] exits = {FastGuests.await(restored[0], serials[0]), FastGuests.await(restored[1], serials[1])};
        VmExit chainedExit = FastGuests.await(chained, chainedSerial);
        assertEquals(VmExit.Reason.COMMAND_EXITED, chainedExit.reason(), () -> chainedExit + "; serial: " + chainedSerial);
        List<Line> chainedAfter = lines(text(chainedSerial));
        assertTrue(!chainedAfter.isEmpty() && chainedAfter.get(0).line() > chainedLast.line()
                && chainedAfter.get(0).line() <= chainedLast.line() + 2, () -> "chained restore after " + chainedLast + ": " + chainedSerial);
        assertEquals(LAST_LINE, chainedAfter.get(chainedAfter.size() - 1).line());

        for (int i = 0; i < 2; i++) {
            String text = text(serials[i]);
            VmExit exit = exits[i];
            assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), () -> exit + "; serial: " + text);
            assertEquals(1, exit.status());
            List<Line> after = lines(text);
            assertFalse(after.isEmpty(), "restored VM printed no line: " + text);
            Line first = after.get(0);
            // The guest may have been paused in the middle of printing line last+1: its tail comes first.
            assertTrue(first.line() == last.line() + 1 || first.line() == last.line() + 2,
                    () -> "restored VM went on at line " + first.line() + " after " + last.line() + ": " + text);
            assertTrue(first.count() > last.count(), () -> "the counter restarted: " + first + " after " + last);
            for (int k = 1; k < after.size(); k++) {
                assertEquals(after.get(k - 1).line() + 1, after.get(k).line(), text);
                assertTrue(after.get(k).ticks() > after.get(k - 1).ticks(), "timer ticks did not advance: " + text);
            }
            assertEquals(LAST_LINE, after.get(after.size() - 1).line(), text);
        }
        System.out.printf("SnapshotGuestTest figures: cold start() %.1f ms; pause %.1f ms; snapshot %.1f ms "
                + "(RAM file %d KiB allocated of %d MiB); restore+start() %.1f ms and %.1f ms; at line %d; %s%n",
                coldStartNanos / 1e6, pauseNanos / 1e6, snapshotNanos / 1e6, allocatedKib(dir.resolve(SnapshotFile.RAM_FILE)),
                MEMORY_MIB, restoreNanos[0] / 1e6, restoreNanos[1] / 1e6, last.line(), sharing);
    }

    @Test
    void snapshotIsRefusedWithOneLineNamingADeviceThatCannotSnapshot() throws Exception {
        KrunService withFake = FastGuests.krun(kvm);
        withFake.addDeviceFactory(new NoSnapshotFactory());
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        VmConfig config = config(new ByteArrayOutputStream(), serial).toBuilder()
                .devices(List.of(new GenericDeviceSpec("nosnap", Map.of()))).build();
        try (VirtualMachine vm = withFake.create(config)) {
            vm.start();
            assertTrue(FastGuests.awaitWhileRunning(vm, () -> lines(text(serial)).size() >= 1), () -> "no line: " + serial);
            vm.pause();
            KrunException e = assertThrows(KrunException.class, () -> vm.snapshot(dir));
            assertEquals("cannot snapshot VM " + vm.id() + ": device virtio device type 42 does not support snapshots", e.getMessage());
            assertFalse(Files.exists(dir.resolve(SnapshotFile.STATE_FILE)));
            vm.resume();
            int seen = lines(text(serial)).size();
            assertTrue(FastGuests.awaitWhileRunning(vm, () -> lines(text(serial)).size() > seen), "no line after resume");
        }
    }

    @Test
    void restoreRefusesAnotherShapeATruncatedRamFileAndACorruptStateFileWithOneLine() throws Exception {
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        try (VirtualMachine vm = krun.create(config(new ByteArrayOutputStream(), serial))) {
            vm.start();
            assertTrue(FastGuests.awaitWhileRunning(vm, () -> lines(text(serial)).size() >= 1), () -> "no line: " + serial);
            vm.pause();
            vm.snapshot(dir);
        }
        VmConfig bigger = config(new ByteArrayOutputStream(), new ByteArrayOutputStream()).toBuilder().memoryMib(128).build();
        VmConfigException shape = assertThrows(VmConfigException.class, () -> krun.restore(bigger, dir));
        assertTrue(shape.getMessage().startsWith("snapshot " + dir + " is of a VM with 64 MiB, 1 vCPU, devices [console (type 3"),
                shape.getMessage());
        assertFalse(shape.getMessage().contains("\n"));

        Path ram = dir.resolve(SnapshotFile.RAM_FILE);
        try (var f = new java.io.RandomAccessFile(ram.toFile(), "rw")) {
            f.setLength(f.length() - 4096);
        }
        VmConfigException shortRam = assertThrows(VmConfigException.class,
                () -> krun.restore(config(new ByteArrayOutputStream(), new ByteArrayOutputStream()), dir));
        assertEquals("snapshot RAM " + ram + " has " + ((MEMORY_MIB << 20) - 4096) + " bytes; its state says " + (MEMORY_MIB << 20),
                shortRam.getMessage());

        Path state = dir.resolve(SnapshotFile.STATE_FILE);
        byte[] bytes = Files.readAllBytes(state);
        bytes[bytes.length / 2] ^= 0x40;
        Files.write(state, bytes);
        VmConfigException corrupt = assertThrows(VmConfigException.class,
                () -> krun.restore(config(new ByteArrayOutputStream(), new ByteArrayOutputStream()), dir));
        assertEquals("snapshot state " + state + " is corrupt (checksum mismatch)", corrupt.getMessage());
        assertTrue(krun.list().isEmpty(), "a refused restore left a VM behind");
    }

    @Test
    void restoreOfADeviceStateTheDeviceRefusesFailsWithOneLineAndLeavesNothingBehind() throws Exception {
        KrunService withPicky = FastGuests.krun(kvm);
        withPicky.addDeviceFactory(new PickyFactory());
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        VmConfig reportingOn = config(new ByteArrayOutputStream(), serial).toBuilder()
                .devices(List.of(new GenericDeviceSpec("picky", Map.of("reporting", "on")))).build();
        try (VirtualMachine vm = withPicky.create(reportingOn)) {
            vm.start();
            assertTrue(FastGuests.awaitWhileRunning(vm, () -> lines(text(serial)).size() >= 1), () -> "no line: " + serial);
            vm.pause();
            vm.snapshot(dir);
            vm.kill();
            FastGuests.await(vm, serial);
        }
        // One good restore first: what a restored VM's first run loads stays loaded and is no leak.
        try (VirtualMachine warm = withPicky.restore(config(new ByteArrayOutputStream(), new ByteArrayOutputStream()).toBuilder()
                .devices(reportingOn.devices()).build(), dir)) {
            warm.start();
        }
        VmResourceLeakTest.Snapshot before = settled(null);
        Path ram = dir.resolve(SnapshotFile.RAM_FILE);
        Path statePath = dir.resolve(SnapshotFile.STATE_FILE);
        SnapshotState good = SnapshotFile.read(statePath);
        List<String> messages = new ArrayList<>();
        int closedBefore = PickyFactory.closed.get();

        // The configured device does not fit the saved state (as a balloon with another reporting setting).
        VmConfig reportingOff = config(new ByteArrayOutputStream(), new ByteArrayOutputStream()).toBuilder()
                .devices(List.of(new GenericDeviceSpec("picky", Map.of("reporting", "off")))).build();
        messages.add(refusedRestore(withPicky, reportingOff, "cannot restore device virtio device type 43 from snapshot " + dir
                + ": picky: the snapshot's device had reporting on; this one has it off"));
        // Tampered states: the console's (given to a console the snapshot had inactive) and the picky device's.
        SnapshotFile.write(statePath, withDeviceState(good, 0, new byte[] {1}));
        messages.add(refusedRestore(withPicky, reportingOn, "cannot restore device virtio-console"));
        SnapshotFile.write(statePath, withDeviceState(good, 1, new byte[] {7}));
        messages.add(refusedRestore(withPicky, reportingOn, "cannot restore device virtio device type 43 from snapshot " + dir
                + ": picky: saved reporting flag 7"));

        settled(before);
        assertEquals(0, mappingsOf(ram), "the snapshot's RAM is still mapped");
        assertTrue(withPicky.list().isEmpty(), "a refused restore left a VM behind");
        assertEquals(closedBefore + 3, PickyFactory.closed.get(), "every refused VM's devices were closed");
        System.out.println("SnapshotGuestTest refused restores: " + messages);
    }

    /** Restores {@code config} from {@code dir}; start() must throw one line starting with {@code expected}. */
    private String refusedRestore(KrunService service, VmConfig config, String expected) {
        VirtualMachine vm = service.restore(config, dir);
        KrunException e = assertThrows(KrunException.class, vm::start);
        assertTrue(e.getMessage().startsWith(expected), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        assertEquals(VmExit.Reason.FAILED, vm.exit().getNow(null).reason());
        return e.getMessage();
    }

    private static SnapshotState withDeviceState(SnapshotState s, int index, byte[] state) {
        List<byte[]> devices = new ArrayList<>(s.devices());
        devices.set(index, state);
        return new SnapshotState(s.backend(), s.cpuSignature(), s.shape(), s.ramBytes(), s.vm(), s.vcpus(), s.transports(),
                devices, s.legacy());
    }

    /**
     * What this process holds once the VM threads have gone (polled for up to 2 s), compared with
     * {@code before} when given: fds, threads (krun's and all others), and kvm_run mappings.
     */
    static VmResourceLeakTest.Snapshot settled(VmResourceLeakTest.Snapshot before) throws InterruptedException {
        long deadline = System.nanoTime() + 2_000_000_000L;
        VmResourceLeakTest.Snapshot now = VmResourceLeakTest.Snapshot.take();
        while (!(now.krunThreads().isEmpty() && (before == null
                || (now.fds().size() == before.fds().size() && now.threads() == before.threads()))) && System.nanoTime() < deadline) {
            Thread.sleep(10);
            now = VmResourceLeakTest.Snapshot.take();
        }
        VmResourceLeakTest.Snapshot after = now;
        assertEquals(List.of(), after.krunThreads(), "krun threads left");
        if (before != null) {
            assertEquals(before.threadNames(), after.threadNames(), "threads (JIT compiler threads aside)");
            assertEquals(before.fds().size(), after.fds().size(), () -> "open fds: before " + before.fds() + ", after " + after.fds());
            assertEquals(before.guestMappings(), after.guestMappings(), "kvm_run mappings");
        }
        return after;
    }

    /** How many mappings of {@code file} this process has (/proc/self/maps). */
    private static long mappingsOf(Path file) throws IOException {
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.endsWith(" " + file)).count();
    }

    /**
     * Device type 43 ("picky"), which saves a flag from its configuration ({@code reporting=on|off}, as a
     * balloon's free page reporting) and refuses a state with another flag, or one it could not have written.
     */
    static final class PickyFactory implements VirtioDeviceFactory {
        static final java.util.concurrent.atomic.AtomicInteger closed = new java.util.concurrent.atomic.AtomicInteger();
        @Override
        public String type() {
            return "picky";
        }

        @Override
        public VirtioDevice create(DeviceSpec spec) {
            boolean reporting = "on".equals(((GenericDeviceSpec) spec).options().get("reporting"));
            return new SnapshottableDevice() {
                @Override public int deviceType() { return 43; }
                @Override public long deviceFeatures() { return 0; }
                @Override public int queueCount() { return 1; }
                @Override public int queueMaxSize(int index) { return 16; }
                @Override public int configSize() { return 0; }
                @Override public void readConfig(int offset, byte[] data) { }
                @Override public void writeConfig(int offset, byte[] data) { }
                @Override public void activate(DeviceContext context) { }
                @Override public void queueNotify(int index) { }
                @Override public void reset() { }
                @Override public void close() { closed.incrementAndGet(); }
                @Override public byte[] saveState() { return new byte[] {(byte) (reporting ? 1 : 0)}; }

                @Override
                public void restoreState(byte[] state) {
                    if (state.length != 1 || (state[0] & ~1) != 0) {
                        throw new IllegalArgumentException("picky: saved reporting flag " + (state.length == 1 ? state[0] : "of " + state.length + " bytes"));
                    }
                    if ((state[0] == 1) != reporting) {
                        throw new IllegalArgumentException("picky: the snapshot's device had reporting " + (state[0] == 1 ? "on" : "off")
                                + "; this one has it " + (reporting ? "on" : "off"));
                    }
                }
            };
        }

        @Override
        public Optional<DeviceSpec> defaultSpec() {
            return Optional.empty();
        }
    }

    /** Rss, shared and private pages of every mapping of {@code ram} in this process (/proc/self/smaps). */
    static String ramSharing(Path ram) throws IOException {
        List<String> smaps = Files.readAllLines(Path.of("/proc/self/smaps"));
        StringBuilder b = new StringBuilder("smaps of the snapshot RAM mappings:");
        boolean in = false;
        int mappings = 0;
        for (String l : smaps) {
            if (l.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                in = l.endsWith(" " + ram);
                if (in) {
                    mappings++;
                    b.append(" [mapping ").append(mappings).append(']');
                }
            } else if (in && (l.startsWith("Rss:") || l.startsWith("Shared_Clean:") || l.startsWith("Private_Clean:")
                    || l.startsWith("Private_Dirty:") || l.startsWith("Anonymous:"))) {
                b.append(' ').append(l.replaceAll("\\s+", " "));
            }
        }
        return b.toString();
    }

    static long allocatedKib(Path file) throws IOException {
        Process p = new ProcessBuilder("du", "-k", file.toString()).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), US_ASCII).trim();
        return Long.parseLong(out.split("\\s+")[0]);
    }

    /** A device type (42) whose device does not implement SnapshottableDevice. */
    static final class NoSnapshotFactory implements VirtioDeviceFactory {
        @Override
        public String type() {
            return "nosnap";
        }

        @Override
        public VirtioDevice create(DeviceSpec spec) {
            return new VirtioDevice() {
                @Override public int deviceType() { return 42; }
                @Override public long deviceFeatures() { return 0; }
                @Override public int queueCount() { return 1; }
                @Override public int queueMaxSize(int index) { return 16; }
                @Override public int configSize() { return 0; }
                @Override public void readConfig(int offset, byte[] data) { }
                @Override public void writeConfig(int offset, byte[] data) { }
                @Override public void activate(DeviceContext context) { }
                @Override public void queueNotify(int index) { }
                @Override public void reset() { }
            };
        }

        @Override
        public Optional<DeviceSpec> defaultSpec() {
            return Optional.empty();
        }
    }
}
