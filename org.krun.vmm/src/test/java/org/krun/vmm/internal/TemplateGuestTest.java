package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.hv.kvm.internal.KvmHypervisor;
import org.krun.vmm.internal.snapshot.SnapshotFile;
import org.krun.vmm.internal.snapshot.SnapshotState;

/**
 * Templates (docs/templates.md) under the real KVM backend with template.elf (src/test/guest), a guest that
 * speaks the init's side of the template protocol: it prints "boot", stops at the template point (port
 * 0xf6), then reads and prints its run's configuration (port 0xf7, compared with the MMIO window at
 * 0xd8000000). The first run for a key boots and
 * leaves a template; later runs restore it and print only their own configuration; a template whose
 * state a device refuses is removed, the run boots cold and makes a new one, and what the failed restore
 * had built is gone with the run; ten VMs restored at once each get their own configuration and entropy.
 * Needs /dev/kvm.
 */
class TemplateGuestTest {
    private static final Pattern SEED = Pattern.compile("\"seed\":\"([0-9a-f]+)\"");
    private static KvmHypervisor kvm;
    private static KrunService krun;

    @TempDir
    Path cache;

    @BeforeAll
    static void openKvm() {
        FastGuests.assumeKvm();
        kvm = KvmHypervisor.open();
        krun = FastGuests.krun(kvm);
        krun.addDeviceFactory(new SnapshotGuestTest.PickyFactory());
    }

    @AfterAll
    static void closeKvm() {
        if (kvm != null) {
            kvm.close();
        }
    }

    private VmConfig config(String word, ByteArrayOutputStream serial, int columns, int rows) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        return FastGuests.config("template.elf", 64, out, serial).toBuilder()
                .console(ConsoleSpec.terminal(out, columns, rows).withStreams(out, serial))
                .command("fast-guest", word)
                .devices(List.of(new GenericDeviceSpec("picky", Map.of("reporting", "on"))))
                .templateCache(cache)
                .build();
    }

    /** Runs the guest with {@code word} as its argument; returns what it printed on its serial line. */
    private String run(String word) throws Exception {
        return run(word, 80, 24);
    }

    /** The same on a terminal of {@code columns} x {@code rows}. */
    private String run(String word, int columns, int rows) throws Exception {
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        try (VirtualMachine vm = krun.create(config(word, serial, columns, rows))) {
            vm.start();
            VmExit exit = FastGuests.await(vm, serial);
            assertEquals(VmExit.commandExited(5), exit, () -> word + ": " + serial);
        }
        String out = serial.toString(US_ASCII);
        assertTrue(out.contains("\"" + word + "\""), () -> word + " got another run's configuration: " + out);
        assertTrue(out.endsWith("\nwindow same\nend\n"), () -> word + ": the MMIO window and the port disagree: " + out);
        return out;
    }

    private List<Path> templates() throws IOException {
        try (Stream<Path> s = Files.list(cache)) {
            return s.filter(p -> !p.getFileName().toString().startsWith(".")).toList();
        }
    }

    private static String seed(String out) {
        Matcher m = SEED.matcher(out);
        assertTrue(m.find(), () -> "no seed in " + out);
        return m.group(1);
    }

    @Test
    void firstRunMakesTheTemplateLaterRunsRestoreItARefusedOneIsRemadeAndTenSiblingsDiffer() throws Exception {
        String first = run("first");
        assertTrue(first.startsWith("boot\nconfig "), first);
        List<Path> made = templates();
        assertEquals(1, made.size(), "one template: " + made);
        Path state = made.get(0).resolve(SnapshotFile.STATE_FILE);

        String second = run("second");
        assertTrue(second.startsWith("config "), () -> "restored at the template point, so no boot line: " + second);
        assertEquals(made, templates());
        assertNotEquals(seed(first), seed(second), "each run gets its own entropy");

        // The picky device (slot 1) refuses a state it could not have written.
        SnapshotState good = SnapshotFile.read(state);
        List<byte[]> devices = new ArrayList<>(good.devices());
        devices.set(1, new byte[] {7});
        SnapshotFile.write(state, new SnapshotState(good.backend(), good.cpuSignature(), good.shape(), good.ramBytes(),
                good.vm(), good.vcpus(), good.transports(), devices, good.legacy()));

        VmResourceLeakTest.Snapshot before = SnapshotGuestTest.settled(null);
        String third = run("third");
        assertTrue(third.startsWith("boot\nconfig "), () -> "booted cold after the refused restore: " + third);
        assertEquals(made, templates(), "the same key's template, made again");
        assertArrayEquals(new byte[] {1}, SnapshotFile.read(state).devices().get(1), "the new template's device state");
        SnapshotGuestTest.settled(before); // the failed restore's RAM, VM, threads and fds are gone with the run

        String fourth = run("fourth");
        assertTrue(fourth.startsWith("config "), () -> "restored from the new template: " + fourth);

        // Another terminal size is the same template: the restored run gets its own size with its configuration.
        String fifth = run("fifth", 132, 43);
        assertTrue(fifth.startsWith("config "), () -> "a terminal of another size restores the template: " + fifth);
        assertTrue(fifth.contains("\"columns\":132,\"rows\":43"), fifth);
        assertEquals(made, templates(), "no template of its own");

        // Ten at once from the one template: each its own configuration and its own entropy.
        List<java.util.concurrent.Future<String>> siblings = new ArrayList<>();
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(10)) {
            for (int i = 0; i < 10; i++) {
                String word = "sibling-" + i;
                siblings.add(pool.submit(() -> run(word)));
            }
        }
        java.util.Set<String> seeds = new java.util.HashSet<>(List.of(seed(first), seed(second), seed(third), seed(fourth)));
        for (java.util.concurrent.Future<String> f : siblings) {
            String out = f.get();
            assertTrue(out.startsWith("config "), () -> "restored: " + out);
            assertTrue(seeds.add(seed(out)), () -> "a seed given twice: " + out);
        }
        assertEquals(made, templates(), "restores leave the cache as it was");
    }
}
