package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
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
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * The two {@code krun} scripts, the checkout's {@code ./krun} and the one {@code krun assemble} writes, called
 * as users call them: through a chain of symlinks from another folder, on machines whose Java is wherever its
 * installer put it. Each takes the first Java 25 or newer of KRUN_JAVA_HOME, JAVA_HOME, java on the PATH and
 * the usual install folders, and refuses anything else in one line. No guest boots: the JVM runs
 * {@code krun profiles}.
 *
 * <p>{@code ./krun} runs from a copy of the checkout whose set-up steps (packages, guest kernel and rootfs) are
 * stubs and whose launcher is the one this build packaged, already marked built: only the script's own logic
 * runs, and it never starts a Maven build of the checkout under test.
 */
class KrunScriptsIT {

    /** The script under test. */
    enum Script {
        CHECKOUT, ASSEMBLED
    }

    @TempDir
    static Path shared;

    @TempDir
    Path tmp;

    private static Path checkoutScript;
    private static Path assembledScript;
    private static Path jdk25;
    private static Path jdk17;
    private static Path bash;

    @BeforeAll
    static void layOutBothScripts() throws Exception {
        jdk25 = Path.of(System.getProperty("java.home"));
        Assumptions.assumeTrue(Runtime.version().feature() >= 25, "the tests run on Java 25");
        checkoutScript = CheckoutCopy.withStubs(shared.resolve("checkout"), shared.resolve("no-kernel").toString(),
                shared.resolve("no-rootfs").toString()).resolve("krun");

        Path dist = shared.resolve("dist");
        KrunProcess.Result a = KrunProcess.run(null, 120, "assemble", "--profile", "minimal", "--no-guest", "--out",
                dist.toString());
        assertEquals(0, a.status(), a.toString());
        assembledScript = dist.resolve("krun");

        Path debianJdk17 = Path.of("/usr/lib/jvm/java-17-openjdk-amd64");
        jdk17 = Files.isExecutable(debianJdk17.resolve("bin/java"))
                ? debianJdk17 : fakeJdk(shared.resolve("jdk17"), "17.0.15", null, null);
        bash = Files.isExecutable(Path.of("/usr/bin/bash")) ? Path.of("/usr/bin/bash") : Path.of("/bin/bash");
    }

    private static Path script(Script s) {
        return s == Script.CHECKOUT ? checkoutScript : assembledScript;
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void runsThroughAChainOfSymlinksOnThePathFromAnotherFolder(Script s) throws Exception {
        // ~/bin/krun -> (absolute) links/krun -> (relative) the script
        Path links = Files.createDirectories(tmp.resolve("links"));
        Files.createSymbolicLink(links.resolve("krun"), links.relativize(script(s)));
        Path bin = Files.createDirectories(tmp.resolve("bin"));
        Files.createSymbolicLink(bin.resolve("krun"), links.resolve("krun"));

        KrunProcess.Result r = runByName(Map.of("PATH", bin + ":/usr/bin:/bin", "KRUN_JAVA_HOME", jdk25.toString()),
                "profiles");
        assertEquals(0, r.status(), r.toString());
        assertTrue(r.out().contains("minimal"), "lists the profiles: " + r);
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void refusesAJava17InKrunJavaHomeInOneLine(Script s) throws Exception {
        // JAVA_HOME would do, but KRUN_JAVA_HOME is what the user asked for.
        KrunProcess.Result r = run(s, Map.of("PATH", "/usr/bin:/bin", "KRUN_JAVA_HOME", jdk17.toString(),
                "JAVA_HOME", jdk25.toString()), "profiles");
        assertOneLineError(r, "KRUN_JAVA_HOME=" + jdk17 + " is Java 17", "needs Java 25 or newer");
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void refusesAnOlderJavaHomeByTheVersionItPrints(Script s) throws Exception {
        // No release file here: the version comes from `java -version`.
        Path old = fakeJdk(tmp.resolve("old-jdk"), "17.0.99", null, null);
        KrunProcess.Result r = run(s, Map.of("PATH", "/usr/bin:/bin", "JAVA_HOME", old.toString()), "profiles");
        assertOneLineError(r, "JAVA_HOME=" + old + " is Java 17.0.99", "needs Java 25 or newer");
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void refusesAKrunJavaHomeWithoutJava(Script s) throws Exception {
        Path notJdk = Files.createDirectories(tmp.resolve("not-a-jdk"));
        KrunProcess.Result r = run(s, Map.of("PATH", "/usr/bin:/bin", "KRUN_JAVA_HOME", notJdk.toString()), "profiles");
        assertOneLineError(r, "KRUN_JAVA_HOME=" + notJdk + " is not a JDK", "needs Java 25 or newer");
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void krunJavaHomeComesBeforeAnOlderJavaHome(Script s) throws Exception {
        KrunProcess.Result r = run(s, Map.of("PATH", "/usr/bin:/bin", "KRUN_JAVA_HOME", jdk25.toString(),
                "JAVA_HOME", jdk17.toString()), "profiles");
        assertEquals(0, r.status(), r.toString());
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void skipsAnOlderJavaOnThePathForAJava25InAnInstallFolder(Script s) throws Exception {
        Path path17 = Files.createDirectories(tmp.resolve("path17"));
        Files.createSymbolicLink(path17.resolve("java"), jdk17.resolve("bin/java"));
        // Install folders tried in order: a Java 17 and a folder without java are passed over for a
        // "26-ea" (no release file: its version comes from `java -version`), which runs the real Java 25.
        Path jvms = Files.createDirectories(tmp.resolve("jvms"));
        Files.createSymbolicLink(jvms.resolve("a-jdk-17"), jdk17);
        Files.createDirectories(jvms.resolve("b-empty"));
        Path marker = tmp.resolve("jdk-26-ea-ran");
        fakeJdk(jvms.resolve("c-jdk-26-ea"), "26-ea", jdk25.resolve("bin/java"), marker);

        KrunProcess.Result r = run(s, Map.of("PATH", path17 + ":/usr/bin:/bin",
                "KRUN_JAVA_SEARCH_PATH", tmp.resolve("nothing") + "/*:" + jvms + "/*"), "profiles");
        assertEquals(0, r.status(), r.toString());
        assertFalse(r.err().contains("krun:"), "an older Java found by searching is passed over silently: " + r);
        assertTrue(Files.exists(marker), "ran on the Java 26-ea of the install folder: " + r);
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void saysInOneLineHowToPointKrunAtAJavaWhenThereIsNone(Script s) throws Exception {
        // A PATH without java (bash alone, for ./krun's #!/usr/bin/env bash), install folders with a Java 17.
        Path noJava = Files.createDirectories(tmp.resolve("no-java"));
        Files.createSymbolicLink(noJava.resolve("bash"), bash);
        Path jvms = Files.createDirectories(tmp.resolve("jvms"));
        Files.createSymbolicLink(jvms.resolve("jdk-17"), jdk17);
        KrunProcess.Result r = run(s, Map.of("PATH", noJava.toString(), "KRUN_JAVA_SEARCH_PATH", jvms + "/*"), "profiles");
        assertOneLineError(r, "no Java 25 or newer", "set KRUN_JAVA_HOME");
    }

    @ParameterizedTest
    @EnumSource(Script.class)
    void namesTheOlderJavaOnThePathWhenThereIsNoJava25(Script s) throws Exception {
        Path path17 = Files.createDirectories(tmp.resolve("path17"));
        Files.createSymbolicLink(path17.resolve("java"), jdk17.resolve("bin/java"));
        KrunProcess.Result r = run(s, Map.of("PATH", path17 + ":/usr/bin:/bin",
                "KRUN_JAVA_SEARCH_PATH", tmp.resolve("nothing") + "/*"), "profiles");
        assertOneLineError(r, "on the PATH (java there is 17", "set KRUN_JAVA_HOME");
    }

    @Test
    void versionStringsGiveTheirFeatureRelease() throws Exception {
        Path findJava = Path.of(System.getProperty("krun.checkout"), "scripts", "find-java.sh");
        List<String> versions = List.of("25", "25.0.1", "26-ea", "25+36", "1.8.0_392", "17.0.15", "", "abc");
        List<String> cmd = new ArrayList<>(List.of("/bin/sh", "-c",
                ". \"$0\"; for v; do krun_java_major_of \"$v\"; echo \"$v=$krun_java_major\"; done", findJava.toString()));
        cmd.addAll(versions);
        KrunProcess.Result r = KrunProcess.run(new ProcessBuilder(cmd), cmd, null, 60);
        assertEquals(0, r.status(), r.toString());
        assertEquals(List.of("25=25", "25.0.1=25", "26-ea=26", "25+36=25", "1.8.0_392=8", "17.0.15=17", "=", "abc="),
                r.out().lines().toList());
    }

    @Test
    void checkoutsSharingACacheKeepTheirOwnAotCaches() throws Exception {
        Path cache = Files.createDirectories(tmp.resolve("cache"));
        Path other = CheckoutCopy.withStubs(tmp.resolve("other checkout"), shared.resolve("no-kernel").toString(),
                shared.resolve("no-rootfs").toString()).resolve("krun");
        Files.createDirectories(cache.resolve("aot"));
        Files.writeString(cache.resolve("aot/krun-1700000000.aot"), "named by an older krun, by build alone");
        Map<String, String> env = Map.of("PATH", "/usr/bin:/bin", "KRUN_JAVA_HOME", jdk25.toString(),
                "KRUN_CACHE", cache.toString(), "KRUN_AOT", "1");

        assertEquals(0, runScript(checkoutScript, env, "profiles").status());
        List<String> first = aotFiles(cache);
        assertEquals(1, first.size(), "one cache for this checkout, the old-style one gone: " + first);
        assertEquals(0, runScript(other, env, "profiles").status());
        List<String> both = aotFiles(cache);
        assertEquals(2, both.size(), "the other checkout's sits beside it: " + both);
        assertTrue(both.containsAll(first), "and did not replace it: " + both);

        // A new build of the first checkout replaces its own cache, and only that.
        Path stamp = checkoutScript.resolveSibling("launcher/boot/target/krun-built.stamp");
        Files.setLastModifiedTime(stamp, java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() + 10_000));
        assertEquals(0, runScript(checkoutScript, env, "profiles").status());
        List<String> rebuilt = aotFiles(cache);
        assertEquals(2, rebuilt.size(), rebuilt.toString());
        assertFalse(rebuilt.containsAll(first), "the first checkout's old cache went: " + rebuilt);
        assertTrue(rebuilt.stream().anyMatch(f -> !first.contains(f) && both.contains(f)), "the other's stayed: " + rebuilt);
    }

    /**
     * {@code ./run-tests} against a Maven that fails a module and has failing tests in two others: every module
     * ran (--fail-at-end, test failures ignored by Maven and counted from this run's reports alone), and the
     * last line sums them up.
     */
    @Test
    void runTestsGoesOnPastFailuresAndEndsWithOneSummaryLine() throws Exception {
        Path copy = CheckoutCopy.withStubs(tmp.resolve("checkout"), shared.resolve("no-kernel").toString(),
                shared.resolve("no-rootfs").toString());
        Files.copy(CheckoutCopy.checkout().resolve("run-tests"), copy.resolve("run-tests"),
                java.nio.file.StandardCopyOption.COPY_ATTRIBUTES);
        Path old = Files.createDirectories(copy.resolve("old/target/surefire-reports")).resolve("TEST-Old.xml");
        Files.writeString(old, "<testsuite name=\"Old\" tests=\"100\" failures=\"100\" errors=\"0\" skipped=\"0\">\n");
        Files.setLastModifiedTime(old, java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() - 3_600_000));
        Path args = tmp.resolve("mvn-args");
        CheckoutCopy.executable(tmp.resolve("bin/mvn"), """
                echo "$@" > '%s'
                report() {
                    mkdir -p "$1/target/$2"
                    echo "<testsuite name=\\"$3\\" tests=\\"$4\\" failures=\\"$5\\" errors=\\"$6\\" skipped=\\"$7\\">" \\
                        > "$1/target/$2/TEST-$3.xml"
                }
                report a surefire-reports A 5 1 0 1
                report b failsafe-reports B 3 0 2 0
                report c surefire-reports C 4 0 0 0
                echo '[INFO] krun d ........................................... FAILURE [  1.000 s]'
                echo '[INFO] krun e ........................................... SKIPPED'
                exit 1""".formatted(args));
        Map<String, String> env = Map.of("PATH", tmp.resolve("bin") + ":/usr/bin:/bin", "KRUN_JAVA_HOME", jdk25.toString());

        KrunProcess.Result r = start(List.of(copy.resolve("run-tests").toString()), env, "run-tests");
        assertEquals(1, r.status(), r.toString());
        String mvn = Files.readString(args);
        assertTrue(mvn.contains("--fail-at-end") && mvn.contains("-Dmaven.test.failure.ignore=true"), mvn);
        List<String> err = r.err().lines().toList();
        String last = err.get(err.size() - 1);
        assertTrue(last.startsWith("[run-tests] tests: 12 run, 1 failures, 2 errors, 1 skipped; failing tests in: "),
                "this run's reports alone, summed: " + r);
        assertTrue(last.contains("a, b") || last.contains("b, a"), r.toString());
        assertTrue(last.endsWith("; modules not built: krun d (FAILURE), krun e (SKIPPED)"), r.toString());
    }

    private static List<String> aotFiles(Path cache) throws IOException {
        try (java.util.stream.Stream<Path> s = Files.list(cache.resolve("aot"))) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".aot")).sorted().toList();
        }
    }

    private KrunProcess.Result runScript(Path script, Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(script.toString()));
        cmd.addAll(List.of(args));
        KrunProcess.Result r = start(cmd, env, args);
        assertEquals("", r.err(), r.toString());
        return r;
    }

    /** Runs script {@code s} by its path, from a folder of its own, with nothing in the environment but {@code env}. */
    private KrunProcess.Result run(Script s, Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of(script(s).toString()));
        cmd.addAll(List.of(args));
        return start(cmd, env, args);
    }

    /** Runs {@code krun} as found on {@code env}'s PATH by a shell, from a folder of its own. */
    private KrunProcess.Result runByName(Map<String, String> env, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("/bin/sh", "-c", "exec krun \"$@\"", "sh"));
        cmd.addAll(List.of(args));
        return start(cmd, env, args);
    }

    private KrunProcess.Result start(List<String> cmd, Map<String, String> env, String... args) throws Exception {
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().clear();
        pb.environment().put("HOME", tmp.toString());
        pb.environment().put("KRUN_AOT", "0");
        pb.environment().putAll(env);
        pb.directory(Files.createDirectories(tmp.resolve("elsewhere")).toFile());
        return KrunProcess.run(pb, List.of(args), null, 120);
    }

    private static void assertOneLineError(KrunProcess.Result r, String... mentions) {
        assertEquals(1, r.status(), r.toString());
        assertEquals("", r.out(), r.toString());
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), "exactly one line on stderr: " + r);
        assertTrue(lines.get(0).startsWith("krun: "), r.toString());
        for (String m : mentions) {
            assertTrue(lines.get(0).contains(m), "mentions '" + m + "': " + r);
        }
    }

    /**
     * A JDK folder without a release file whose bin/java prints a version banner for {@code -version}; for
     * anything else it touches {@code marker} and runs {@code realJava}, or fails when there is none.
     */
    private static Path fakeJdk(Path home, String version, Path realJava, Path marker) throws IOException {
        String run = realJava == null ? "exit 1"
                : (marker == null ? "" : ": > '" + marker + "'\n") + "exec '" + realJava + "' \"$@\"";
        CheckoutCopy.executable(home.resolve("bin/java"), """
                if [ "$1" = -version ]; then
                    echo 'openjdk version "%s" 2025-09-16' >&2
                    echo 'OpenJDK Runtime Environment (build %s)' >&2
                    exit 0
                fi
                %s""".formatted(version, version, run));
        return home;
    }
}
