package org.krun.device.snd.internal;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.junit.jupiter.api.Assumptions;

/**
 * A PulseAudio server of the test's own (Debian's {@code pulseaudio}; tests that need it are skipped where it
 * is not installed): a unix socket in {@code dir}, anonymous access, one null sink {@code krun_test} of 44.1 kHz
 * S16LE stereo, and {@code parec} of its monitor into a file on request. Both processes end with {@link #close()}.
 */
final class PulseServer implements AutoCloseable {

    final Path dir;
    final String address;
    private final Process server;
    private Process parec;

    PulseServer(Path dir) throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/pulseaudio")) && Files.isExecutable(Path.of("/usr/bin/parec")),
                "PulseAudio (pulseaudio, pulseaudio-utils) is not installed: the pulse backend test is SKIPPED");
        Assumptions.assumeTrue(PulseSimple.unavailable() == null, PulseSimple.unavailable());
        this.dir = dir;
        Path socket = dir.resolve("native");
        ProcessBuilder pb = new ProcessBuilder("pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
                "--use-pid-file=no",
                // PulseAudio 16 as root here loses memfd blocks ("Cannot send block reference with
                // non-registered memfd ID", its issue 824) and the monitor then records silence: no shared memory.
                "--disable-shm=yes", "-L", "module-native-protocol-unix socket=" + socket + " auth-anonymous=1",
                "-L", "module-null-sink sink_name=krun_test rate=44100 format=s16le channels=2")
                .redirectErrorStream(true).redirectOutput(dir.resolve("pulseaudio.log").toFile());
        Map<String, String> env = pb.environment();
        env.put("HOME", dir.toString());
        env.put("XDG_RUNTIME_DIR", dir.toString());
        env.put("PULSE_RUNTIME_PATH", dir.toString());
        server = pb.start();
        for (int i = 0; i < 100 && !Files.exists(socket); i++) {
            Thread.sleep(50);
        }
        assertTrue(Files.exists(socket), "the server's socket: " + Files.readString(dir.resolve("pulseaudio.log")));
        address = "unix:" + socket;
    }

    /** Starts recording the null sink's monitor (S16LE stereo 44.1 kHz, raw) into {@code file}. */
    void record(Path file) throws Exception {
        parec = new ProcessBuilder("parec", "--server=" + address, "-d", "krun_test.monitor", "--format=s16le",
                "--rate=44100", "--channels=2", "--raw", "--latency-msec=20").redirectOutput(file.toFile())
                .redirectError(dir.resolve("parec.log").toFile()).start();
        Thread.sleep(500);
    }

    /** Ends the recording. */
    void stopRecording() throws Exception {
        if (parec != null) {
            parec.destroy();
            parec.waitFor();
            parec = null;
        }
    }

    @Override
    public void close() throws Exception {
        stopRecording();
        server.destroy();
        server.waitFor();
    }
}
