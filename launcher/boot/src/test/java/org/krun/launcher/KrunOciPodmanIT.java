package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * {@code krun oci} under a real container engine: Debian's podman (4.3) pointed at a krun-oci wrapper that runs
 * the packaged launcher, no registry (the image is krun's busybox rootfs, {@code podman import}ed). Three
 * containers, the first two booting side by side: a foreground one (output, exit status, krun's kernel, podman's
 * rlimits, a shared directory, a read-only root), a detached one as another user (logs, a guest server reached
 * through -p, stop passing SIGTERM to the guest command, its exit status), and one with a terminal whose VMM process is killed with -9. Each leaves nothing in the state directory. Without
 * /dev/kvm or podman the test is SKIPPED, loudly. Podman runs with its defaults as root (cgroupfs, netavark,
 * overlay); nothing else is needed.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KrunOciPodmanIT {
    private static final long BOOT_TIMEOUT_SECONDS = 600;
    private static final String IMAGE = "localhost/krun-oci-it:busybox";
    /** One podman exec: two JVM starts (the runtime's exec and its relay), minutes on a busy 2-core host. */
    private static final long EXEC_TIMEOUT_SECONDS = 300;

    private Path dir;
    private Path wrapper;
    private Path state;
    private Path share;
    private ExecutorService lanes;
    private Future<KrunProcess.Result> foreground;
    private Future<Detached> detached;
    private long started;

    /** What the detached container showed: its logs while running, krun oci state then, stop, exit code, logs. */
    record Detached(String runningLogs, String served, KrunProcess.Result state, Execs execs, KrunProcess.Result stop,
            String exitCode, String logs, List<String> relaysLeft) {
    }

    /**
     * What podman exec did in the detached container: a command's output and status, stdin through -i, two
     * sessions at once (each waits for the other to have started), one with a terminal (-t), and one still
     * running (-d) when the container stopped.
     */
    record Execs(KrunProcess.Result status, KrunProcess.Result stdin, KrunProcess.Result first, KrunProcess.Result second,
            KrunProcess.Result tty, KrunProcess.Result detached) {
    }

    @BeforeAll
    void startContainers() throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: podman tests SKIPPED");
        boolean podman = Stream.of(System.getenv("PATH").split(":")).anyMatch(p -> Files.isExecutable(Path.of(p, "podman")));
        if (!podman) {
            System.err.println("*** podman is not installed (scripts/host-setup.sh installs it): KrunOciPodmanIT is SKIPPED ***");
        }
        Assumptions.assumeTrue(podman, "podman is missing: SKIPPED");
        started = System.nanoTime();
        dir = Files.createTempDirectory("krun-oci-it");
        state = Files.createDirectories(dir.resolve("state"));
        share = Files.createDirectories(dir.resolve("share"));
        Files.writeString(share.resolve("in"), "from the host\n");
        // The runtime executable podman is pointed at: krun-oci's equivalent for the launcher under test.
        StringBuilder cmd = new StringBuilder();
        for (String a : KrunProcess.command(List.of("oci", "--root", state.toString()))) {
            cmd.append(" '").append(a.replace("'", "'\\''")).append('\'');
        }
        wrapper = dir.resolve("krun-oci");
        Files.writeString(wrapper, "#!/bin/sh\nexec" + cmd + " \"$@\"\n");
        Files.setPosixFilePermissions(wrapper, PosixFilePermissions.fromString("rwxr-xr-x"));

        cleanUp();
        KrunProcess.Result imported = sh("tar -C '" + KrunProcess.rootfs() + "' -c . | podman import - " + IMAGE, 120);
        assertEquals(0, imported.status(), imported.toString());

        lanes = Executors.newFixedThreadPool(2);
        foreground = lanes.submit(() -> timed("foreground container", () -> podman(BOOT_TIMEOUT_SECONDS, "run", "--rm", "--name", "krun-oci-it-fg",
                "--read-only", "-v", share + ":/data", IMAGE, "sh", "-c",
                "echo hi; uname -r; id -u; ulimit -n; hostname; cat /data/in; echo written > /data/out;"
                        + " touch /x 2>/dev/null || echo read-only; exit 3")));
        detached = lanes.submit(() -> timed("detached container", this::detached));
    }

    @AfterAll
    void tearDown() throws Exception {
        if (lanes != null) {
            lanes.shutdownNow();
            lanes.awaitTermination(60, TimeUnit.SECONDS);
        }
        if (dir != null) {
            cleanUp();
            sh("podman rmi -f " + IMAGE, 60);
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
            System.err.printf("KrunOciPodmanIT: %.1f s%n", (System.nanoTime() - started) / 1e9);
        }
    }

    /** Runs {@code body}, saying on stderr how long it took (this test's figures). */
    private <T> T timed(String what, java.util.concurrent.Callable<T> body) throws Exception {
        long t0 = System.nanoTime();
        try {
            return body.call();
        } finally {
            System.err.printf("KrunOciPodmanIT: %s: %.1f s%n", what, (System.nanoTime() - t0) / 1e9);
        }
    }

    private void cleanUp() throws Exception {
        sh("podman rm -f -t 0 krun-oci-it-fg krun-oci-it-bg krun-oci-it-k9 >/dev/null 2>&1; true", 120);
    }

    private Detached detached() throws Exception {
        int port;
        try (java.net.ServerSocket probe = new java.net.ServerSocket(0)) {
            port = probe.getLocalPort();
        }
        // -p: podman forwards the host port to the container's address; the guest's httpd listens through TSI there.
        KrunProcess.Result run = podman(120, "run", "-d", "--name", "krun-oci-it-bg", "--user", "1000:100",
                "-p", port + ":8080", "-v", share + ":/www:ro", IMAGE, "sh", "-c",
                "httpd -p 8080 -h /www; echo started as $(id -u):$(id -g); trap 'echo got TERM; exit 7' TERM;"
                        + " while true; do sleep 1; done");
        assertEquals(0, run.status(), run.toString());
        String id = run.out().strip();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(BOOT_TIMEOUT_SECONDS);
        String logs = "";
        while (System.nanoTime() < deadline && !logs.contains("started")) {
            Thread.sleep(1000);
            logs = podman(60, "logs", "krun-oci-it-bg").out();
        }
        System.err.printf("KrunOciPodmanIT: detached container: running, logs seen%n");
        String served = "";
        for (int i = 0; i < 30 && !served.contains("from the host"); i++) {
            served = fetch(port, "/in");
        }
        KrunProcess.Result st = runtime(60, "state", id);
        Execs execs = timed("podman exec", this::execs);
        KrunProcess.Result stop = timed("podman stop", () -> podman(180, "stop", "-t", "60", "krun-oci-it-bg"));
        String code = podman(60, "inspect", "--format", "{{.State.ExitCode}}", "krun-oci-it-bg").out().strip();
        String after = podman(60, "logs", "krun-oci-it-bg").out();
        podman(60, "rm", "krun-oci-it-bg");
        return new Detached(logs, served, st, execs, stop, code, after, relaysLeft());
    }

    private Execs execs() throws Exception {
        KrunProcess.Result status = podman(BOOT_TIMEOUT_SECONDS, "exec", "krun-oci-it-bg", "sh", "-c", "echo hi; id -u; exit 5");
        KrunProcess.Result stdin = podmanWithInput("piped through\n".getBytes(StandardCharsets.UTF_8), EXEC_TIMEOUT_SECONDS, "exec", "-i",
                "krun-oci-it-bg", "sh", "-c", "cat; echo done");
        Future<KrunProcess.Result> first = lanes.submit(() -> podman(EXEC_TIMEOUT_SECONDS, "exec", "krun-oci-it-bg", "sh", "-c",
                "touch /tmp/first; while [ ! -e /tmp/second ]; do sleep 0.1; done; echo first"));
        KrunProcess.Result second = podman(EXEC_TIMEOUT_SECONDS, "exec", "krun-oci-it-bg", "sh", "-c",
                "while [ ! -e /tmp/first ]; do sleep 0.1; done; touch /tmp/second; echo second");
        // -t: a pty whose master end goes to conmon over its console socket; the guest's own pty for the process
        KrunProcess.Result tty = podman(EXEC_TIMEOUT_SECONDS, "exec", "-t", "krun-oci-it-bg", "sh", "-c", "tty; exit 4");
        KrunProcess.Result detachedExec = podman(EXEC_TIMEOUT_SECONDS, "exec", "-d", "krun-oci-it-bg", "sleep", "1000");
        return new Execs(status, stdin, first.get(EXEC_TIMEOUT_SECONDS + 60, TimeUnit.SECONDS), second, tty, detachedExec);
    }

    /** krun exec relay processes of this test's state directory still running. */
    private List<String> relaysLeft() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        List<String> left;
        do {
            left = ProcessHandle.allProcesses().filter(ProcessHandle::isAlive)
                    .map(p -> p.info().commandLine().orElse(""))
                    .filter(c -> c.contains("exec-relay") && c.contains(state.toString())).toList();
            if (!left.isEmpty()) {
                Thread.sleep(500);
            }
        } while (!left.isEmpty() && System.nanoTime() < deadline);
        return left;
    }

    /** An HTTP GET of {@code path} on the host's 127.0.0.1:{@code port}: the body, or what went wrong. */
    private static String fetch(int port, String path) throws InterruptedException {
        try {
            java.net.http.HttpClient client = java.net.http.HttpClient.newBuilder()
                    .version(java.net.http.HttpClient.Version.HTTP_1_1).connectTimeout(java.time.Duration.ofSeconds(5)).build();
            java.net.http.HttpRequest request = java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://127.0.0.1:" + port + path)).timeout(java.time.Duration.ofSeconds(10)).build();
            return client.send(request, java.net.http.HttpResponse.BodyHandlers.ofString()).body();
        } catch (IOException e) {
            Thread.sleep(1000);
            return e.toString();
        }
    }

    private KrunProcess.Result podman(long timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("podman", "--runtime", wrapper.toString()));
        cmd.addAll(List.of(args));
        return KrunProcess.run(new ProcessBuilder(cmd), cmd, null, timeout);
    }

    private KrunProcess.Result podmanWithInput(byte[] stdin, long timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("podman", "--runtime", wrapper.toString()));
        cmd.addAll(List.of(args));
        return KrunProcess.run(new ProcessBuilder(cmd), cmd, stdin, timeout);
    }

    private KrunProcess.Result runtime(long timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(wrapper.toString()));
        cmd.addAll(List.of(args));
        return KrunProcess.run(new ProcessBuilder(cmd), cmd, null, timeout);
    }

    private static KrunProcess.Result sh(String script, long timeout) throws IOException, InterruptedException {
        return KrunProcess.run(new ProcessBuilder("sh", "-c", script), List.of("sh", "-c", script), null, timeout);
    }

    private List<String> stateLeft() throws IOException {
        try (Stream<Path> s = Files.list(state)) {
            return s.map(p -> p.getFileName().toString()).toList();
        }
    }

    /** The last line of a command's error output: its one-line error (the JVM may say things before it). */
    private static String lastLine(String err) {
        List<String> lines = err.strip().lines().toList();
        return lines.isEmpty() ? "" : lines.get(lines.size() - 1).replaceFirst("^krun: ", "");
    }

    /** "Linux version X" in krun's kernel image: what uname -r says in its guests. */
    private static String kernelRelease() throws IOException {
        String image = new String(Files.readAllBytes(Path.of(KrunProcess.kernel())), StandardCharsets.ISO_8859_1);
        Matcher m = Pattern.compile("Linux version (\\S+)").matcher(image);
        assertTrue(m.find(), "no version string in " + KrunProcess.kernel());
        return m.group(1);
    }

    @Test
    void aForegroundContainerPrintsExitsWithItsStatusAndSharesADirectory() throws Exception {
        KrunProcess.Result r = foreground.get();
        assertEquals(3, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        assertEquals("hi", lines.get(0), r.toString());
        assertEquals(kernelRelease(), lines.get(1), "uname -r in the container is krun's kernel: " + r);
        assertEquals("0", lines.get(2), r.toString());
        assertEquals("1048576", lines.get(3), "podman's RLIMIT_NOFILE, set in the guest: " + r);
        assertFalse(lines.get(4).isBlank(), r.toString());
        assertEquals("from the host", lines.get(5), r.toString());
        assertEquals("written\n", Files.readString(share.resolve("out")));
        assertEquals("read-only", lines.get(6), "--read-only: the root cannot be written: " + r);
        assertTrue(!r.err().contains("krun:"), "no note in the container's output: " + r);
        assertEquals(List.of(), stateLeftOnceBothBooted());
    }

    @Test
    void aDetachedContainerLogsAndStopsOnTheSignalItTraps() throws Exception {
        Detached d = detached.get();
        assertTrue(d.runningLogs().contains("started as 1000:100"), "--user: " + d);
        assertEquals("from the host\n", d.served(), "-p: the guest's httpd answers on the published host port: " + d);
        assertEquals(0, d.state().status(), d.state().toString());
        assertTrue(d.state().out().contains("\"status\":\"running\""), d.state().toString());
        assertEquals(0, d.stop().status(), d.stop().toString());
        assertEquals("7", d.exitCode(), "the guest's trap ran on SIGTERM: " + d);
        assertTrue(d.logs().contains("got TERM"), d.toString());
        assertEquals(List.of(), d.relaysLeft(), "the exec relays ended with the container");
        assertEquals(List.of(), stateLeftOnceBothBooted());
    }

    @Test
    void podmanExecRunsMoreProcessesInTheRunningContainer() throws Exception {
        Execs e = detached.get().execs();
        assertEquals(5, e.status().status(), "the exec'd command's status: " + e.status());
        assertEquals("hi\n1000\n", e.status().out(), "its output, as the container's user: " + e.status());
        assertEquals(0, e.stdin().status(), e.stdin().toString());
        assertEquals("piped through\ndone\n", e.stdin().out(), "-i: stdin reaches it, and its end: " + e.stdin());
        assertEquals(0, e.first().status(), e.first().toString());
        assertEquals("first\n", e.first().out(), e.first().toString());
        assertEquals(0, e.second().status(), e.second().toString());
        assertEquals("second\n", e.second().out(), "an exec while another runs: " + e.second());
        assertEquals(4, e.tty().status(), "-t: " + e.tty());
        assertTrue(e.tty().out().startsWith("/dev/pts/"), "-t: the process has a terminal: " + e.tty());
        assertEquals(0, e.detached().status(), "podman exec -d: " + e.detached());
    }

    /** The state directory once both booting containers are done (they share it). */
    private List<String> stateLeftOnceBothBooted() throws Exception {
        foreground.get();
        detached.get();
        return stateLeft();
    }

    @Test
    void killingTheVmmProcessStopsTheContainerAndDeleteLeavesNothing() throws Exception {
        foreground.get();
        detached.get(); // one boot at a time beside the others
        // With a terminal (-t): the pty's master end goes to conmon over its console socket.
        KrunProcess.Result run = podman(120, "run", "-d", "-t", "--name", "krun-oci-it-k9", IMAGE, "sleep", "1000");
        assertEquals(0, run.status(), run.toString());
        String id = run.out().strip();
        String pid = podman(60, "inspect", "--format", "{{.State.Pid}}", "krun-oci-it-k9").out().strip();
        assertTrue(Long.parseLong(pid) > 0, pid);
        assertTrue(Files.exists(state.resolve(id).resolve("ctl.sock")));
        assertEquals(0, sh("kill -9 " + pid, 30).status());
        String status = "";
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline && !status.startsWith("exited")) {
            Thread.sleep(500);
            status = podman(60, "inspect", "--format", "{{.State.Status}} {{.State.ExitCode}}", "krun-oci-it-k9").out().strip();
        }
        assertEquals("exited 137", status);
        // stopped, or deleted already: podman's clean-up after conmon saw the exit deletes the container
        KrunProcess.Result st = runtime(60, "state", id);
        assertTrue(st.out().contains("\"status\":\"stopped\"") || st.err().contains("does not exist"), st.toString());
        KrunProcess.Result rm = podman(60, "rm", "krun-oci-it-k9");
        assertEquals(0, rm.status(), rm.toString());
        assertFalse(Files.exists(state.resolve(id)), "delete after kill -9 leaves nothing");
        try (Stream<Path> hierarchies = Files.list(Path.of("/sys/fs/cgroup"))) {
            List<Path> left = hierarchies.map(h -> h.resolve("libpod_parent").resolve("libpod-" + id)).filter(Files::exists).toList();
            assertEquals(List.of(), left, "the container's cgroups (podman's cgroupfs paths) are gone");
        }
        assertFalse(Files.exists(Path.of("/proc", pid)) && Files.readString(Path.of("/proc", pid, "cmdline")).contains("krun-launcher"));
    }

    @Test
    void createStateKillDeleteWithoutAnEngine() throws Exception {
        Path bundle = Files.createDirectories(dir.resolve("bundle"));
        Files.writeString(bundle.resolve("config.json"), """
                {"ociVersion":"1.0.2","process":{"args":["/bin/true"],"cwd":"/"},"root":{"path":"%s"},
                 "annotations":{"a":"b"}}
                """.formatted(KrunProcess.rootfs()));
        Path pidFile = dir.resolve("pid");
        // The VMM process keeps create's standard streams (the container's): they go to a file, not to a pipe
        // that would stay open after create returned.
        Path out = dir.resolve("c1.out");
        KrunProcess.Result create = sh("'" + wrapper + "' create --bundle '" + bundle + "' --pid-file '" + pidFile + "' c1 >'"
                + out + "' 2>&1", 120);
        assertEquals(0, create.status(), create + Files.readString(out));
        long pid = Long.parseLong(Files.readString(pidFile).strip());
        KrunProcess.Result st = runtime(60, "state", "c1");
        assertTrue(st.out().contains("\"status\":\"created\"") && st.out().contains("\"pid\":" + pid)
                && st.out().contains("\"bundle\":\"" + bundle + "\"") && st.out().contains("\"annotations\":{\"a\":\"b\"}"), st.toString());
        KrunProcess.Result again = runtime(60, "create", "--bundle", bundle.toString(), "c1");
        assertEquals(1, again.status());
        assertTrue(again.err().contains("already exists"), again.toString());
        KrunProcess.Result execCreated = runtime(60, "exec", "c1", "/bin/true");
        assertEquals(1, execCreated.status(), execCreated.toString());
        assertEquals("container c1 is created, not running: it cannot exec", lastLine(execCreated.err()), execCreated.toString());
        KrunProcess.Result notStopped = runtime(60, "kill", "c1", "KILL");
        assertEquals(0, notStopped.status(), notStopped.toString());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline && Files.exists(Path.of("/proc", Long.toString(pid)))) {
            Thread.sleep(100);
        }
        assertTrue(runtime(60, "state", "c1").out().contains("\"status\":\"stopped\""));
        KrunProcess.Result execStopped = runtime(60, "exec", "c1", "/bin/true");
        assertEquals(1, execStopped.status(), execStopped.toString());
        assertEquals("container c1 is stopped, not running: it cannot exec", lastLine(execStopped.err()), execStopped.toString());
        assertEquals(0, runtime(60, "delete", "c1").status());
        KrunProcess.Result gone = runtime(60, "state", "c1");
        assertEquals(1, gone.status());
        assertTrue(gone.err().contains("does not exist"), gone.toString());
        Files.writeString(bundle.resolve("config.json"), "{\"process\":{\"args\":[\"/bin/true\"]},\"root\":{\"path\":\"/no/such/root\"}}");
        KrunProcess.Result bad = runtime(60, "create", "--bundle", bundle.toString(), "c2");
        assertEquals(1, bad.status());
        assertTrue(bad.err().contains("/no/such/root"), bad.toString());
        assertFalse(Files.exists(state.resolve("c1")) || Files.exists(state.resolve("c2")));
    }
}
