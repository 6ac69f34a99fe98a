package org.krun.device.snd.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;

/**
 * The pulse backend against a real PulseAudio server the test starts (Debian's {@code pulseaudio}, with a
 * sink of 44.1 kHz S16LE stereo whose output it reads, see {@link PulseServer}, and a unix socket in a temporary
 * folder; skipped where it is not installed): periods played at their real rate reach the sink sample for sample,
 * every one and in order, capture records the sink's monitor, and without a server the backend is a one-line
 * error.
 */
class PulseBackendTest {

    /** 100 ms periods: 4,410 frames of 4 bytes. */
    static final PcmParams S16_STEREO_44K = new PcmParams(4 * 17640, 17640, 2, Snd.FMT_S16, 44100);

    @TempDir
    Path dir;

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

    /**
     * Asserts that the sink's output holds {@code clip}'s frames, every one, in order, and returns how many frames
     * of silence it found between the clip's first and last sound (the sink plays silence where the stream ran
     * dry, on a busy host). Silent frames are set aside on both sides (the clip holds one, its first; the sink
     * adds silence before, after and in any gap).
     */
    static int assertSinkHolds(byte[] sink, byte[] clip, PulseServer server) throws java.io.IOException {
        int[] heard = sounding(sink);
        int[] played = sounding(clip);
        assertTrue(heard.length > 0, "the sink rendered only silence");
        if (!Arrays.equals(played, heard)) {
            int missing = SndLinuxGuestTest.assertRunsOfFrames(heard, played);
            throw new AssertionError("the sink rendered " + heard.length + " of the clip's " + played.length
                    + " sounding frames (" + missing + " missing, in order" + SndLinuxGuestTest.gaps(heard, played)
                    + "); the sink's drops: " + server.sinkDrops());
        }
        java.nio.IntBuffer all = java.nio.ByteBuffer.wrap(sink).order(java.nio.ByteOrder.LITTLE_ENDIAN).asIntBuffer();
        int first = -1;
        int last = -1;
        for (int i = 0; i < all.limit(); i++) {
            if (all.get(i) != 0) {
                last = i;
                if (first < 0) {
                    first = i;
                }
            }
        }
        return (last - first + 1) - heard.length;
    }

    /** The frames (S16 stereo, as one int each) that are not silence, in order. */
    static int[] sounding(byte[] b) {
        java.nio.IntBuffer all = java.nio.ByteBuffer.wrap(b).order(java.nio.ByteOrder.LITTLE_ENDIAN).asIntBuffer();
        return java.util.stream.IntStream.range(0, all.limit()).map(all::get).filter(f -> f != 0).toArray();
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
        try (PulseServer server = new PulseServer(dir)) {
            playAndCapture(server);
        }
    }

    private void playAndCapture(PulseServer server) throws Exception {
        Path recorded = dir.resolve("sink.raw");
        server.record(recorded);
        PulseBackend pulse = new PulseBackend(server.address);
        byte[] clip = pattern(10); // 10 periods of 100 ms
        ByteArrayOutputStream captured = new ByteArrayOutputStream();
        int period = S16_STEREO_44K.periodBytes();
        long start = System.nanoTime();
        // Capture goes on for 4 s: the clip's middle reaches it about 1.5 s in (the server's buffering both
        // ways), later on a busy host.
        for (int p = 0; p < 40; p++) {
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
        server.stopRecording();
        assertEquals(clip.length, pulse.playedBytes(), "the bytes the server accepted");

        byte[] sink = Files.readAllBytes(recorded);
        int middle = clip.length / 2;
        byte[] got = captured.toByteArray();
        int capturedAt = indexOf(got, Arrays.copyOfRange(clip, middle, middle + 4 * 64));
        int gaps = assertSinkHolds(sink, clip, server);
        System.out.println("[pulse] the sink rendered " + sink.length + " bytes holding the clip with " + gaps
                + " frames of silence inside; capture got " + got.length + " bytes, the clip's middle at byte " + capturedAt);
        assertTrue(capturedAt >= 0, "capture recorded the clip from the sink's monitor (the default source)");
    }

    /**
     * A stream that runs dry mid-clip (a guest that falls behind: its periods come 600 ms late, then on time
     * again) reaches the sink whole: every frame in order, silence in the gap. A null sink's monitor lost
     * frames here (issue 17; see {@link PulseServer}).
     */
    @Test
    void aStreamThatRunsDryStillReachesTheSinkWhole() throws Exception {
        try (PulseServer server = new PulseServer(dir)) {
            Path recorded = dir.resolve("sink.raw");
            server.record(recorded);
            PulseBackend pulse = new PulseBackend(server.address);
            byte[] clip = pattern(20);
            int period = S16_STEREO_44K.periodBytes();
            long next = System.nanoTime();
            for (int p = 0; p < 20; p++) {
                next += p == 8 ? 700_000_000L : 100_000_000L;
                Thread.sleep(Math.max(0, (next - System.nanoTime()) / 1_000_000));
                pulse.play(0, S16_STEREO_44K, Arrays.copyOfRange(clip, p * period, (p + 1) * period));
            }
            pulse.close();
            Thread.sleep(1000);
            server.stopRecording();
            assertEquals(clip.length, pulse.playedBytes(), "the bytes the server accepted");
            int gaps = assertSinkHolds(Files.readAllBytes(recorded), clip, server);
            System.out.println("[pulse] after a 600 ms stall the sink holds the clip whole, with " + gaps
                    + " frames of silence inside");
        }
    }

    @Test
    void withoutAServerTheBackendIsAOneLineError() throws Exception {
        Assumptions.assumeTrue(PulseSimple.unavailable() == null, PulseSimple.unavailable());
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> new PulseBackend("unix:" + dir.resolve("no-server-here")));
        assertTrue(e.getMessage().startsWith("sound backend pulse: no sound server reachable: "), e.getMessage());
        assertEquals(1, e.getMessage().lines().count());
    }
}
