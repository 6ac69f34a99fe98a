package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.krun.cli.internal.BadInput;

/**
 * Every row of launcher/cli's {@code bad-inputs.txt}, typed at the real {@code ./krun} of a checkout (a copy
 * whose kernel and rootfs steps print the build's): the row's status, one line on stderr in krun's words that
 * names the mistake, nothing on stdout, and nothing left behind: no process of the run, no framework storage
 * under TMPDIR, nothing new in krun's cache, no lock on the disk image. Each row's command, status and line go
 * to {@code target/bad-inputs-report.txt}.
 */
class KrunBadInputIT {

    @TempDir
    static Path dir;
    private static Path script;
    private static Path cache;
    private static Path tmp;
    private static Path image;
    private static List<String> cacheBefore;
    private static Map<String, String> places;
    private static ServerSocket busyTcp;
    private static DatagramSocket busyUdp;
    private static final AtomicInteger RUNS = new AtomicInteger();
    private static final List<String> REPORT = new ArrayList<>();

    @BeforeAll
    static void aCheckoutACacheAndThePlaces() throws Exception {
        Assumptions.assumeTrue(Runtime.version().feature() >= 25, "the tests run on Java 25");
        script = CheckoutCopy.withStubs(dir.resolve("checkout"), Path.of(KrunProcess.kernel()).getParent().toString(),
                KrunProcess.rootfs()).resolve("krun");
        cache = Files.createDirectories(dir.resolve("cache"));
        tmp = Files.createDirectories(dir.resolve("tmp"));
        Path empty = Files.createDirectories(dir.resolve("dir"));
        Path file = Files.writeString(dir.resolve("file.txt"), "not a kernel, not a directory\n");
        image = dir.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        busyTcp = new ServerSocket();
        busyTcp.bind(new InetSocketAddress(0));
        busyUdp = new DatagramSocket(new InetSocketAddress(0));
        places = Map.of("dir", empty.toString(), "file", file.toString(), "image", image.toString(),
                "nosuch", dir.resolve("no-such-path").toString(), "busyport", Integer.toString(busyTcp.getLocalPort()),
                "busyudp", Integer.toString(busyUdp.getLocalPort()));
        // The first run trains the AOT cache, as a user's first run does; what is in the cache then must stay.
        KrunProcess.Result first = krun(List.of("profiles"), "").result();
        assertEquals(0, first.status(), first.toString());
        cacheBefore = listing(cache);
    }

    @AfterAll
    static void writeTheReport() throws IOException {
        if (busyTcp != null) {
            busyTcp.close();
            busyUdp.close();
        }
        if (!REPORT.isEmpty()) {
            Path target = KrunProcess.jar().getParent();
            Files.write(target.resolve("bad-inputs-report.txt"), REPORT, StandardCharsets.UTF_8);
        }
    }

    static Stream<BadInput> everyRow() {
        return BadInput.all().stream();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("everyRow")
    void isOneLineWithItsStatusAndLeavesNothingBehind(BadInput row) throws Exception {
        BadInput b = row.with(places);
        Run run = krun(b.args(), b.redirect());
        KrunProcess.Result r = run.result();
        String report = b + " -> " + r.status() + "\n--- stdout\n" + r.out() + "--- stderr\n" + r.err();

        assertEquals(b.status(), r.status(), report);
        assertEquals("", r.out(), report);
        List<String> lines = r.err().lines().toList();
        if (b.mention().isEmpty()) {
            assertEquals(List.of(), lines, "stderr is closed: " + report);
        } else {
            assertEquals(1, lines.size(), "one line on stderr: " + report);
            assertTrue(lines.get(0).startsWith("krun: "), report);
            assertTrue(lines.get(0).contains(b.mention()), "mentions '" + b.mention() + "': " + report);
            assertFalse(lines.get(0).contains("Exception"), report);
            assertEquals(r.status() == 2, lines.get(0).endsWith("--help')"),
                    "a usage error, and only that, points to --help: " + report);
        }
        synchronized (REPORT) {
            REPORT.add(b.commandLine() + "\t" + r.status() + "\t" + (lines.isEmpty() ? "(no stderr)" : lines.get(0)));
        }

        assertEquals(List.of(), processesOf(run.mark()), "no process of the run is left: " + report);
        assertEquals(List.of(), leftInTmp(), "no framework storage or other file is left under TMPDIR: " + report);
        assertEquals(cacheBefore, listing(cache), "nothing was written into krun's cache: " + report);
        assertEquals(0, new ProcessBuilder("flock", "-n", "-x", image.toString(), "true").start().waitFor(),
                "the disk image is not locked: " + report);
    }

    /** Runs the checkout's {@code ./krun args REDIRECT} in a clean environment marked with the run's number. */
    private static Run krun(List<String> args, String redirect) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("/bin/sh", "-c", "exec \"$0\" \"$@\" " + redirect, script.toString()));
        cmd.addAll(args);
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile());
        Map<String, String> env = pb.environment();
        env.clear();
        env.put("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        env.put("USER", System.getProperty("user.name"));
        env.put("HOME", Files.createDirectories(dir.resolve("home")).toString());
        env.put("TMPDIR", tmp.toString());
        env.put("KRUN_CACHE", cache.toString());
        env.put("KRUN_JAVA_HOME", System.getProperty("java.home"));
        env.put("KRUN_BAD_INPUT_RUN", Integer.toString(RUNS.incrementAndGet()));
        return new Run(KrunProcess.run(pb, args, null, 120), "KRUN_BAD_INPUT_RUN=" + env.get("KRUN_BAD_INPUT_RUN"));
    }

    /** One run of krun and the environment entry that marks its processes. */
    private record Run(KrunProcess.Result result, String mark) {
    }

    /** Processes whose environment carries this run's mark. */
    private static List<String> processesOf(String mark) throws IOException {
        List<String> left = new ArrayList<>();
        try (Stream<Path> procs = Files.list(Path.of("/proc"))) {
            for (Path p : procs.filter(p -> p.getFileName().toString().matches("\\d+")).toList()) {
                try {
                    String environ = new String(Files.readAllBytes(p.resolve("environ")), StandardCharsets.ISO_8859_1);
                    if (List.of(environ.split("\0")).contains(mark)) {
                        left.add(p.getFileName() + " " + Files.readString(p.resolve("cmdline")).replace('\0', ' '));
                    }
                } catch (IOException e) {
                    // gone meanwhile, or not ours to read
                }
            }
        }
        return left;
    }

    /** What is under TMPDIR but krun's own (empty) storage folder. */
    private static List<String> leftInTmp() throws IOException {
        List<String> left = new ArrayList<>();
        try (Stream<Path> all = Files.walk(tmp)) {
            for (Path p : all.toList()) {
                if (!p.equals(tmp) && !(Files.isDirectory(p) && p.getParent().equals(tmp)
                        && p.getFileName().toString().startsWith("krun-"))) {
                    left.add(tmp.relativize(p).toString());
                }
            }
        }
        return left;
    }

    private static List<String> listing(Path root) throws IOException {
        try (Stream<Path> all = Files.walk(root)) {
            return all.map(p -> root.relativize(p) + (Files.isDirectory(p) ? "/" : " " + size(p))).sorted().toList();
        }
    }

    private static long size(Path p) {
        try {
            return Files.size(p);
        } catch (IOException e) {
            return -1;
        }
    }
}
