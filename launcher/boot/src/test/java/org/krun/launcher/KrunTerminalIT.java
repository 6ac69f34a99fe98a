package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * An interactive {@code krun run -- /bin/sh} in a real terminal (a tmux pane): the guest shell gets the
 * terminal's size, runs what is typed, follows a window resize, and {@code exit} returns to the host with
 * the terminal settings exactly as before. The management console ({@code krun --profile full shell}) in a
 * real terminal is a JLine terminal with line editing and history.
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
        socket = "krun-it-" + dir.getFileName(); // one tmux server per test: a killed one may linger
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

    /**
     * Types {@code line} again and again until the screen shows what {@code condition} waits for, for state the
     * guest reaches at its own pace (a resize travels from tmux to krun's size poll, the console device and the
     * guest kernel while the shell may already be running the probe): each try waits {@code retrySeconds}
     * before asking again, all of them {@code seconds} together.
     */
    private String typeUntil(String line, Predicate<String> condition, long seconds, long retrySeconds, String what)
            throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        String s = "";
        while (System.nanoTime() < deadline) {
            type(line);
            long retry = Math.min(deadline, System.nanoTime() + TimeUnit.SECONDS.toNanos(retrySeconds));
            while (System.nanoTime() < retry) {
                s = screen();
                if (condition.test(s)) {
                    return s;
                }
                Thread.sleep(250);
            }
        }
        throw new AssertionError("timed out waiting for " + what + " (typed '" + line + "' until then); screen:\n" + s);
    }

    /**
     * Runs the krun {@code command} in the pane through a script that saves the terminal settings before and
     * after, and krun's status.
     */
    private void startInPane(List<String> command, int columns, int rows) throws Exception {
        StringBuilder krun = new StringBuilder();
        for (String part : command) {
            krun.append('\'').append(part.replace("'", "'\\''")).append("' ");
        }
        Path script = dir.resolve("session.sh");
        Files.writeString(script, "stty -g > before\n" + krun + "\necho \"KRUN_STATUS=$?\" > status\nstty -g > after\n"
                + "echo SESSION-DONE\nsleep 600\n");
        tmux("new-session", "-d", "-s", "t", "-x", Integer.toString(columns), "-y", Integer.toString(rows),
                "-c", dir.toString(), "bash " + script);
    }

    private static long count(String screen, String text) {
        return screen.lines().filter(l -> l.contains(text)).count();
    }

    @Test
    void managementConsoleEditsLinesAndRecallsHistoryInARealTerminal() throws Exception {
        List<String> cmd = new ArrayList<>(KrunProcess.command(List.of("--profile", "full", "shell")));
        cmd.add(1, "-Dfelix.fileinstall.dir=" + dir.resolve("vms"));
        cmd.add(1, "-Duser.home=" + dir); // Gogo keeps its history in ~/.gogo.history
        startInPane(cmd, 120, 60);
        String header = "TYPE     DEFAULT  BUNDLE";

        String start = waitFor(s -> s.lines().anyMatch(l -> l.startsWith("g!")), 120, "the console prompt");
        type("krun:devices");
        waitFor(s -> count(s, header) == 1, 60, "the device table");
        // Up recalls the last line only where JLine owns the terminal; a dumb console would get "^[[A". The
        // newest prompt line shows it (tmux trims the blank after an empty "g!").
        tmux("send-keys", "-t", "t", "Up");
        waitFor(s -> s.lines().filter(l -> l.startsWith("g!")).reduce((a, b) -> b).orElse("").contains("krun:devices"),
                30, "Up to recall krun:devices");
        tmux("send-keys", "-t", "t", "Enter");
        waitFor(s -> count(s, header) == 2, 60, "the recalled command's device table");
        // Ctrl-A moves to the start of the line: "devices", Ctrl-A, "krun:" runs krun:devices.
        tmux("send-keys", "-t", "t", "-l", "devices");
        tmux("send-keys", "-t", "t", "C-a");
        type("krun:");
        waitFor(s -> count(s, header) == 3, 60, "the device table of the line edited with Ctrl-A");

        type("exit 5");
        String end = waitFor(s -> s.contains("SESSION-DONE"), 60, "krun to return to the host shell");
        assertEquals("KRUN_STATUS=5", Files.readString(dir.resolve("status")).strip());
        assertEquals(Files.readString(dir.resolve("before")), Files.readString(dir.resolve("after")),
                "terminal settings restored");
        assertFalse(start.toLowerCase(Locale.ROOT).contains("dumb"), start);
        assertFalse(end.toLowerCase(Locale.ROOT).contains("dumb"), end);
    }

    @Test
    void interactiveShellFollowsTheTerminalAndRestoresItOnExit() throws Exception {
        startInPane(KrunProcess.command(List.of("run", "--", "/bin/sh")), 100, 30);

        // tmux trims trailing blanks from captured lines: the prompt "/ # " reads "/ #".
        waitFor(s -> s.lines().anyMatch(l -> l.stripTrailing().endsWith("/ #")), BOOT_SECONDS, "the guest shell prompt");
        type("stty size; echo $((6*7))");
        waitFor(s -> s.contains("30 100") && s.contains("\n42"), 60, "the guest to see a 100x30 terminal");

        // The guest learns of the resize a while after tmux made it: ask until it answers with the new size.
        tmux("resize-window", "-t", "t", "-x", "120", "-y", "40");
        typeUntil("stty size", s -> s.contains("40 120"), 180, 15, "the guest to follow the resize to 120x40");

        type("exit");
        waitFor(s -> s.contains("SESSION-DONE"), 120, "krun to return to the host shell");
        assertEquals("KRUN_STATUS=0", Files.readString(dir.resolve("status")).strip());
        assertEquals(Files.readString(dir.resolve("before")), Files.readString(dir.resolve("after")),
                "terminal settings restored");
        assertTrue(Files.readString(dir.resolve("before")).contains(":"), "stty -g output captured");
    }
}
