package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The krun command's handling of bad input: one clear line on stderr, a non-zero status, no stack
 * trace, nothing left behind. None of these boot a guest.
 */
class KrunCommandLineIT {

    private static void assertOneLineError(KrunProcess.Result r, String mention) {
        assertNotEquals(0, r.status(), r.toString());
        assertEquals("", r.out(), r.toString());
        List<String> lines = r.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, lines.size(), "exactly one line on stderr: " + r);
        assertTrue(lines.get(0).startsWith("krun: "), r.toString());
        assertTrue(lines.get(0).contains(mention), "mentions '" + mention + "': " + r);
        assertFalse(r.err().contains("Exception"), "no stack trace: " + r);
    }

    /** What is left in the framework storage of krun runs whose XDG_RUNTIME_DIR was {@code runtime}. */
    private static List<Path> felixStorageDirs(Path runtime) throws IOException {
        try (Stream<Path> s = Files.list(runtime.resolve("krun"))) {
            return s.toList();
        }
    }

    @Test
    void missingKernelFileIsOneLineError() throws Exception {
        assertOneLineError(KrunProcess.run(null, 60, "run", "--kernel", "/nonexistent/vmlinux", "--", "/bin/true"),
                "/nonexistent/vmlinux");
    }

    @Test
    void zeroMemoryIsOneLineError() throws Exception {
        assertOneLineError(KrunProcess.run(null, 60, "run", "--mem", "0", "--", "/bin/true"), "memory");
    }

    @Test
    void zeroCpusIsOneLineError() throws Exception {
        assertOneLineError(KrunProcess.run(null, 60, "run", "--cpus", "0", "--", "/bin/true"), "cpus");
    }

    @Test
    void nonNumericMemoryIsOneLineError() throws Exception {
        assertOneLineError(KrunProcess.run(null, 60, "run", "--mem", "lots", "--", "/bin/true"), "--mem");
    }

    @Test
    void unknownFlagIsOneLineError() throws Exception {
        KrunProcess.Result r = KrunProcess.run(null, 60, "run", "--frobnicate", "--", "/bin/true");
        assertOneLineError(r, "--frobnicate");
        assertEquals(2, r.status(), "usage errors exit 2: " + r);
    }

    @Test
    void missingRootDirectoryIsOneLineError() throws Exception {
        assertOneLineError(KrunProcess.run(null, 60, "run", "--root", "/nonexistent/root", "--", "/bin/true"),
                "/nonexistent/root");
    }

    @Test
    void kernelThatIsNotAKernelIsOneLineError() throws Exception {
        Path notKernel = Files.createTempFile("krun-not-a-kernel", ".bin");
        try {
            Files.writeString(notKernel, "this is not a kernel image, just text long enough to be read as a header");
            assertOneLineError(KrunProcess.run(null, 60, "run", "--kernel", notKernel.toString(), "--", "/bin/true"),
                    "neither an ELF vmlinux nor a bzImage");
        } finally {
            Files.deleteIfExists(notKernel);
        }
    }

    @Test
    void unknownProfileIsOneLineError() throws Exception {
        assertOneLineError(KrunProcess.run(null, 60, "--profile", "nosuch", "run", "--", "/bin/true"), "nosuch");
    }

    @Test
    void failedRunsLeaveNoFrameworkStorageBehind(@TempDir Path runtime) throws Exception {
        Map<String, String> env = Map.of("XDG_RUNTIME_DIR", runtime.toString());
        assertNotEquals(0, KrunProcess.run(env, null, 60, "run", "--mem", "0", "--", "/bin/true").status());
        assertNotEquals(0, KrunProcess.run(env, null, 60, "run", "--frobnicate").status());
        assertEquals(List.of(), felixStorageDirs(runtime));
    }

    @Test
    void timeoutStopsTheVmWithStatus124AndSaysSo() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: SKIPPED");
        KrunProcess.Result r = KrunProcess.run(null, 120, "run", "--timeout", "3", "--", "/bin/sh", "-c", "sleep 600");
        assertEquals(124, r.status(), r.toString());
        List<String> lines = r.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, lines.size(), r.toString());
        assertTrue(lines.get(0).startsWith("krun: ") && lines.get(0).contains("3"), r.toString());
    }

    @Test
    void helpDescribesEveryRunFlag() throws Exception {
        KrunProcess.Result r = KrunProcess.run(null, 60, "run", "--help");
        assertEquals(0, r.status(), r.toString());
        for (String flag : List.of("--cpus", "--mem", "--kernel", "--initrd", "--root", "--workdir", "--env",
                "--rlimit", "--hostname", "--timeout", "--kernel-log", "--kernel-arg")) {
            assertTrue(r.out().contains(flag), "help mentions " + flag + ": " + r);
        }
        KrunProcess.Result top = KrunProcess.run(null, 60, "--help");
        assertEquals(0, top.status(), top.toString());
        assertTrue(top.out().contains("--profile") && top.out().contains("--log-level") && top.out().contains("run"),
                top.toString());
    }
}
