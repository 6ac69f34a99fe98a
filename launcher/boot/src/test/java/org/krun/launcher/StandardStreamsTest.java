package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** krun's standard streams as a made-up /proc/PID shows them (fd links and fdinfo flags). */
class StandardStreamsTest {

    @TempDir
    Path dir;

    private static final Path JAVA_HOME = Path.of("/opt/jdk-25");
    private static final Path LAUNCHER = Path.of("/srv/krun/launcher/boot/target");

    /** fds 0-2 pointing at {@code targets} (null: closed), opened with {@code flags} (octal, as fdinfo has them). */
    private Path proc(String[] targets, String[] flags) throws IOException {
        Path proc = dir.resolve("proc-" + System.nanoTime());
        Files.createDirectories(proc.resolve("fd"));
        Files.createDirectories(proc.resolve("fdinfo"));
        for (int fd = 0; fd < 3; fd++) {
            if (targets[fd] != null) {
                Files.createSymbolicLink(proc.resolve("fd/" + fd), Path.of(targets[fd]));
                Files.writeString(proc.resolve("fdinfo/" + fd), "pos:\t0\nflags:\t" + flags[fd] + "\nmnt_id:\t22\n");
            }
        }
        return proc;
    }

    private StandardStreams inspect(String[] targets, String[] flags) throws IOException {
        return StandardStreams.inspect(proc(targets, flags), JAVA_HOME, LAUNCHER);
    }

    @Test
    void pipesTerminalsAndFilesAreTheCallersStreams() throws IOException {
        StandardStreams s = inspect(new String[] {"pipe:[101]", "/dev/pts/3", "/home/u/err.log"},
                new String[] {"0100000", "0100002", "0102001"});
        assertFalse(s.stdinClosed());
        assertEquals(Optional.empty(), s.error());
        assertFalse(inspect(new String[] {"/home/u/input.bin", "socket:[7]", "/dev/null"},
                new String[] {"0100000", "02", "01"}).stdinClosed());
    }

    @Test
    void aClosedStdinIsEndOfFileWhetherTheJvmReusedItsNumberOrNot() throws IOException {
        StandardStreams modules = inspect(new String[] {"/opt/jdk-25/lib/modules", "pipe:[1]", "pipe:[2]"},
                new String[] {"0100000", "01", "01"});
        assertTrue(modules.stdinClosed(), "the JDK's lib/modules on fd 0 is the JVM's, not the caller's");
        assertEquals(Optional.empty(), modules.error());
        assertTrue(inspect(new String[] {LAUNCHER + "/lib/org.apache.felix.framework-7.0.5.jar", "pipe:[1]", "pipe:[2]"},
                new String[] {"0100000", "01", "01"}).stdinClosed());
        assertTrue(inspect(new String[] {"/root/.cache/krun/aot/krun-1-2.aot", "pipe:[1]", "pipe:[2]"},
                new String[] {"0100000", "01", "01"}).stdinClosed());
        assertTrue(inspect(new String[] {null, "pipe:[1]", "pipe:[2]"}, new String[] {null, "01", "01"}).stdinClosed());
    }

    @Test
    void aClosedOrReadOnlyStdoutOrStderrIsAnError() throws IOException {
        assertTrue(inspect(new String[] {"pipe:[1]", "/opt/jdk-25/lib/modules", "pipe:[2]"},
                new String[] {"0", "0100000", "01"}).error().orElseThrow().startsWith("standard output (fd 1) is closed"));
        assertTrue(inspect(new String[] {"pipe:[1]", null, "pipe:[2]"},
                new String[] {"0", null, "01"}).error().orElseThrow().startsWith("standard output (fd 1) is closed"));
        assertTrue(inspect(new String[] {"pipe:[1]", "pipe:[2]", "/opt/jdk-25/lib/modules"},
                new String[] {"0", "01", "0100000"}).error().orElseThrow().startsWith("standard error (fd 2) is closed"));
        assertTrue(inspect(new String[] {"pipe:[1]", "/home/u/file", "pipe:[2]"},
                new String[] {"0", "0100000", "01"}).error().orElseThrow().contains("only for reading"));
    }

    @Test
    void thisProcessHasItsStreams() {
        StandardStreams s = StandardStreams.ofThisProcess(LAUNCHER);
        assertEquals(Optional.empty(), s.error(), "the build runs tests with stdout and stderr open");
    }
}
