package org.krun.device.snd.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;

/**
 * The pulse backend against a real PulseAudio server the test starts (Debian's {@code pulseaudio}, with a
 * null sink of 44.1 kHz S16LE stereo and a unix socket in a temporary folder; skipped where it is not
 * installed): periods played at their real rate reach the sink sample for sample ({@code parec} of the sink's
 * monitor, compared), capture records the sink's monitor, and without a server the backend is a one-line
 * error.
 */
class PulseBackendTest {

    /** 100 ms periods: 4,410 frames of 4 bytes. */
    static final PcmParams S16_STEREO_44K = new PcmParams(4 * 17640, 17640, 2, Snd.FMT_S16, 44100);

    @TempDir
    Path dir;
    private Process server;
    private Process parec;

    @AfterEach
    void stop() throws Exception {
        for (Process p : new Process[] {parec, server}) {
            if (p != null) {
                p.destroy();
                p.waitFor();
            }
        }
    }

    private String startServer() throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/pulseaudio")) && Files.isExecutable(Path.of("/usr/bin/parec")),
                "PulseAudio (pulseaudio, pulseaudio-utils) is not installed: the pulse backend test is SKIPPED");
        Assumptions.assumeTrue(PulseSimple.unavailable() == null, PulseSimple.unavailable());
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
        return "unix:" + socket;
    }

    /** A second of S16 stereo that no two periods share: a sine on the left, a counter on the right. */
    static byte[] pattern(int periods) {
        byte[] b = new byte[periods * S16_STEREO_44K.periodBytes()];
        for (int f = 0; f < b.length / 4; f++) {
            short l = (short) Math.round(9000 * Math.sin(2 * Math.PI * 523 * f / 44100.0));
            short r = (short) (f * 3 + 1);
            b[4 * f] = (byte) l;
            b[4 * f + 1] = (byte) (l >> 8);
            b[4 * f + 2] = (byte) r;
            b[4 * f + 3] = (byte) (r >> 8);
        }
        return b;
    }

    /** Where the first non-zero frame is, and the 4 frames from there, for a failure message. */
    static String firstSound(byte[] b) {
        java.nio.ShortBuffer s = java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).asShortBuffer();
        for (int i = 0; i + 8 <= s.limit(); i += 2) {
            if (s.get(i) != 0 || s.get(i + 1) != 0) {
                short[] f = new short[8];
                s.get(i, f);
                return "byte " + 2 * i + ": " + Arrays.toString(f);
            }
        }
        return "silence";
    }

    static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i += 4) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    @Test
    void playbackReachesTheSinkSampleForSampleAndCaptureRecordsItsMonitor() throws Exception {
        String address = startServer();
        Path recorded = dir.resolve("parec.raw");
        parec = new ProcessBuilder("parec", "--server=" + address, "-d", "krun_test.monitor", "--format=s16le",
                "--rate=44100", "--channels=2", "--raw", "--latency-msec=20").redirectOutput(recorded.toFile())
                .redirectError(dir.resolve("parec.log").toFile()).start();
        Thread.sleep(500);

        PulseBackend pulse = new PulseBackend(address);
        byte[] clip = pattern(10); // 10 periods of 100 ms
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        int period = S16_STEREO_44K.periodBytes();
        long start = System.nanoTime();
        for (int p = 0; p < 20; p++) {
            if (p < 10) {
                pulse.play(0, S16_STEREO_44K, Arrays.copyOfRange(clip, p * period, (p + 1) * period));
            }
            byte[] in = new byte[period];
            pulse.capture(1, S16_STEREO_44K, in);
            captured.writeBytes(in);
            long next = start + (p + 1) * 100_000_000L;
            Thread.sleep(Math.max(0, (next - System.nanoTime()) / 1_000_000));
        }
        pulse.close(); // drains: the clip has been played into the sink when this returns
        Thread.sleep(1000);
        parec.destroy();
        parec.waitFor();

        // The null sink's monitor may come out of idle a few tens of milliseconds into the clip: the check
        // aligns on frames from the clip's middle and compares everything the monitor holds from the clip.
        byte[] sink = Files.readAllBytes(recorded);
        int middle = clip.length / 2;
        int at = indexOf(sink, Arrays.copyOfRange(clip, middle, middle + 4 * 64));
        byte[] got = captured.toByteArray();
        int capturedAt = indexOf(got, Arrays.copyOfRange(clip, middle, middle + 4 * 64));
        System.out.println("[pulse] parec recorded " + sink.length + " bytes, the clip's middle at byte " + at
                + "; capture got " + got.length + " bytes, the clip's middle at byte " + capturedAt);
        assertTrue(at >= 0, "the sink's monitor holds the clip's middle: " + firstSound(sink) + " vs the clip's "
                + firstSound(clip));
        int clipStart = at - middle; // where the clip's first frame is, or would be, in the recording
        int from = Math.max(0, -clipStart);
        assertTrue(from <= clip.length / 10, "the monitor missed " + from + " bytes of the clip's start");
        assertTrue(sink.length >= clipStart + clip.length, "the monitor holds the clip's end");
        assertArrayEquals(Arrays.copyOfRange(clip, from, clip.length),
                Arrays.copyOfRange(sink, clipStart + from, clipStart + clip.length), "sample for sample");
        assertTrue(capturedAt >= 0, "capture recorded the clip from the sink's monitor (the default source)");
    }

    @Test
    void withoutAServerTheBackendIsAOneLineError() throws Exception {
        Assumptions.assumeTrue(PulseSimple.unavailable() == null, PulseSimple.unavailable());
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> new PulseBackend("unix:" + dir.resolve("no-server-here")));
        assertTrue(e.getMessage().startsWith("sound backend pulse: no sound server reachable: "), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
        assertEquals(List.of(), List.of());
    }
}
