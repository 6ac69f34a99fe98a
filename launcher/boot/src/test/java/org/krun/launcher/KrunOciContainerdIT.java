package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import com.sun.net.httpserver.HttpServer;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

/**
 * {@code krun oci} under containerd: Debian's containerd (1.6) and its runc v2 shim pointed at a krun-oci wrapper
 * of the launcher under test ({@code ctr run --runc-binary}), no registry (the image is krun's busybox rootfs
 * laid out as an OCI image and {@code ctr image import}ed). The test starts a containerd of its own (root,
 * state, socket and config in a temporary directory, no CRI plugin) and stops it after. Two containers boot
 * side by side: a foreground one ({@code --rm}: output, krun's kernel, its status as ctr's, a network namespace
 * of its own: the host's loopback server is out of reach) and a detached one with {@code --net-host} (the host's
 * server reached through TSI, {@code ctr task ps}, {@code ctr task pause} and {@code resume}, {@code ctr task kill} passing SIGTERM to the guest's trap, the
 * exit status {@code ctr task delete} reports); then one with a terminal ({@code -t}: the shim's console socket)
 * whose VMM process is killed with -9. Each leaves nothing behind: runtime state, containerd's task
 * directory, shims, VMM processes, mounts. Without /dev/kvm, containerd or root the test is SKIPPED, loudly.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KrunOciContainerdIT {
    private static final long BOOT_TIMEOUT_SECONDS = 600;
    private static final String IMAGE = "localhost/krun-oci-it:busybox";
    private static final String FG = "krun-ctr-fg";
    private static final String BG = "krun-ctr-bg";
    private static final String K9 = "krun-ctr-k9";

    private Path dir;
    private Path socket;
    private Path runcRoot;
    private Path wrapper;
    private Process containerd;
    private HttpServer server;
    private ExecutorService lanes;
    private Future<KrunProcess.Result> foreground;
    private Future<Detached> detached;
    private long started;

    /** What the detached container showed: its output while running, ps, runtime state, kill, status, output. */
    record Detached(String runningLog, KrunProcess.Result ps, KrunProcess.Result state, KrunProcess.Result exec,
            Paused paused, KrunProcess.Result kill, String taskList, KrunProcess.Result delete, String log) {
    }

    /** ctr task pause: its result, the task list and runtime state then, the log's growth paused and resumed. */
    record Paused(KrunProcess.Result pause, String taskList, KrunProcess.Result state, long grewWhilePaused,
            KrunProcess.Result resume, long grewOnceResumed) {
    }

    @BeforeAll
    void startContainers() throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: containerd tests SKIPPED");
        boolean installed = onPath("containerd") && onPath("ctr") && onPath("containerd-shim-runc-v2");
        if (!installed) {
            System.err.println("*** containerd is not installed (scripts/host-setup.sh installs it): KrunOciContainerdIT is SKIPPED ***");
        }
        Assumptions.assumeTrue(installed, "containerd is missing: SKIPPED");
        boolean root = "root".equals(System.getProperty("user.name"));
        if (!root) {
            System.err.println("*** containerd needs root: KrunOciContainerdIT is SKIPPED ***");
        }
        Assumptions.assumeTrue(root, "not root: SKIPPED");
        started = System.nanoTime();
        dir = Files.createTempDirectory("krun-ctr-it");
        runcRoot = Files.createDirectories(dir.resolve("runc"));
        socket = dir.resolve("containerd.sock");
        Files.writeString(dir.resolve("config.toml"), """
                version = 2
                root = "%s"
                state = "%s"
                disabled_plugins = ["io.containerd.grpc.v1.cri"]
                [grpc]
                  address = "%s"
                [ttrpc]
                  address = "%s.ttrpc"
                """.formatted(dir.resolve("root"), dir.resolve("state"), socket, socket));
        containerd = new ProcessBuilder("containerd", "--config", dir.resolve("config.toml").toString())
                .redirectErrorStream(true).redirectOutput(dir.resolve("containerd.log").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (!(Files.exists(socket) && ctr(30, "version").status() == 0)) {
            assertTrue(containerd.isAlive(), "containerd ended: " + Files.readString(dir.resolve("containerd.log")));
            assertTrue(System.nanoTime() < deadline, "containerd did not answer within 60 s");
            Thread.sleep(200);
        }
        // The runtime binary the shim is pointed at: krun-oci's equivalent for the launcher under test. The shim
        // gives it runc's global options (--root, --log, --log-format json).
        StringBuilder cmd = new StringBuilder();
        for (String a : KrunProcess.command(List.of("oci"))) {
            cmd.append(" '").append(a.replace("'", "'\\''")).append('\'');
        }
        wrapper = dir.resolve("krun-oci");
        Files.writeString(wrapper, "#!/bin/sh\nexec" + cmd + " \"$@\"\n");
        Files.setPosixFilePermissions(wrapper, PosixFilePermissions.fromString("rwxr-xr-x"));

        Path image = ociImage(Path.of(KrunProcess.rootfs()), dir.resolve("image"));
        KrunProcess.Result imported = ctr(120, "image", "import", image.toString());
        assertEquals(0, imported.status(), imported.toString());

        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", ex -> {
            byte[] body = "from the host\n".getBytes(StandardCharsets.UTF_8);
            ex.sendResponseHeaders(200, body.length);
            try (var out = ex.getResponseBody()) {
                out.write(body);
            }
        });
        server.start();
        // 192.0.2.1 is the VMM's loopback as TSI shows it to the guest (host.krun.internal): the host's loopback
        // with --net-host, the container's own namespace's otherwise (where nothing listens).
        String url = "http://192.0.2.1:" + server.getAddress().getPort() + "/";

        lanes = Executors.newFixedThreadPool(2);
        foreground = lanes.submit(() -> timed("foreground container", () -> ctr(BOOT_TIMEOUT_SECONDS, "run", "--rm",
                "--runc-binary", wrapper.toString(), "--runc-root", runcRoot.toString(), IMAGE, FG, "sh", "-c",
                "echo hi; uname -r; wget -q -O - " + url + " 2>/dev/null || echo isolated; exit 3")));
        detached = lanes.submit(() -> timed("detached container", () -> detached(url)));
    }

    @AfterAll
    void tearDown() throws Exception {
        if (lanes != null) {
            lanes.shutdownNow();
            lanes.awaitTermination(60, TimeUnit.SECONDS);
        }
        if (server != null) {
            server.stop(0);
        }
        if (containerd != null) {
            for (String id : List.of(FG, BG, K9)) {
                ctr(60, "task", "kill", "-s", "KILL", id);
                ctr(60, "task", "delete", "--force", id);
                ctr(60, "container", "delete", id);
            }
            ctr(60, "image", "rm", IMAGE);
            containerd.destroy();
            if (!containerd.waitFor(30, TimeUnit.SECONDS)) {
                containerd.destroyForcibly().waitFor();
            }
            // Shims outlive their containerd: any left of this test's (they name its socket) go too.
            for (ProcessHandle shim : processesNaming(socket.toString())) {
                System.err.println("KrunOciContainerdIT: a shim was left: " + shim.info().commandLine().orElse(""));
                shim.destroyForcibly();
            }
        }
        if (dir != null) {
            for (String mount : mountsUnder(dir)) {
                System.err.println("KrunOciContainerdIT: unmounting what was left: " + mount);
                sh("umount -l '" + mount + "'", 30);
            }
            try (Stream<Path> s = Files.walk(dir)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
            System.err.printf("KrunOciContainerdIT: %.1f s%n", (System.nanoTime() - started) / 1e9);
        }
    }

    private Detached detached(String url) throws Exception {
        Path log = dir.resolve("bg.log");
        KrunProcess.Result run = ctr(120, "run", "-d", "--net-host", "--log-uri", "file://" + log,
                "--runc-binary", wrapper.toString(), "--runc-root", runcRoot.toString(), IMAGE, BG, "sh", "-c",
                "trap 'echo got TERM; exit 7' TERM; wget -q -O - " + url + "; echo started; while true; do echo tick; sleep 1; done");
        assertEquals(0, run.status(), run.toString());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(BOOT_TIMEOUT_SECONDS);
        String running = "";
        while (System.nanoTime() < deadline && !running.contains("started")) {
            Thread.sleep(1000);
            running = Files.exists(log) ? Files.readString(log) : "";
        }
        KrunProcess.Result ps = ctr(60, "task", "ps", BG);
        KrunProcess.Result state = runtime(60, "--root", runcRoot.resolve("default").toString(), "state", BG);
        // the shim runs krun-oci exec --process --detach --pid-file and waits for the relay process it names
        KrunProcess.Result exec = timed("ctr task exec", () -> ctr(BOOT_TIMEOUT_SECONDS, "task", "exec", "--exec-id", "e1", BG,
                "sh", "-c", "echo hi from exec; exit 5"));
        Paused paused = timed("ctr task pause and resume", () -> pauseAndResume(log));
        KrunProcess.Result kill = timed("ctr task kill", () -> ctr(60, "task", "kill", BG));
        String tasks = "";
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(180);
        while (System.nanoTime() < deadline && !tasks.contains("STOPPED")) {
            Thread.sleep(500);
            tasks = ctr(60, "task", "ls").out();
        }
        KrunProcess.Result delete = ctr(60, "task", "delete", BG);
        ctr(60, "container", "delete", BG);
        return new Detached(running, ps, state, exec, paused, kill, tasks, delete, Files.readString(log));
    }

    /** Pauses the detached container: its ticks stop for 10 s; resumes it: they go on (within BOOT_TIMEOUT_SECONDS). */
    private Paused pauseAndResume(Path log) throws Exception {
        KrunProcess.Result pause = ctr(60, "task", "pause", BG);
        String tasks = ctr(60, "task", "ls").out();
        KrunProcess.Result state = runtime(60, "--root", runcRoot.resolve("default").toString(), "state", BG);
        Thread.sleep(1000); // output written before the pause reaches the log through the shim
        long before = Files.size(log);
        Thread.sleep(10_000);
        long grewWhilePaused = Files.size(log) - before;
        KrunProcess.Result resume = ctr(60, "task", "resume", BG);
        long resumed = Files.size(log);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(BOOT_TIMEOUT_SECONDS);
        while (System.nanoTime() < deadline && Files.size(log) == resumed) {
            Thread.sleep(500);
        }
        return new Paused(pause, tasks, state, grewWhilePaused, resume, Files.size(log) - resumed);
    }

    @Test
    void aForegroundContainerPrintsExitsWithItsStatusInANetworkOfItsOwn() throws Exception {
        KrunProcess.Result r = foreground.get();
        assertEquals(3, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        assertEquals("hi", lines.get(0), r.toString());
        assertEquals(kernelRelease(), lines.get(1), "uname -r in the container is krun's kernel: " + r);
        assertEquals("isolated", lines.get(2), "without --net-host the container has a network namespace of its own: " + r);
        assertEquals(3, lines.size(), r.toString());
        assertNothingLeft(FG);
    }

    @Test
    void ctrTaskExecRunsAnotherProcessInTheRunningContainer() throws Exception {
        KrunProcess.Result e = detached.get().exec();
        assertEquals(5, e.status(), "the exec'd command's status is ctr's: " + e);
        assertEquals("hi from exec\n", e.out(), e.toString());
        assertEquals(List.of(), processesNaming("exec-relay " + BG).stream().map(p -> p.info().commandLine().orElse("")).toList(),
                "the exec relay ended with its process");
    }

    @Test
    void aDetachedContainerIsListedKilledWithTermAndDeleted() throws Exception {
        Detached d = detached.get();
        assertTrue(d.runningLog().contains("from the host\nstarted"), "--net-host: the host's loopback server through TSI: " + d);
        assertEquals(0, d.ps().status(), d.ps().toString());
        assertEquals(2, d.ps().out().lines().count(), "ctr task ps: the VMM process: " + d.ps());
        assertEquals(0, d.state().status(), d.state().toString());
        assertTrue(d.state().out().contains("\"status\":\"running\""), d.state().toString());
        Paused p = d.paused();
        assertEquals(0, p.pause().status(), p.pause().toString());
        assertTrue(p.taskList().lines().anyMatch(l -> l.startsWith(BG) && l.contains("PAUSED")), p.taskList());
        assertTrue(p.state().out().contains("\"status\":\"paused\""), p.state().toString());
        assertEquals(0, p.grewWhilePaused(), "a paused VM's command prints nothing: " + p);
        assertEquals(0, p.resume().status(), p.resume().toString());
        assertTrue(p.grewOnceResumed() > 0, "resumed, the command ticks again: " + p);
        assertEquals(0, d.kill().status(), d.kill().toString());
        assertTrue(d.taskList().contains(BG) && d.taskList().contains("STOPPED"), d.taskList());
        assertEquals(0, d.delete().status(), d.delete().toString());
        assertTrue(d.delete().err().contains("exit code 7"), "the guest's trap ran on SIGTERM and its status is the task's: " + d.delete());
        assertTrue(d.log().contains("got TERM"), d.log());
        assertNothingLeft(BG);
    }

    @Test
    void killingTheVmmProcessOfATerminalContainerStopsItAndDeleteLeavesNothing() throws Exception {
        foreground.get();
        detached.get(); // one boot at a time beside the others
        // -t: the shim hands krun oci create a console socket; ctr itself wants a terminal, which script(1) gives it.
        String run = "ctr --address '" + socket + "' run -d -t --runc-binary '" + wrapper + "' --runc-root '" + runcRoot
                + "' " + IMAGE + " " + K9 + " sleep 1000";
        KrunProcess.Result started = sh("script -qec \"" + run + "\" /dev/null </dev/null", 120);
        assertEquals(0, started.status(), started.toString());
        String pid = taskColumn(K9, 1);
        assertTrue(Long.parseLong(pid) > 0, pid);
        assertEquals("RUNNING", taskColumn(K9, 2));
        assertTrue(Files.exists(runcRoot.resolve("default").resolve(K9).resolve("ctl.sock")));
        assertEquals(0, sh("kill -9 " + pid, 30).status());
        String status = "";
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
        while (System.nanoTime() < deadline && !status.equals("STOPPED")) {
            Thread.sleep(500);
            status = taskColumn(K9, 2);
        }
        assertEquals("STOPPED", status);
        KrunProcess.Result delete = ctr(60, "task", "delete", K9);
        assertEquals(0, delete.status(), delete.toString());
        assertTrue(delete.err().contains("exit code 137"), "the VMM process's status is the task's: " + delete);
        assertEquals(0, ctr(60, "container", "delete", K9).status());
        assertNothingLeft(K9);
    }

    /** Column {@code n} of {@code ctr task ls}'s line of task {@code id} (1: pid, 2: status), or "". */
    private String taskColumn(String id, int n) throws IOException, InterruptedException {
        return ctr(60, "task", "ls").out().lines().map(l -> l.trim().split("\\s+")).filter(f -> f[0].equals(id) && f.length > n)
                .map(f -> f[n]).findFirst().orElse("");
    }

    /** Once container {@code id} is deleted: no runtime state, task directory, shim, VMM process or mount of it. */
    private void assertNothingLeft(String id) throws Exception {
        assertFalse(Files.exists(runcRoot.resolve("default").resolve(id)), "krun oci's state of " + id);
        assertFalse(Files.exists(dir.resolve("state/io.containerd.runtime.v2.task/default").resolve(id)), "containerd's task directory of " + id);
        assertEquals(List.of(), ctr(60, "container", "ls", "-q").out().lines().filter(id::equals).toList());
        // the shim's exit follows its task's delete by a moment
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (System.nanoTime() < deadline && !processesNaming("-id " + id + " ").isEmpty()) {
            Thread.sleep(200);
        }
        assertEquals(List.of(), processesNaming("-id " + id + " ").stream().map(p -> p.info().commandLine().orElse("")).toList(),
                "the shim of " + id);
        assertEquals(List.of(), processesNaming("vmm " + id).stream().map(p -> p.info().commandLine().orElse("")).toList(),
                "the VMM process of " + id);
        assertEquals(List.of(), mountsUnder(dir).stream().filter(m -> m.contains("/" + id + "/")).toList(), "mounts of " + id);
    }

    /**
     * {@code rootfs} as an OCI image archive (image-spec 1.0 layout: one uncompressed layer, its config, manifest
     * and index naming {@link #IMAGE}), for {@code ctr image import}.
     */
    private static Path ociImage(Path rootfs, Path layout) throws Exception {
        Path blobs = Files.createDirectories(layout.resolve("blobs/sha256"));
        Path layer = layout.resolve("layer.tar");
        KrunProcess.Result tar = sh("tar -C '" + rootfs + "' -cf '" + layer + "' .", 120);
        assertEquals(0, tar.status(), tar.toString());
        String layerDigest = sha256(layer);
        long layerSize = Files.size(layer);
        Files.move(layer, blobs.resolve(layerDigest));
        String config = """
                {"architecture":"amd64","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],\
                "Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}""".formatted(layerDigest);
        String configDigest = blob(blobs, config);
        String manifest = """
                {"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",\
                "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},\
                "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%d}]}"""
                .formatted(configDigest, config.length(), layerDigest, layerSize);
        String manifestDigest = blob(blobs, manifest);
        Files.writeString(layout.resolve("index.json"), """
                {"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json",\
                "digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}"""
                .formatted(manifestDigest, manifest.length(), IMAGE));
        Files.writeString(layout.resolve("oci-layout"), "{\"imageLayoutVersion\":\"1.0.0\"}");
        Path archive = layout.resolveSibling("image.tar");
        KrunProcess.Result packed = sh("tar -C '" + layout + "' -cf '" + archive + "' oci-layout index.json blobs", 120);
        assertEquals(0, packed.status(), packed.toString());
        return archive;
    }

    private static String blob(Path blobs, String json) throws IOException, NoSuchAlgorithmException {
        byte[] bytes = json.getBytes(StandardCharsets.UTF_8);
        String digest = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(bytes));
        Files.write(blobs.resolve(digest), bytes);
        return digest;
    }

    private static String sha256(Path file) throws IOException, NoSuchAlgorithmException {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        try (var in = Files.newInputStream(file)) {
            byte[] buf = new byte[1 << 16];
            for (int n; (n = in.read(buf)) > 0; ) {
                md.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(md.digest());
    }

    /** Processes (other than this JVM) whose command line contains {@code text}. */
    private static List<ProcessHandle> processesNaming(String text) {
        long self = ProcessHandle.current().pid();
        try (Stream<ProcessHandle> all = ProcessHandle.allProcesses()) {
            return all.filter(p -> p.pid() != self)
                    .filter(p -> p.info().commandLine().map(c -> (c + " ").contains(text)).orElse(false)).toList();
        }
    }

    /** The mount points under {@code dir} (/proc/self/mountinfo's fifth field). */
    private static List<String> mountsUnder(Path dir) throws IOException {
        return Files.readAllLines(Path.of("/proc/self/mountinfo")).stream().map(l -> l.split(" ")[4])
                .filter(m -> m.startsWith(dir.toString())).toList();
    }

    private static boolean onPath(String name) {
        return Stream.of(System.getenv("PATH").split(":")).anyMatch(p -> Files.isExecutable(Path.of(p, name)));
    }

    /** Runs {@code body}, saying on stderr how long it took (this test's figures). */
    private <T> T timed(String what, java.util.concurrent.Callable<T> body) throws Exception {
        long t0 = System.nanoTime();
        try {
            return body.call();
        } finally {
            System.err.printf("KrunOciContainerdIT: %s: %.1f s%n", what, (System.nanoTime() - t0) / 1e9);
        }
    }

    private KrunProcess.Result ctr(long timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("ctr", "--address", socket.toString()));
        cmd.addAll(List.of(args));
        return KrunProcess.run(new ProcessBuilder(cmd), cmd, null, timeout);
    }

    private KrunProcess.Result runtime(long timeout, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(wrapper.toString()));
        cmd.addAll(List.of(args));
        return KrunProcess.run(new ProcessBuilder(cmd), cmd, null, timeout);
    }

    private static KrunProcess.Result sh(String script, long timeout) throws IOException, InterruptedException {
        return KrunProcess.run(new ProcessBuilder("sh", "-c", script), List.of("sh", "-c", script), null, timeout);
    }

    /** "Linux version X" in krun's kernel image: what uname -r says in its guests. */
    private static String kernelRelease() throws IOException {
        String image = new String(Files.readAllBytes(Path.of(KrunProcess.kernel())), StandardCharsets.ISO_8859_1);
        Matcher m = Pattern.compile("Linux version (\\S+)").matcher(image);
        assertTrue(m.find(), "no version string in " + KrunProcess.kernel());
        return m.group(1);
    }
}
