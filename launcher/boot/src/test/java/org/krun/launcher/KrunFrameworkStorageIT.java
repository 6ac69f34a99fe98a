package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Where krun keeps the framework's storage: one folder per run, {@code $XDG_RUNTIME_DIR/krun/felix-PID}, gone
 * when the run ends however it ends. A run killed with SIGKILL cannot clean up: the next run removes its
 * folder, and leaves alone the folders of runs still alive. The runs here are {@code krun --profile full
 * shell} consoles waiting on their open input (no VM boots).
 */
class KrunFrameworkStorageIT {
    private static final Duration WAIT = Duration.ofSeconds(90);

    @TempDir
    Path runtime;
    @TempDir
    Path work;

    private final List<Process> started = new ArrayList<>();

    @AfterEach
    void killLeftovers() {
        started.forEach(Process::destroyForcibly);
    }

    private Path storageBase() {
        return runtime.resolve("krun");
    }

    private ProcessBuilder krun(String name, String... args) {
        List<String> cmd = new ArrayList<>(KrunProcess.command(List.of(args)));
        cmd.add(1, "-Dfelix.fileinstall.dir=" + work.resolve("vms"));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectOutput(work.resolve(name + ".out").toFile())
                .redirectError(work.resolve(name + ".err").toFile());
        pb.environment().put("XDG_RUNTIME_DIR", runtime.toString());
        return pb;
    }

    /** A console whose input stays open, once it shows its prompt (its framework is up). */
    private Process shell(String name) throws Exception {
        Process p = krun(name, "--profile", "full", "shell").start();
        started.add(p);
        Path out = work.resolve(name + ".out");
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!Files.readString(out).contains("g! ")) {
            assertTrue(p.isAlive(), () -> name + " ended: " + output(name));
            assertTrue(System.nanoTime() < deadline, () -> name + " never showed its prompt: " + output(name));
            Thread.sleep(100);
        }
        return p;
    }

    private String output(String name) {
        try {
            return Files.readString(work.resolve(name + ".out")) + Files.readString(work.resolve(name + ".err"));
        } catch (IOException e) {
            return e.toString();
        }
    }

    private int waitFor(Process p, String name) throws InterruptedException {
        assertTrue(p.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), () -> name + " did not end: " + output(name));
        return p.exitValue();
    }

    private Path folderOf(Process p) {
        return storageBase().resolve("felix-" + p.pid());
    }

    private List<String> folders() throws IOException {
        try (Stream<Path> s = Files.list(storageBase())) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    @Test
    void theNextRunRemovesTheFolderOfARunKilledWithSigkillAndKeepsThoseOfLiveRuns() throws Exception {
        Process alive = shell("alive");
        Process killed = shell("killed");
        assertTrue(Files.isDirectory(folderOf(alive)), () -> "folders: " + Files.exists(storageBase()));
        assertEquals("rwx------", PosixFilePermissions.toString(Files.getPosixFilePermissions(storageBase())));

        killed.destroyForcibly();
        waitFor(killed, "killed");
        assertTrue(Files.isDirectory(folderOf(killed)), "SIGKILL leaves the folder");

        Process next = krun("next", "profiles").start();
        started.add(next);
        assertEquals(0, waitFor(next, "next"), () -> output("next"));
        assertEquals(List.of(folderOf(alive).getFileName().toString()), folders(),
                "the killed run's folder is gone, the live one's stays, the finished one left none");

        alive.getOutputStream().write("exit\n".getBytes(StandardCharsets.UTF_8));
        alive.getOutputStream().flush();
        assertEquals(0, waitFor(alive, "alive"));
        assertEquals(List.of(), folders());
    }

    @Test
    void sigtermAndSigintEndARunWithoutLeavingItsFolder() throws Exception {
        Process terminated = shell("terminated");
        assertTrue(Files.isDirectory(folderOf(terminated)));
        terminated.destroy(); // SIGTERM
        assertEquals(128 + 15, waitFor(terminated, "terminated"));
        assertEquals(List.of(), folders());

        Process interrupted = shell("interrupted");
        assertTrue(Files.isDirectory(folderOf(interrupted)));
        Process kill = new ProcessBuilder("kill", "-INT", Long.toString(interrupted.pid())).inheritIO().start();
        assertEquals(0, kill.waitFor());
        assertEquals(128 + 2, waitFor(interrupted, "interrupted"));
        assertEquals(List.of(), folders());
    }
}
