package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bundle profiles and assembled distributions: every profile resolved at build time is listed, the variant
 * profiles start and say plainly what they lack, and a distribution assembled from the minimal profile,
 * copied to an empty folder, runs a guest command with nothing but java on the PATH.
 */
class KrunProfilesIT {

    @TempDir
    Path tmp;

    @Test
    void profilesListsEveryProfileAndWhatTheVariantsLack() throws Exception {
        KrunProcess.Result r = KrunProcess.run(null, 60, "profiles");
        assertEquals(0, r.status(), r.toString());
        for (String p : List.of("default", "minimal", "sev", "tdx", "efi", "nitro")) {
            assertTrue(r.out().lines().anyMatch(l -> l.substring(1).startsWith(p + " ")), p + " listed: " + r);
        }
        for (String lacks : List.of("org.krun.cc.sev", "org.krun.cc.tdx", "org.krun.boot.efi", "org.krun.hv.nitro")) {
            assertTrue(r.out().contains("lacks: " + lacks), lacks + ": " + r);
        }
    }

    @Test
    void variantProfilesStartAndSayWhatTheyLack() throws Exception {
        Map<String, String> lacks = Map.of("sev", "org.krun.cc.sev", "tdx", "org.krun.cc.tdx", "efi", "org.krun.boot.efi",
                "nitro", "org.krun.hv.nitro");
        for (var e : lacks.entrySet()) {
            KrunProcess.Result r = KrunProcess.run(null, 60, "--profile", e.getKey(), "run", "--help");
            assertEquals(0, r.status(), "profile " + e.getKey() + " starts: " + r);
            assertTrue(r.err().contains("profile '" + e.getKey() + "' lacks bundle " + e.getValue()), r.toString());
        }
        KrunProcess.Result nitro = KrunProcess.run(null, 60, "--profile", "nitro", "run", "--allow-unprotected", "--",
                "/bin/true");
        assertNotEquals(0, nitro.status(), nitro.toString());
        assertTrue(nitro.err().contains("no hypervisor backend is available"), nitro.toString());
        assertFalse(nitro.err().contains("Exception"), nitro.toString());
    }

    @Test
    void protectingProfilesRefuseToRunUnprotectedVmsUnlessToldTo() throws Exception {
        Map<String, String> promise = Map.of("sev", "AMD SEV-SNP", "tdx", "Intel TDX", "nitro", "AWS Nitro Enclaves");
        for (var e : promise.entrySet()) {
            KrunProcess.Result r = KrunProcess.run(null, 60, "--profile", e.getKey(), "run", "--", "/bin/true");
            assertEquals(1, r.status(), r.toString());
            List<String> lines = r.err().lines().filter(l -> !l.contains("lacks bundle")).toList();
            assertEquals(1, lines.size(), "one line: " + r);
            assertTrue(lines.getFirst().startsWith("krun: profile '" + e.getKey() + "' cannot give its VMs " + e.getValue()),
                    r.toString());
            assertTrue(lines.getFirst().endsWith("(pass --allow-unprotected to run the VM without it)"), r.toString());
        }
        // efi promises no protection: it runs (here without a kernel, to stay quick) and only says what it lacks.
        KrunProcess.Result efi = KrunProcess.run(null, 60, "--profile", "efi", "run", "--kernel", "/no/such/kernel", "--",
                "/bin/true");
        assertFalse(efi.err().contains("allow-unprotected"), efi.toString());
        assertTrue(efi.err().contains("kernel /no/such/kernel does not exist"), efi.toString());
    }

    @Test
    void assembledMinimalDistributionRunsWithOnlyJavaOnThePath() throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: the distribution boot is SKIPPED");
        Path built = tmp.resolve("built");
        KrunProcess.Result a = KrunProcess.run(null, 120, "--profile", "minimal", "assemble", "--profile", "minimal",
                "--out", built.toString());
        assertEquals(0, a.status(), a.toString());
        assertTrue(Files.isExecutable(built.resolve("krun")));

        // Copy it where nothing else is, and give it a PATH with java alone.
        Path empty = Files.createDirectories(tmp.resolve("empty"));
        Process cp = new ProcessBuilder("cp", "-a", built.toString(), empty.resolve("dist").toString()).start();
        assertEquals(0, cp.waitFor());
        Path onlyJava = Files.createDirectories(tmp.resolve("bin"));
        Files.createSymbolicLink(onlyJava.resolve("java"), Path.of(System.getProperty("java.home"), "bin", "java"));

        String[] r = runDistribution(empty.resolve("dist"), onlyJava, "run", "--",
                "/bin/sh", "-c", "echo from the assembled distribution; exit 3");
        assertEquals("3", r[0], r[1] + r[2]);
        assertEquals("from the assembled distribution\n", r[1], r[2]);
    }

    @Test
    void customDistributionCarriesAThirdPartyDeviceTheGuestSees() throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: the distribution boot is SKIPPED");
        Path device = Path.of(System.getProperty("krun.testdevice.jar"));
        Path probe = Path.of(System.getProperty("krun.guests"), "probe.elf");
        Path dist = tmp.resolve("custom");
        KrunProcess.Result a = KrunProcess.run(null, 120, "assemble", "--profile", "minimal", "--bundle", device.toString(),
                "--no-guest", "--out", dist.toString());
        assertEquals(0, a.status(), a.toString());
        Path onlyJava = Files.createDirectories(tmp.resolve("bin2"));
        Files.createSymbolicLink(onlyJava.resolve("java"), Path.of(System.getProperty("java.home"), "bin", "java"));
        // probe.elf, a freestanding guest, lists the virtio device ids it finds and exits with their count.
        // An empty initrd: no root directory, so no virtio-fs share either (and --no-guest left no rootfs).
        Path emptyInitrd = Files.createFile(tmp.resolve("empty.cpio"));
        String[] r = runDistribution(dist, onlyJava, "run", "--kernel", probe.toString(), "--initrd",
                emptyInitrd.toString(), "--", "probe");
        assertEquals("2", r[0], "probe.elf exits with the number of devices it found: " + r[1] + r[2]);
        assertTrue(r[1].contains("devices: 3 63") || r[2].contains("devices: 3 63"),
                "console and the third-party device (id 63), nothing else: " + r[1] + r[2]);
    }

    /** Runs the distribution's krun with only {@code path} on the PATH: {exit status, stdout, stderr}. */
    private String[] runDistribution(Path dist, Path path, String... args) throws Exception {
        List<String> cmd = new java.util.ArrayList<>();
        cmd.add(dist.resolve("krun").toString());
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().clear();
        pb.environment().put("PATH", path.toString());
        pb.environment().put("HOME", tmp.toString());
        pb.directory(tmp.toFile());
        Process p = pb.start();
        if (!p.waitFor(600, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("the distribution's krun did not finish");
        }
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        return new String[] {String.valueOf(p.exitValue()), out, err};
    }
}
