package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code ./krun} with a cache it cannot write (a shared installation, a read-only HOME): from a complete cache
 * it runs as from any other, without an AOT cache of its own; when it must write there, it says so in one line
 * of its own words. Each run sees its cache or HOME read-only through a bind mount in a mount namespace of its
 * own ({@code unshare -m}), so nothing else on the host is affected; where that is not allowed, these tests are
 * skipped.
 */
class KrunReadOnlyCacheIT {

    @TempDir
    static Path dir;
    private static Path script;
    private static Path cache;

    @BeforeAll
    static void aCheckoutAndACompleteCache() throws Exception {
        Assumptions.assumeTrue(new ProcessBuilder("unshare", "-m", "--", "true").start().waitFor() == 0,
                "unshare -m is not allowed here: read-only cache tests SKIPPED");
        Path copy = CheckoutCopy.withRealSetup(dir.resolve("checkout"));
        script = copy.resolve("krun");
        // The cache: krun's kernel where this checkout's build script looks for it, the rootfs built into it.
        cache = Files.createDirectories(dir.resolve("cache"));
        String key = run(List.of(copy.resolve("guest/kernel/build.sh").toString(), "--print-key"), Map.of()).out().strip();
        Path kernel = Files.createDirectories(cache.resolve("kernel").resolve(key));
        Path built = Path.of(KrunProcess.kernel()).getParent();
        for (String file : List.of("vmlinux", "bzImage")) {
            Files.createSymbolicLink(kernel.resolve(file), built.resolve(file));
        }
        KrunProcess.Result rootfs = run(List.of(copy.resolve("guest/rootfs/build.sh").toString()),
                Map.of("KRUN_CACHE", cache.toString()));
        assertEquals(0, rootfs.status(), rootfs.toString());
    }

    /** Runs {@code command} with {@code env} (HOME a folder of its own unless given), {@code readOnly} bind-mounted read-only. */
    private static KrunProcess.Result run(List<String> command, Map<String, String> env, Path... readOnly)
            throws Exception {
        List<String> cmd = new ArrayList<>();
        if (readOnly.length > 0) {
            StringBuilder mounts = new StringBuilder();
            for (Path p : readOnly) {
                mounts.append("mount --bind -o ro '").append(p).append("' '").append(p).append("' && ");
            }
            cmd.addAll(List.of("unshare", "-m", "--", "/bin/sh", "-c", mounts + "exec \"$@\"", "sh"));
        }
        cmd.addAll(command);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("HOME", Files.createDirectories(dir.resolve("home")).toString());
        pb.environment().remove("XDG_CACHE_HOME");
        pb.environment().remove("KRUN_CACHE");
        pb.environment().put("KRUN_JAVA_HOME", System.getProperty("java.home"));
        pb.environment().putAll(env);
        return KrunProcess.run(pb, command, null, 600);
    }

    private static List<String> krun(String... args) {
        List<String> cmd = new ArrayList<>(List.of(script.toString()));
        cmd.addAll(List.of(args));
        return cmd;
    }

    @Test
    void aCompleteReadOnlyCacheRunsKrunWithoutAWordAboutIt() throws Exception {
        Map<String, String> env = Map.of("KRUN_CACHE", cache.toString(), "KRUN_AOT", "1");
        KrunProcess.Result help = run(krun("run", "--help"), env, cache);
        assertEquals(0, help.status(), help.toString());
        assertEquals("", help.err(), "no mkdir or ln errors, no AOT cache attempt to speak of: " + help);
        assertTrue(Files.notExists(cache.resolve("aot")), "nothing was written into the cache");

        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: the boot from a read-only cache SKIPPED");
        KrunProcess.Result boot = run(krun("run", "--", "/bin/sh", "-c", "echo from a read-only cache"), env, cache);
        assertEquals(0, boot.status(), boot.toString());
        assertEquals("from a read-only cache\n", boot.out(), boot.toString());
        assertEquals("", boot.err(), boot.toString());
    }

    @Test
    void aReadOnlyHomeWithoutACacheIsOneLineInKrunsOwnWords() throws Exception {
        Path home = Files.createDirectories(dir.resolve("read-only-home"));
        KrunProcess.Result r = run(krun("run", "--", "/bin/true"), Map.of("HOME", home.toString()), home);
        assertEquals(1, r.status(), r.toString());
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), "one line: " + r);
        assertEquals("krun: cannot build the guest kernel: " + home + "/.cache/krun/kernel cannot be written "
                + "(Read-only file system); set KRUN_CACHE to a writable folder", lines.get(0), r.toString());
        assertEquals("", r.out(), r.toString());
    }
}
