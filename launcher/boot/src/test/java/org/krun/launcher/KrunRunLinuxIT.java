package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;

import com.sun.net.httpserver.HttpServer;

/**
 * {@code krun run} end to end: the packaged launcher boots krun's Linux kernel and the default busybox
 * rootfs. Every boot costs tens of seconds on kvm-pvm hosts, so all runs start at once in
 * {@link #bootAll()} (two at a time, one per host core) and each test checks one run's result.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class KrunRunLinuxIT {
    private static final long BOOT_TIMEOUT_SECONDS = 600;

    /** Binary input for the pipe test: NUL, every byte value, and a random tail larger than any buffer. */
    private static final byte[] BINARY_INPUT = binaryInput();

    private ExecutorService lanes;
    private Future<KrunProcess.Result> exit42;
    private Future<KrunProcess.Result> exit0;
    private Future<KrunProcess.Result> killed;
    private Future<KrunProcess.Result> missingCommand;
    private Future<KrunProcess.Result> smp;
    private Future<KrunProcess.Result> binaryPipe;
    private Future<KrunProcess.Result> environment;
    private Future<KrunProcess.Result> fromBzImage;
    private Future<KrunProcess.Result> readerGoesAway;
    private Future<KrunProcess.Result> stdinClosed;
    private Future<KrunProcess.Result> garbageInitrd;
    /** exit42's command run twice with a template folder: the run that makes the template, then one restoring it. */
    private Future<List<KrunProcess.Result>> templated;
    private java.nio.file.Path templates;
    private java.nio.file.Path bzImage;

    private static byte[] binaryInput() {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        b.writeBytes(new byte[] {'a', 0, 'b'});
        for (int i = 0; i < 256; i++) {
            b.write(i);
        }
        byte[] tail = new byte[200_000];
        new Random(42).nextBytes(tail);
        b.writeBytes(tail);
        return b.toByteArray();
    }

    private java.nio.file.Path shared;
    /** What the host's HTTP server gives the guest's wget, and the requests it answered (method, path, peer). */
    private static final byte[] SERVED = served();
    private HttpServer http;
    private final List<String> httpRequests = new java.util.concurrent.CopyOnWriteArrayList<>();

    private static byte[] served() {
        byte[] b = new byte[256 * 1024];
        new Random(12).nextBytes(b);
        return b;
    }

    /** An HTTP server on the host's 127.0.0.1 (a port of its own), serving {@link #SERVED} at /file. */
    private HttpServer startHttpServer() throws java.io.IOException {
        HttpServer server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 8);
        server.createContext("/file", exchange -> {
            httpRequests.add(exchange.getRequestMethod() + " " + exchange.getRequestURI() + " from "
                    + exchange.getRemoteAddress().getAddress().getHostAddress());
            exchange.sendResponseHeaders(200, SERVED.length);
            try (var body = exchange.getResponseBody()) {
                body.write(SERVED);
            }
        });
        server.start();
        return server;
    }

    @BeforeAll
    void bootAll() throws java.io.IOException {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: Linux guest tests SKIPPED");
        shared = java.nio.file.Files.createTempDirectory("krun-it-share");
        java.nio.file.Files.writeString(shared.resolve("from-host"), "shared by the host\n");
        lanes = Executors.newFixedThreadPool(2);
        http = startHttpServer();
        exit42 = boot(null, "run", "--", "/bin/sh", "-c", "echo hello; exit 42");
        killed = boot(null, "run", "--", "/bin/sh", "-c", "kill -9 $$");
        smp = boot(null, "run", "--cpus", "2", "--mem", "512", "--", "/bin/sh", "-c", "nproc; grep MemTotal /proc/meminfo");
        binaryPipe = boot(BINARY_INPUT, "run", "--", "/bin/cat");
        environment = boot(null, "run", "--workdir", "/tmp", "-e", "GREETING=hi there", "--hostname", "testvm",
                "--rlimit", "NOFILE=123:456", "-v", shared + ":/mnt/host:ro", "-v", shared + ":/share-at-the-top",
                "--", "/bin/sh", "-c",
                "pwd; echo \"$GREETING\"; hostname; ulimit -n; ulimit -Hn; echo to-stderr >&2; "
                        + "grep -c ' /proc proc ' /proc/mounts; grep -c ' /dev devtmpfs ' /proc/mounts; "
                        + "grep -c ' /dev/pts devpts ' /proc/mounts; test -t 0 && echo tty || echo notty; "
                        + "cat /mnt/host/from-host; touch /mnt/host/new 2>/dev/null && echo ro-broken || echo ro-kept; "
                        + "echo written > /probe-of-this-run && cat /probe-of-this-run; cat /share-at-the-top/from-host; "
                        + "grep -c ' host.krun.internal$' /etc/hosts; grep -c '^nameserver ' /etc/resolv.conf; "
                        // the root's own /etc/hosts lines are kept beside the appended ones, and /etc keeps its mode
                        + "grep -c ' localhost$' /etc/hosts; stat -c %a /etc; "
                        // last: networking with no options (TSI), the host's loopback by its name in the guest
                        + "wget -q -O - http://host.krun.internal:" + http.getAddress().getPort() + "/file | md5sum");
        exit0 = boot(null, "run", "--no-default-devices", "--device", "rng", "--", "/bin/sh", "-c",
                "cat /sys/bus/virtio/devices/*/device | sort; exit 0");
        missingCommand = boot(null, "run", "--", "/no/such/command");
        // krun's kernel build makes a bzImage beside the vmlinux: the same kernel, entered through its
        // decompressor (64-bit boot protocol entry) instead of directly.
        bzImage = java.nio.file.Path.of(KrunProcess.kernel()).resolveSibling("bzImage");
        fromBzImage = boot(null, "run", "--kernel", bzImage.toString(), "--", "/bin/sh", "-c",
                "echo booted; uname -sm; exit 3");
        // An initrd of random bytes: the kernel cannot unpack it, finds no root and panics before any init.
        byte[] garbage = new byte[300_000];
        new Random(7).nextBytes(garbage);
        java.nio.file.Path initrd = java.nio.file.Files.write(java.nio.file.Files.createTempFile("krun-it", ".initrd"), garbage);
        initrd.toFile().deleteOnExit();
        garbageInitrd = boot(null, "run", "--initrd", initrd.toString(), "--", "/bin/true");
        templates = java.nio.file.Files.createTempDirectory("krun-it-templates");
        templated = lanes.submit(() -> List.of(withTemplates("--", "/bin/sh", "-c", "echo hello; exit 42"),
                withTemplates("--", "/bin/sh", "-c", "echo hello; exit 42")));
        readerGoesAway = lanes.submit(KrunRunLinuxIT::yesIntoAReaderThatGoesAway);
        // fd 0 closed: the JVM's first file takes its number; the command must read end-of-file, not that file
        List<String> closedStdin = new java.util.ArrayList<>(List.of("/bin/sh", "-c", "exec \"$0\" \"$@\" <&-"));
        closedStdin.addAll(KrunProcess.command(List.of("run", "--", "/bin/sh", "-c", "wc -c; echo read-all")));
        stdinClosed = lanes.submit(() -> KrunProcess.run(new ProcessBuilder(closedStdin), List.of("run", "--", "wc -c", "<&-"),
                null, BOOT_TIMEOUT_SECONDS));
    }

    /**
     * {@code krun run -- yes | head -1}: reads the first line, then closes krun's stdout as head does on exit.
     * The result's stdout is that line; its stderr krun's, still open.
     */
    private static KrunProcess.Result yesIntoAReaderThatGoesAway() throws Exception {
        Process p = new ProcessBuilder(KrunProcess.command(List.of("run", "--", "yes")))
                .redirectError(ProcessBuilder.Redirect.PIPE).start();
        java.io.ByteArrayOutputStream err = new java.io.ByteArrayOutputStream();
        Thread e = Thread.ofPlatform().daemon(true).start(() -> {
            try (java.io.InputStream in = p.getErrorStream()) {
                in.transferTo(err);
            } catch (java.io.IOException ex) {
                // gone
            }
        });
        p.getOutputStream().close();
        byte[] line;
        try (java.io.InputStream out = p.getInputStream()) {
            java.io.ByteArrayOutputStream first = new java.io.ByteArrayOutputStream();
            int b;
            while ((b = out.read()) >= 0 && b != '\n') {
                first.write(b);
            }
            line = first.toByteArray();
        } // closed: krun's next write fails with EPIPE
        if (!p.waitFor(BOOT_TIMEOUT_SECONDS, java.util.concurrent.TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError("krun run -- yes did not end after its reader went away");
        }
        e.join();
        return new KrunProcess.Result(List.of("run", "--", "yes", "|", "head", "-1"), p.exitValue(), line, err.toByteArray());
    }

    /** {@code krun --log-level debug run ARGS} with {@link #templates} as the launcher's template folder. */
    private KrunProcess.Result withTemplates(String... runArgs) throws Exception {
        List<String> args = new java.util.ArrayList<>(List.of("--log-level", "debug", "run"));
        args.addAll(List.of(runArgs));
        List<String> cmd = new java.util.ArrayList<>(KrunProcess.command(args));
        cmd.add(1, "-Dkrun.templates=" + templates);
        return KrunProcess.run(new ProcessBuilder(cmd), args, null, BOOT_TIMEOUT_SECONDS);
    }

    private Future<KrunProcess.Result> boot(byte[] stdin, String... args) {
        return lanes.submit(() -> KrunProcess.run(stdin, BOOT_TIMEOUT_SECONDS, args));
    }

    @AfterAll
    void stopLanes() {
        if (lanes != null) {
            lanes.shutdownNow();
        }
        if (http != null) {
            http.stop(0);
        }
        if (templates != null) {
            try (var files = java.nio.file.Files.walk(templates)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            } catch (java.io.IOException e) {
                // a temporary folder: the test's result stands
            }
        }
    }

    @Test
    void aRunFromATemplateGivesWhatAColdBootGives() throws Exception {
        KrunProcess.Result cold = exit42.get();
        List<KrunProcess.Result> runs = templated.get();
        KrunProcess.Result making = runs.get(0);
        KrunProcess.Result restored = runs.get(1);
        assertTrue(making.err().contains("DEBUG Machine: vm vm1: template " + templates), "the first run made it: " + making);
        assertTrue(restored.err().contains("DEBUG Machine: vm vm1: restoring template "), "the second restored it: " + restored);
        assertFalse(restored.err().contains("could not be restored"), restored.toString());
        for (KrunProcess.Result r : runs) {
            assertEquals(cold.status(), r.status(), r.toString());
            assertEquals(cold.out(), r.out(), r.toString());
        }
    }

    @Test
    void commandOutputAndExitStatusComeBack() throws Exception {
        KrunProcess.Result r = exit42.get();
        assertEquals(42, r.status(), r.toString());
        assertEquals("hello\n", r.out(), r.toString());
    }

    @Test
    void successfulCommandExitsZeroAndTheGuestHasExactlyTheDevicesAskedFor() throws Exception {
        KrunProcess.Result r = exit0.get();
        assertEquals(0, r.status(), r.toString());
        // console, the entropy source asked for with --device rng, the virtio-fs root; no default balloon
        assertEquals(List.of("0x0003", "0x0004", "0x001a"), r.out().lines().toList(), r.toString());
    }

    @Test
    void commandKilledBySigkillExits137() throws Exception {
        KrunProcess.Result r = killed.get();
        assertEquals(137, r.status(), r.toString());
    }

    @Test
    void missingCommandExits127WithAMessage() throws Exception {
        KrunProcess.Result r = missingCommand.get();
        assertEquals(127, r.status(), r.toString());
        assertTrue(r.err().contains("/no/such/command"), r.toString());
    }

    @Test
    void cpusAndMemoryReachTheGuest() throws Exception {
        KrunProcess.Result r = smp.get();
        assertEquals(0, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        assertEquals("2", lines.get(0), r.toString());
        Matcher m = Pattern.compile("MemTotal:\\s+(\\d+) kB").matcher(lines.get(1));
        assertTrue(m.matches(), r.toString());
        long kib = Long.parseLong(m.group(1));
        assertTrue(kib > 450 * 1024 && kib <= 512 * 1024, "about 512 MiB, got " + kib + " kB");
    }

    @Test
    void binaryStdinComesBackByteExactThroughCat() throws Exception {
        KrunProcess.Result r = binaryPipe.get();
        assertEquals(0, r.status(), r.toString().substring(0, Math.min(2000, r.toString().length())));
        assertArrayEquals(BINARY_INPUT, r.stdout());
    }

    @Test
    void workdirEnvironmentHostnameRlimitsMountsReadOnlyVolumeAndSeparateStderr() throws Exception {
        KrunProcess.Result r = environment.get();
        assertEquals(0, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        assertEquals(List.of("/tmp", "hi there", "testvm", "123", "456", "1", "1", "1", "notty", "shared by the host",
                "ro-kept", "written", "shared by the host", "2", resolvers(), localhostLines(), etcMode()),
                lines.subList(0, Math.max(0, lines.size() - 1)),
                r.toString()); // the last line is the wget's, checked below
        assertFalse(java.nio.file.Files.exists(shared.resolve("new")), "the read-only share stayed untouched");
        assertEquals("to-stderr\n", r.err(), r.toString());
    }

    @Test
    void busyboxWgetFetchesAFileFromAServerOnTheHostsLoopbackByTheNameHostKrunInternal() throws Exception {
        KrunProcess.Result r = environment.get(); // no network options: TSI, the default for a VM without a NIC
        assertEquals(0, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        String md5 = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("MD5").digest(SERVED));
        assertEquals(md5 + "  -", lines.isEmpty() ? "" : lines.getLast(),
                "md5sum of what wget got, against the " + SERVED.length + " bytes served\n" + r);
        // The VMM made the connection on the guest's behalf: the server saw the host's loopback.
        assertEquals(List.of("GET /file from 127.0.0.1"), httpRequests, r.toString());
    }

    /** How many localhost lines the default root's own /etc/hosts has (the guest's keeps them, then gets the alias). */
    private static String localhostLines() throws java.io.IOException {
        return Long.toString(java.nio.file.Files.readAllLines(java.nio.file.Path.of(KrunProcess.rootfs(), "etc", "hosts")).stream()
                .filter(l -> l.endsWith(" localhost")).count());
    }

    /** The default root's /etc permission bits, octal, as busybox stat -c %a prints them. */
    private static String etcMode() throws java.io.IOException {
        int bits = 0;
        for (java.nio.file.attribute.PosixFilePermission p : java.nio.file.Files.getPosixFilePermissions(
                java.nio.file.Path.of(KrunProcess.rootfs(), "etc"))) {
            bits |= 1 << (8 - p.ordinal());
        }
        return Integer.toOctalString(bits);
    }

    /** How many resolvers the guest gets: the host's, at most three (HostResolvers). */
    private static String resolvers() throws java.io.IOException {
        long n = java.nio.file.Files.readAllLines(java.nio.file.Path.of("/etc/resolv.conf")).stream()
                .filter(l -> l.matches("\\s*nameserver\\s+[0-9a-fA-F:.]+\\s*")).count();
        return Long.toString(Math.min(n, 3));
    }

    @Test
    void theDefaultRootIsTheSamePristineTreeForEveryRun() throws Exception {
        KrunProcess.Result r = environment.get(); // wrote /probe-of-this-run, mounted shares at /mnt/host and /share-at-the-top
        assertEquals(0, r.status(), r.toString());
        java.nio.file.Path rootfs = java.nio.file.Path.of(KrunProcess.rootfs());
        assertFalse(java.nio.file.Files.exists(rootfs.resolve("probe-of-this-run")),
                "the guest's write stayed in its own layer, not in the shared default root " + rootfs);
        assertFalse(java.nio.file.Files.exists(rootfs.resolve("mnt/host")),
                "no mount point was made for the share in the shared default root " + rootfs);
        assertFalse(java.nio.file.Files.exists(rootfs.resolve("share-at-the-top")),
                "nor for the share at a new top-level folder " + rootfs);
        assertFalse(java.nio.file.Files.readString(rootfs.resolve("etc/hosts")).contains("krun.internal"),
                "the host alias went into the guest's layer, not the shared default root's /etc/hosts");
    }

    @Test
    void aCommandWritingIntoAReaderThatWentAwayEndsAsALocalPipelineDoesWithSigpipe() throws Exception {
        KrunProcess.Result r = readerGoesAway.get();
        assertEquals("y", r.out(), r.toString());
        assertEquals(141, r.status(), "128 + SIGPIPE: " + r);
        // The guest's init ended the command with SIGPIPE; had krun needed its own fallback (stopping the VM
        // after BrokenPipe.GRACE), it would have said so on stderr, which stayed open.
        assertEquals("", r.err(), "the guest ended the command itself: " + r);
    }

    @Test
    void aClosedStdinIsEndOfFileForTheCommand() throws Exception {
        KrunProcess.Result r = stdinClosed.get();
        assertEquals(0, r.status(), r.toString());
        assertEquals(List.of("0", "read-all"), r.out().lines().toList(), "no byte of the JVM's own files: " + r);
        assertEquals("", r.err(), r.toString());
    }

    @Test
    void aKernelThatCannotStartTheInitNamesThePanicAndWhatLedToIt() throws Exception {
        KrunProcess.Result r = garbageInitrd.get();
        assertEquals(1, r.status(), r.toString());
        assertEquals("", r.out(), r.toString());
        List<String> err = r.err().lines().toList();
        assertEquals(1, err.size(), "one line: " + r);
        assertTrue(err.get(0).startsWith("krun: the guest's init did not start: guest kernel panic: "), r.toString());
        assertTrue(err.get(0).contains("Initramfs unpacking failed"), "what led to the panic: " + r);
        assertFalse(err.get(0).contains("without reporting an exit status"), r.toString());
    }

    @Test
    void bzImageOfTheSameKernelBootsAndRunsTheCommand() throws Exception {
        assertTrue(java.nio.file.Files.isRegularFile(bzImage), "krun's kernel build leaves a bzImage at " + bzImage);
        KrunProcess.Result r = fromBzImage.get();
        assertEquals(3, r.status(), r.toString());
        assertEquals(List.of("booted", "Linux x86_64"), r.out().lines().toList(), r.toString());
    }
}
