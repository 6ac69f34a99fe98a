package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Map;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;

/**
 * A real distribution's userland as the guest's root over virtio-fs (Debian bookworm from debootstrap,
 * a cached fixture copied per run): dpkg, apt, tar round trips with identical checksums, a compile and run
 * with the rootfs's own gcc, and {@code find / -xdev} seeing exactly the entries the host sees (less what
 * the guest's own mounts on /dev, /proc, /sys and /tmp cover).
 */
class DebianRootLinuxTest {

    /**
     * Our own scratch folder rather than JUnit's: a Debian tree holds hundreds of absolute symlinks, and
     * JUnit's clean-up warns about each one. {@code rm -rf} removes them quietly and never follows them.
     */
    private Path tmp;

    @BeforeEach
    void makeScratch() throws Exception {
        tmp = Files.createTempDirectory("krun-debian-root");
    }

    @AfterEach
    void removeScratch() throws Exception {
        if (tmp != null) {
            run("rm", "-rf", "--one-file-system", tmp.toString());
        }
    }

    private static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(false).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed: " + err);
        }
        return out;
    }

    @Test
    void debianUserlandRunsOverVirtioFs() throws Exception {
        LinuxGuest.assumeKvm();
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/sbin/debootstrap")),
                "debootstrap is not installed: the Debian rootfs test is SKIPPED");
        Path repo = Path.of(System.getProperty("user.dir")).getParent();
        String fixture = run(repo.resolve("guest/fixtures/debian-rootfs.sh").toString()).lines()
                .reduce((a, b) -> b).orElseThrow();
        Path root = tmp.resolve("debian");
        run("cp", "-a", fixture, root.toString());
        Files.deleteIfExists(root.resolve(".complete"));
        // What the guest's find / -xdev can see: everything but the contents of the directories its init
        // mounts other filesystems on (debootstrap leaves device nodes in /dev, for one).
        java.util.Set<Path> covered = java.util.Set.of(root.resolve("dev"), root.resolve("proc"), root.resolve("sys"),
                root.resolve("tmp"));
        long hostEntries;
        try (Stream<Path> s = Files.walk(root)) {
            hostEntries = s.filter(p -> covered.stream().noneMatch(m -> p.startsWith(m) && !p.equals(m))).count();
        }

        String script = String.join("\n",
                "echo FIND=$(find / -xdev | wc -l)",
                "echo DPKG=$(dpkg -l | grep -c '^ii')",
                "echo DPKG_HAS_DPKG=$(dpkg -l dpkg | grep -c '^ii  dpkg ')",
                "echo APT=$(apt-get --version | head -1 | cut -d' ' -f1)",
                "mkdir -p /root/copy && cd /usr/share && tar cf /root/doc.tar doc && tar xf /root/doc.tar -C /root/copy",
                "(cd /usr/share/doc && find . -type f -exec md5sum {} + | sort -k2) > /root/sums.a",
                "(cd /root/copy/doc && find . -type f -exec md5sum {} + | sort -k2) > /root/sums.b",
                "echo TAR_FILES=$(wc -l < /root/sums.a)",
                "cmp -s /root/sums.a /root/sums.b && echo TAR_ROUNDTRIP=identical || echo TAR_ROUNDTRIP=different",
                "cat > /root/c.c <<'EOF'",
                "#include <stdio.h>",
                "int main(void) { printf(\"%d\\n\", 6 * 7); return 0; }",
                "EOF",
                "gcc -O2 -o /root/c /root/c.c && echo COMPILED=$(/root/c)",
                "echo DONE");
        LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(new FsFactory()),
                LinuxGuest.config("/bin/sh", "-c", script).root(root).memoryMib(768)
                        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
                null, Duration.ofMinutes(25));
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        assertEquals(0, r.status(), r.toString());
        Map<String, String> seen = r.out().lines().filter(l -> l.matches("[A-Z_]+=.*"))
                .collect(Collectors.toMap(l -> l.substring(0, l.indexOf('=')), l -> l.substring(l.indexOf('=') + 1),
                        (a, b) -> b));
        System.out.println("[debian root test] host entries " + hostEntries + "; guest saw " + seen);
        assertEquals(String.valueOf(hostEntries), seen.get("FIND"), "find / -xdev in the guest vs the host: " + r);
        assertTrue(Integer.parseInt(seen.get("DPKG")) > 80, "installed packages: " + r);
        assertEquals("1", seen.get("DPKG_HAS_DPKG"), r.toString());
        assertEquals("apt", seen.get("APT"), r.toString());
        assertTrue(Integer.parseInt(seen.get("TAR_FILES")) > 100, r.toString());
        assertEquals("identical", seen.get("TAR_ROUNDTRIP"), r.toString());
        assertEquals("42", seen.get("COMPILED"), r.toString());
        assertTrue(Files.isExecutable(root.resolve("root/c")), "the binary the guest built is on the host");
    }
}
