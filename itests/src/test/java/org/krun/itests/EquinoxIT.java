package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.Assume;
import org.junit.Test;
import org.krun.itests.equinox.EquinoxMain;

/**
 * krun's bundles in a plain Eclipse Equinox with Felix SCR and nothing else (no logging bundles, no
 * service loader mediator): they resolve and start, and a VM boots through the Krun service. The framework
 * runs in a JVM of its own ({@link EquinoxMain}) whose class path is Equinox alone, as an embedder's
 * would be, with {@code --enable-native-access=ALL-UNNAMED} (every bundle class loader is an unnamed module).
 */
public class EquinoxIT {

    @Test
    public void bundlesResolveInPlainEquinoxWithScrAndBootAGuest() throws Exception {
        Path kvm = Path.of("/dev/kvm");
        boolean kvmUsable = Files.isReadable(kvm) && Files.isWritable(kvm);
        if (!kvmUsable) {
            System.err.println("*** /dev/kvm is missing or not accessible: the VM boot in Equinox is SKIPPED ***");
        }
        Assume.assumeTrue("/dev/kvm is missing", kvmUsable);
        Path equinox = onlyJar(Path.of(System.getProperty("krun.equinox")));
        Path testClasses = Path.of(EquinoxMain.class.getProtectionDomain().getCodeSource().getLocation().toURI());
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "-cp", equinox + ":" + testClasses, EquinoxMain.class.getName(),
                Path.of(System.getProperty("krun.guests"), "virtio.elf").toString()));
        try (Stream<Path> jars = Files.list(Path.of(System.getProperty("krun.bundles")))) {
            for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).sorted().toList()) {
                cmd.add(jar.toString());
            }
        }
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out;
        try (var in = p.getInputStream()) {
            out = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        if (!p.waitFor(180, TimeUnit.SECONDS)) {
            p.destroyForcibly();
        }
        List<String> lines = out.lines().toList();
        assertTrue(out, lines.contains("FRAMEWORK org.eclipse.osgi.launch.Equinox"));
        for (String bsn : List.of("org.krun.api", "org.krun.posix", "org.krun.vmm", "org.krun.hv.kvm",
                "org.krun.device.console", "org.apache.felix.scr")) {
            assertTrue(bsn + " is active in Equinox:\n" + out, lines.contains("BUNDLE " + bsn + " ACTIVE"));
        }
        assertTrue("no bundle failed to start:\n" + out, lines.stream().noneMatch(l -> l.startsWith("FAILED")));
        assertTrue(out, lines.contains("STATUS " + KrunBundlesIT.VIRTIO_GUEST_ALL_PASSED));
        assertTrue(out, lines.contains("OUTPUT hello from the guest\\nping\\n"));
        assertEquals(out, 0, p.exitValue());
    }

    private static Path onlyJar(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(f -> f.toString().endsWith(".jar")).findFirst()
                    .orElseThrow(() -> new IllegalStateException("no Equinox jar in " + dir));
        }
    }
}
