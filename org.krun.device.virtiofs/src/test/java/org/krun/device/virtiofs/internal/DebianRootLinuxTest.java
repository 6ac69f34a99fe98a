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
 *
 * <p>Sized for hosts where guest kernel code is slow (kvm-pvm emulates it: every FUSE request, page fault
 * and fork costs milliseconds there): the copy leaves out what no check needs (man pages, locales, time
 * zones, most of /usr/share/doc: {@link #PRUNED}), so {@code find / -xdev} walks about half the tree, and
 * the tar round trip covers a few /usr/share/doc packages ({@link #DOCS}: 42 files, symlinks among them)
 * rather than all of it. Every kind of check stays.
 */
class DebianRootLinuxTest {

    /** Removed from the copy before boot: nothing the guest runs here reads them. */
    static final java.util.List<String> PRUNED = java.util.List.of("usr/share/man", "usr/share/locale",
            "usr/share/zoneinfo", "usr/share/info");
    /**
     * The /usr/share/doc packages kept (the rest is removed) and copied through tar: 42 files in nested
     * folders, 4 symlinks (to a file, to folders), 0.9 MB. With the former 12 packages (143 files, 2.3 MB),
     * mkdir, tar cf and tar xf took 666 of the 1,525 s this test ran under load 20-26 (guest /proc/uptime).
     */
    static final java.util.List<String> DOCS = java.util.List.of("adduser", "apt", "cpp", "gcc", "gcc-12", "gcc-12-base",
            "libasan8");

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
        for (String p : PRUNED) {
            run("rm", "-rf", "--one-file-system", root.resolve(p).toString());
        }
        try (Stream<Path> docs = Files.list(root.resolve("usr/share/doc"))) {
            for (Path d : docs.filter(d -> !DOCS.contains(d.getFileName().toString())).toList()) {
                run("rm", "-rf", "--one-file-system", d.toString());
            }
        }
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
                "echo TAR_LINKS=$(find /root/copy/doc -type l | wc -l)",
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
        long docFiles;
        long docLinks;
        try (Stream<Path> s = Files.walk(root.resolve("usr/share/doc"))) {
            docFiles = s.filter(p -> Files.isRegularFile(p, java.nio.file.LinkOption.NOFOLLOW_LINKS)).count();
        }
        try (Stream<Path> s = Files.walk(root.resolve("usr/share/doc"))) {
            docLinks = s.filter(Files::isSymbolicLink).count();
        }
        assertTrue(docFiles >= 30 && docLinks > 0, "the tar round trip covers files and symlinks: " + docFiles + ", " + docLinks);
        assertEquals(String.valueOf(docFiles), seen.get("TAR_FILES"), r.toString());
        assertEquals(String.valueOf(docLinks), seen.get("TAR_LINKS"), r.toString());
        assertEquals("identical", seen.get("TAR_ROUNDTRIP"), r.toString());
        assertEquals("42", seen.get("COMPILED"), r.toString());
        assertTrue(Files.isExecutable(root.resolve("root/c")), "the binary the guest built is on the host");
    }
}
