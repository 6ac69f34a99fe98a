package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The packaged full profile as users run it: {@code krun --profile full shell} is a Gogo console on stdin
 * whose krun:* commands manage the VMs that File Install and Configuration Admin start from the watched
 * folder; {@code krun --profile full run} works as in the default profile, the console staying out of its
 * way. The guest is probe.elf (itests/src/test/guest), which prints the device ids it finds.
 */
class KrunFullProfileIT {
    private static final Duration WAIT = Duration.ofSeconds(90);
    private static final Pattern VM_LINE = Pattern.compile("\n(vm\\d+) +RUNNING .*fast-guest\n");

    private static Path probe() {
        return Path.of(System.getProperty("krun.guests"), "probe.elf");
    }

    /** krun with a system property before the launcher's arguments. */
    private static Process start(Path watched, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(KrunProcess.command(List.of(args)));
        cmd.add(1, "-Dfelix.fileinstall.dir=" + watched);
        return new ProcessBuilder(cmd).start();
    }

    /** The same, with {@code runtime} as XDG_RUNTIME_DIR: krun keeps its framework storage in runtime/krun. */
    private static Process start(Path watched, Path runtime, String... args) throws IOException {
        List<String> cmd = new ArrayList<>(KrunProcess.command(List.of(args)));
        cmd.add(1, "-Dfelix.fileinstall.dir=" + watched);
        ProcessBuilder pb = new ProcessBuilder(cmd);
        pb.environment().put("XDG_RUNTIME_DIR", runtime.toString());
        return pb.start();
    }

    /** The framework storage folders left under XDG_RUNTIME_DIR {@code runtime}. */
    private static List<String> storageFolders(Path runtime) throws IOException {
        Path base = runtime.resolve("krun");
        if (!Files.isDirectory(base)) {
            return List.of();
        }
        try (var s = Files.list(base)) {
            return s.map(p -> p.getFileName().toString()).toList();
        }
    }

    /** Collects a stream as it arrives. */
    private static final class Collector {
        private final ByteArrayOutputStream bytes = new ByteArrayOutputStream();

        Collector(InputStream in) {
            Thread.ofPlatform().daemon(true).start(() -> {
                byte[] buf = new byte[4096];
                try (in) {
                    for (int n; (n = in.read(buf)) > 0;) {
                        synchronized (bytes) {
                            bytes.write(buf, 0, n);
                        }
                    }
                } catch (IOException e) {
                    // process gone
                }
            });
        }

        String text() {
            synchronized (bytes) {
                return bytes.toString(StandardCharsets.UTF_8);
            }
        }
    }

    /**
     * Types {@code command} into the console every second until the output that follows matches
     * {@code expected} (commands may arrive before their bundle is up); returns the first match.
     */
    private static Matcher typeUntil(OutputStream stdin, Collector out, String command, Pattern expected)
            throws IOException, InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (System.nanoTime() < deadline) {
            int from = out.text().length();
            stdin.write((command + "\n").getBytes(StandardCharsets.UTF_8));
            stdin.flush();
            for (int i = 0; i < 20; i++) {
                Thread.sleep(50);
                Matcher m = expected.matcher(out.text().substring(from));
                if (m.find()) {
                    return m;
                }
            }
        }
        throw new AssertionError("'" + command + "' never printed " + expected + "; output:\n" + out.text());
    }

    @Test
    void shellStartsTheVmsConfiguredInTheWatchedFolderAndKrunCommandsManageThem(@TempDir Path watched) throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing");
        Files.writeString(watched.resolve("org.krun.vm-probe.config"), String.join("\n",
                "kernel=\"" + probe() + "\"",
                "command=[\"fast-guest\"]",
                "memoryMib=I\"64\"",
                "kernelArgs=[\"probe.wait\",\"probe.say=configured\"]",
                ""));
        Process p = start(watched, "--profile", "full", "shell");
        Collector out = new Collector(p.getInputStream());
        Collector err = new Collector(p.getErrorStream());
        try (OutputStream stdin = p.getOutputStream()) {
            typeUntil(stdin, out, "krun:devices", Pattern.compile("rng +yes +org\\.krun\\.device\\.rng"));
            String id = typeUntil(stdin, out, "krun:list", VM_LINE).group(1);
            typeUntil(stdin, out, "krun:console " + id, Pattern.compile("configured\nwaiting\n"));
            typeUntil(stdin, out, "krun:kill " + id, Pattern.compile(id + ": killed\n"));
            // An empty list: the header line, then the blank line that ends Gogo's output.
            typeUntil(stdin, out, "krun:list", Pattern.compile("ID +STATE +UPTIME +CPUS +MEMORY +EXIT +COMMAND\n\n"));
            stdin.write("exit\n".getBytes(StandardCharsets.UTF_8));
        }
        assertTrue(p.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), "krun shell exits after 'exit'; output:\n" + out.text());
        assertEquals(0, p.exitValue(), () -> out.text() + err.text());
        assertTrue(out.text().contains("Welcome to Apache Felix Gogo"), out.text());
    }

    @Test
    void exitEndsTheShellAndKrunWithItsStatusLeavingNoStorage(@TempDir Path watched, @TempDir Path runtime)
            throws Exception {
        assertEquals(3, exitStatusAfter("exit 3", watched, runtime));
        assertEquals(List.of(), storageFolders(runtime));
        assertEquals(0, exitStatusAfter("exit", watched, runtime));
        assertEquals(List.of(), storageFolders(runtime));
    }

    /**
     * Types {@code exit} into a shell whose input stays open (so that only exit can end it), followed by a
     * command that must not run; returns krun's exit status.
     */
    private static int exitStatusAfter(String exit, Path watched, Path runtime) throws Exception {
        Process p = start(watched, runtime, "--profile", "full", "shell");
        Collector out = new Collector(p.getInputStream());
        Collector err = new Collector(p.getErrorStream());
        try (OutputStream stdin = p.getOutputStream()) {
            typeUntil(stdin, out, "krun:devices", Pattern.compile("rng +yes +org\\.krun\\.device\\.rng"));
            stdin.write((exit + "\nkrun:hypervisors\n").getBytes(StandardCharsets.UTF_8));
            stdin.flush();
            assertTrue(p.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), "krun shell exits after '" + exit + "'; output:\n"
                    + out.text() + err.text());
        } finally {
            p.destroyForcibly();
        }
        assertFalse(out.text().contains("MAX-VCPUS"), "no command runs after exit: " + out.text());
        assertFalse(out.text().contains("Cannot coerce"), out.text());
        assertFalse(err.text().contains("dumb terminal"), "no warning about the console on pipes: " + err.text());
        return p.exitValue();
    }

    @Test
    void aFailedKrunCommandPrintsItsMessageAloneWithoutTheExceptionClass(@TempDir Path watched) throws Exception {
        Process p = start(watched, "--profile", "full", "shell");
        Collector out = new Collector(p.getInputStream());
        Collector err = new Collector(p.getErrorStream());
        try {
            try (OutputStream stdin = p.getOutputStream()) {
                typeUntil(stdin, out, "krun:start -k /nowhere/vmlinux /bin/sh -c 'echo hi'",
                        Pattern.compile("kernel /nowhere/vmlinux does not exist or is not a file\n"));
            }
            assertTrue(p.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), "krun shell exits at end of input; output:\n"
                    + out.text());
        } finally {
            p.destroyForcibly();
        }
        assertFalse(out.text().contains("Exception"), out.text());
        assertFalse(err.text().contains("Exception"), err.text());
    }

    @Test
    void shellInAProfileWithoutConsoleIsOneLineError(@TempDir Path watched) throws Exception {
        KrunProcess.Result r = KrunProcess.run(null, 60, "shell");

        assertEquals(2, r.status(), r.toString());
        assertEquals("krun: profile default has no shell (try 'krun --profile full shell')\n", r.err(), r.toString());
        assertFalse(Files.exists(watched.resolve("load")));
    }

    @Test
    void runInTheFullProfileWorksWithTheConsoleOutOfTheWay(@TempDir Path watched) throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing");
        // A configuration in the watched folder must not start a VM beside a one-off run.
        Files.writeString(watched.resolve("org.krun.vm-other.cfg"), "kernel=" + probe() + "\ncommand=fast-guest\n"
                + "kernelArgs=probe.wait\nmemoryMib=64\n");
        Process p = start(watched, "--profile", "full", "run", "--mem", "64", "--kernel", probe().toString(),
                "--kernel-arg", "probe.say=one-off", "--", "fast-guest");
        p.getOutputStream().close();
        Collector out = new Collector(p.getInputStream());
        Collector err = new Collector(p.getErrorStream());
        assertTrue(p.waitFor(WAIT.toSeconds(), TimeUnit.SECONDS), () -> out.text() + err.text());

        // In pipes mode the guest's console (what probe.elf writes) goes to stderr.
        Matcher devices = Pattern.compile("one-off\ndevices:((?: \\d+)+)\n").matcher(err.text());
        assertTrue(devices.find(), () -> "stdout:\n" + out.text() + "stderr:\n" + err.text());
        int found = devices.group(1).trim().split(" ").length;
        assertEquals(found, p.exitValue(), "probe.elf exits with the number of devices it found");
        assertFalse(out.text().contains("Gogo"), out.text());
        assertFalse(err.text().contains("waiting"), "no configured VM ran: " + err.text());
    }
}
