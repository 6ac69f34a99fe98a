package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * An interactive {@code krun run -- /bin/sh} in a real terminal (a tmux pane): the guest shell gets the
 * terminal's size, runs what is typed, follows a window resize, and {@code exit} returns to the host with
 * the terminal settings exactly as before.
 */
class KrunTerminalIT {
    private static final long BOOT_SECONDS = 600;

    private Path dir;
    private String socket;

    @BeforeEach
    void setUp() throws IOException {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: terminal test SKIPPED");
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/tmux")), "tmux is not installed");
        dir = Files.createTempDirectory("krun-tty");
        socket = "krun-it-" + ProcessHandle.current().pid();
    }

    @AfterEach
    void tearDown() throws Exception {
        if (socket != null) {
            tmux("kill-server");
        }
    }

    private String tmux(String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of("tmux", "-L", socket));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        p.waitFor(30, TimeUnit.SECONDS);
        return out;
    }

    private String screen() throws IOException, InterruptedException {
        return tmux("capture-pane", "-p", "-t", "t");
    }

    private String waitFor(Predicate<String> condition, long seconds, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        String s = "";
        while (System.nanoTime() < deadline) {
            s = screen();
            if (condition.test(s)) {
                return s;
            }
            Thread.sleep(250);
        }
        throw new AssertionError("timed out waiting for " + what + "; screen:\n" + s);
    }

    private void type(String line) throws Exception {
        tmux("send-keys", "-t", "t", "-l", line);
        tmux("send-keys", "-t", "t", "Enter");
    }

    @Test
    void interactiveShellFollowsTheTerminalAndRestoresItOnExit() throws Exception {
        StringBuilder krun = new StringBuilder();
        for (String part : KrunProcess.command(List.of("run", "--", "/bin/sh"))) {
            krun.append('\'').append(part.replace("'", "'\\''")).append("' ");
        }
        Path script = dir.resolve("session.sh");
        Files.writeString(script, "stty -g > before\n" + krun + "\necho \"KRUN_STATUS=$?\" > status\nstty -g > after\n"
                + "echo SESSION-DONE\nsleep 600\n");
        tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "30", "-c", dir.toString(), "bash " + script);

        // tmux trims trailing blanks from captured lines: the prompt "/ # " reads "/ #".
        waitFor(s -> s.lines().anyMatch(l -> l.stripTrailing().endsWith("/ #")), BOOT_SECONDS, "the guest shell prompt");
        type("stty size; echo $((6*7))");
        waitFor(s -> s.contains("30 100") && s.contains("\n42"), 60, "the guest to see a 100x30 terminal");

        tmux("resize-window", "-t", "t", "-x", "120", "-y", "40");
        type("stty size");
        waitFor(s -> s.contains("40 120"), 60, "the guest to follow the resize to 120x40");

        type("exit");
        waitFor(s -> s.contains("SESSION-DONE"), 120, "krun to return to the host shell");
        assertEquals("KRUN_STATUS=0", Files.readString(dir.resolve("status")).strip());
        assertEquals(Files.readString(dir.resolve("before")), Files.readString(dir.resolve("after")),
                "terminal settings restored");
        assertTrue(Files.readString(dir.resolve("before")).contains(":"), "stty -g output captured");
    }
}
