package org.krun.cli.internal.oci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.krun.api.GuestUser;
import org.krun.cli.internal.oci.OciSpec.OciException;
import org.krun.cli.internal.oci.OciState.State;

/**
 * The host's exec sessions ({@link ExecRelay}) against krun's real exec agent (guest/init/exec.c), built for
 * this host and serving a unix socket where the VMM process would map the guest's vsock port: the same code
 * both ends, no VM. The agent runs host processes here (sh, cat), as the guest's runs the container's.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ExecAgentTest {

    private Path dir;

    private Process agent;
    private OciState st;

    @BeforeAll
    void startAgent() throws Exception {
        dir = Files.createTempDirectory("krun-exec-agent");
        Path src = guestInit();
        Path binary = dir.resolve("exec_unix");
        Process cc;
        try {
            cc = new ProcessBuilder("cc", "-Wall", "-Werror", "-o", binary.toString(), src.resolve("exec.c").toString(),
                    src.resolve("test/exec_unix.c").toString()).redirectErrorStream(true).start();
        } catch (IOException e) {
            Assumptions.abort("no C compiler (cc) to build the exec agent for this host: " + e.getMessage());
            return;
        }
        String log = new String(cc.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, cc.waitFor(), log);
        long pid = ProcessHandle.current().pid();
        st = new OciState(dir.resolve("state"), "c1");
        st.create(new State("c1", OciState.RUNNING, pid, OciState.startTime(pid), "/b", Map.of(), "2026-01-01T00:00:00Z", -1));
        Path socket = st.dir().resolve(OciState.EXEC_SOCKET);
        agent = new ProcessBuilder(binary.toString(), socket.toString()).redirectErrorStream(true).start();
        for (int i = 0; i < 500 && !Files.exists(socket); i++) {
            Thread.sleep(10);
        }
        assertTrue(Files.exists(socket), "the agent listens");
    }

    @AfterAll
    void stopAgent() throws Exception {
        if (agent != null) {
            agent.destroyForcibly();
            agent.waitFor(10, TimeUnit.SECONDS);
        }
        if (dir != null) {
            try (java.util.stream.Stream<Path> files = Files.walk(dir)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** guest/init of this checkout (tests run in launcher/cli). */
    private static Path guestInit() {
        Path p = Path.of("").toAbsolutePath();
        while (p != null && !Files.isRegularFile(p.resolve("guest/init/exec.c"))) {
            p = p.getParent();
        }
        assertTrue(p != null, "guest/init/exec.c above " + Path.of("").toAbsolutePath());
        return p.resolve("guest/init");
    }

    private static ExecRequest sh(String script) {
        return new ExecRequest(List.of("sh", "-c", script), List.of("PATH=/usr/bin:/bin", "GREETING=hi"), "/tmp",
                new GuestUser(0, 0), false, 0, 0);
    }

    private record Ran(int status, String out, String err) {
    }

    private Ran run(ExecRequest r, InputStream stdin) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ExecRelay relay = ExecRelay.start(st, r, 10);
        int status = relay.relay(stdin, out, err, false, -1);
        return new Ran(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void theProcessOutputAndExitStatusComeBack() {
        Ran r = run(sh("echo $GREETING; pwd; echo oops >&2; exit 5"), InputStream.nullInputStream());
        assertEquals(new Ran(5, "hi\n/tmp\n", "oops\n"), r);
    }

    @Test
    void standardInputPassesThroughAndItsEndIsTheProcesssEnd() {
        byte[] big = new byte[300_000]; // several frames, more than a pipe holds
        for (int i = 0; i < big.length; i++) {
            big[i] = (byte) ('a' + i % 26);
        }
        Ran r = run(sh("cat; echo done"), new ByteArrayInputStream(big));
        assertEquals(0, r.status());
        assertEquals(new String(big, StandardCharsets.US_ASCII) + "done\n", r.out());
    }

    @Test
    void aTerminalProcessGetsAPtyOfTheAgentsSizedAsAsked() {
        ExecRequest r = new ExecRequest(List.of("sh", "-c", "tty; stty size; exit 4"), List.of("PATH=/usr/bin:/bin"), "/",
                new GuestUser(0, 0), true, 100, 30);
        Ran ran = run(r, InputStream.nullInputStream());
        assertEquals(4, ran.status(), ran.toString());
        List<String> lines = ran.out().lines().toList();
        assertTrue(lines.get(0).startsWith("/dev/pts/"), "its standard streams are a terminal: " + ran);
        assertEquals("30 100", lines.get(1), "the size from the request: " + ran);
        assertTrue(ran.out().endsWith("\r\n"), "the terminal's line discipline (CR LF): " + ran);
        assertEquals("", ran.err(), "a terminal's output is all stdout");
    }

    @Test
    void aMissingCommandFailsInTheWordsEnginesKnow() {
        ExecRequest r = new ExecRequest(List.of("no-such-command-krun"), List.of("PATH=/usr/bin:/bin"), "/", new GuestUser(0, 0),
                false, 0, 0);
        OciException e = assertThrows(OciException.class, () -> ExecRelay.start(st, r, 10));
        assertTrue(e.getMessage().contains("executable file not found in $PATH"), e.getMessage());
        ExecRequest cwd = new ExecRequest(List.of("true"), List.of("PATH=/usr/bin:/bin"), "/no/such/dir", new GuestUser(0, 0),
                false, 0, 0);
        e = assertThrows(OciException.class, () -> ExecRelay.start(st, cwd, 10));
        assertTrue(e.getMessage().contains("/no/such/dir") && e.getMessage().contains("No such file or directory"), e.getMessage());
    }

    @Test
    void aSignalReachesTheProcess() {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ExecRelay relay = ExecRelay.start(st, sh("trap 'echo got USR1; exit 7' USR1; echo ready; while :; do sleep 0.05; done"), 10);
        OutputStream out = new OutputStream() {
            private final ByteArrayOutputStream seen = new ByteArrayOutputStream();

            @Override
            public void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                seen.write(b, off, len);
                if (seen.toString(StandardCharsets.UTF_8).equals("ready\n")) {
                    relay.signal(10); // SIGUSR1
                }
            }

            @Override
            public String toString() {
                return seen.toString(StandardCharsets.UTF_8);
            }
        };
        int status = relay.relay(InputStream.nullInputStream(), out, err, false, -1);
        assertEquals(7, status, out + " / " + err);
        assertEquals("ready\ngot USR1\n", out.toString());
    }

    @Test
    void twoSessionsAtOnce() throws Exception {
        // The first waits for a line the test gives only once the second has finished.
        java.io.PipedOutputStream feed = new java.io.PipedOutputStream();
        java.io.PipedInputStream firstIn = new java.io.PipedInputStream(feed);
        CompletableFuture<Ran> first = CompletableFuture.supplyAsync(() -> run(sh("read line; echo first $line"), firstIn));
        Ran second = run(sh("echo second"), InputStream.nullInputStream());
        assertEquals(new Ran(0, "second\n", ""), second);
        assertFalse(first.isDone(), "the first still waits for its input");
        feed.write("go\n".getBytes(StandardCharsets.UTF_8));
        feed.close();
        assertEquals(new Ran(0, "first go\n", ""), first.get(30, TimeUnit.SECONDS));
    }

    @Test
    void anAgentThatNeverAnswersDoesNotHoldExecForEver() throws Exception {
        long pid = ProcessHandle.current().pid();
        OciState mute = new OciState(dir.resolve("state"), "mute");
        mute.create(new State("mute", OciState.RUNNING, pid, OciState.startTime(pid), "/b", Map.of(), "2026-01-01T00:00:00Z", -1));
        try (java.nio.channels.ServerSocketChannel server = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            server.bind(java.net.UnixDomainSocketAddress.of(mute.dir().resolve(OciState.EXEC_SOCKET)));
            // takes the connection and the request, says nothing
            CompletableFuture<java.nio.channels.SocketChannel> held = CompletableFuture.supplyAsync(() -> {
                try {
                    return server.accept();
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
            });
            long t0 = System.nanoTime();
            OciException e = assertThrows(OciException.class, () -> ExecRelay.start(mute, sh("true"), 1));
            assertTrue(e.getMessage().contains("did not answer within 1 s"), e.getMessage());
            assertTrue(System.nanoTime() - t0 < TimeUnit.SECONDS.toNanos(10), "given up near its deadline");
            held.get(10, TimeUnit.SECONDS).close();
        }
    }

    @Test
    void closingTheSessionEndsTheProcess() throws Exception {
        ExecRelay relay = ExecRelay.start(st, sh("echo $$; exec sleep 1000"), 10);
        ExecProtocol.Frame f = ExecProtocol.readGuestFrame(new ExecRelay.FdInput(relay.fd()));
        long pid = Long.parseLong(new String(f.payload(), StandardCharsets.UTF_8).strip());
        assertTrue(ProcessHandle.of(pid).isPresent(), "sleep runs");
        relay.close();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false) && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "the agent killed it when the host went");
    }
}
