package org.krun.device.snd.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;
import java.util.Map;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.SoundSpec;
import org.krun.api.VmExit;
import org.krun.device.virtiofs.internal.FsFactory;
import org.krun.vmm.testing.LinuxGuest;
import org.krun.vmm.testing.RecordingFactory;

/**
 * One boot of krun's Linux guest (sound/virtio built in) with a Debian bookworm root that has alsa-utils
 * (guest/fixtures/debian-rootfs.sh), shared read-only with a writable layer of the guest's own, and a
 * virtio-snd with the wav backend:
 * <ul>
 * <li>the guest's ALSA sees the card ({@code /proc/asound}, {@code aplay -l});
 * <li>{@code aplay -D hw:0,0} of a known 2 s S16_LE stereo 44.1 kHz clip writes a host WAV file with the same
 * header format and exactly the same samples (hw:0,0 admits no conversion: the guest plays the file's format,
 * which the device offers, so none is needed), and it takes real time: the device's first to last period
 * spans about the clip's length less one period, and aplay's own run at least the clip's length;
 * <li>{@code arecord -D hw:0,0} for 1 s in the capture file's format records the capture file's samples
 * from its start, in order: all of them while the guest keeps up, runs of them each later than the last when it
 * does not (a guest that reads too late loses periods, as with real hardware; on a busy kvm-pvm host it does).
 * </ul>
 * Timing figures are printed, not asserted, beyond a generous sanity bound (the host may be busy).
 */
class SndLinuxGuestTest {

    static final int RATE = 44100;
    static final int CHANNELS = 2;
    static final int FRAME = 4;

    /** {@code seconds} of S16_LE stereo: a sine on the left, a ramp on the right (so any reordering shows). */
    static byte[] samples(double seconds, double hz, int seed) {
        int frames = (int) Math.round(seconds * RATE);
        ByteBuffer b = ByteBuffer.allocate(frames * FRAME).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < frames; i++) {
            b.putShort((short) Math.round(12000 * Math.sin(2 * Math.PI * hz * i / RATE)));
            b.putShort((short) (i * 7 + seed));
        }
        return b.array();
    }

    static byte[] wav(byte[] data) {
        byte[] h = Wav.header(new PcmParams(0, 0, CHANNELS, Snd.FMT_S16, RATE), data.length);
        byte[] out = Arrays.copyOf(h, h.length + data.length);
        System.arraycopy(data, 0, out, h.length, data.length);
        return out;
    }

    /** The Debian fixture with alsa-utils (guest/fixtures/debian-rootfs.sh); skips where KVM or debootstrap is missing. */
    private static Path debianRoot() throws Exception {
        LinuxGuest.assumeKvm();
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/sbin/debootstrap")),
                "debootstrap is not installed: the Debian sound test is SKIPPED");
        Path repo = Path.of(System.getProperty("user.dir")).getParent();
        return Path.of(run(repo.resolve("guest/fixtures/debian-rootfs.sh").toString()).lines()
                .reduce((a, b) -> b).orElseThrow());
    }

    private static String run(String... cmd) throws Exception {
        Process p = new ProcessBuilder(cmd).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        String err = new String(p.getErrorStream().readAllBytes(), StandardCharsets.UTF_8);
        if (p.waitFor() != 0) {
            throw new IllegalStateException(String.join(" ", cmd) + " failed: " + err);
        }
        return out;
    }

    @Test
    void aplayAndArecordInADebianGuestGoThroughTheWavBackendInRealTime(@TempDir Path dir) throws Exception {
        Path debian = debianRoot();

        Path share = Files.createDirectories(dir.resolve("share"));
        byte[] clip = samples(2.0, 440, 0);
        Files.write(share.resolve("clip.wav"), wav(clip));
        byte[] source = samples(1.5, 1000, 12345);
        Path capture = dir.resolve("capture.wav");
        Files.write(capture, wav(source));
        Path played = dir.resolve("played.wav");

        String script = String.join("\n",
                "echo CARDS=$(cat /proc/asound/cards | head -1)",
                "aplay -l 2>&1 | grep -q '^card 0:' && echo APLAY_L=card0",
                "s=$(date +%s%N)",
                "aplay -q -D hw:0,0 /mnt/snd/clip.wav; echo APLAY_STATUS=$?",
                "e=$(date +%s%N); echo APLAY_MS=$(( (e - s) / 1000000 ))",
                "arecord -q -D hw:0,0 -f S16_LE -c 2 -r 44100 -d 1 /mnt/snd/rec.wav; echo ARECORD_STATUS=$?",
                "read l < /proc/cmdline; case \"$l\" in *virtio_snd.msg_timeout_ms=10000*) echo TIMEOUT_ARG=yes;; esac",
                "echo '--- dmesg'; dmesg | grep -i -E 'snd|sound|virtio' ; echo '--- end'");
        RecordingFactory<VirtioSnd> factory = new RecordingFactory<>(new SndFactory(), VirtioSnd.class);
        long start = System.nanoTime();
        LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(factory, new FsFactory()),
                LinuxGuest.config("/bin/sh", "-c", script).root(debian).ephemeralRoot(true).memoryMib(512)
                        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                        .device(new FsShareSpec("snd", share, false))
                        .mount(new GuestMount("snd", "/mnt/snd", "virtiofs", ""))
                        .device(SoundSpec.wav(played, capture)),
                null, Duration.ofMinutes(10));
        long vmMillis = (System.nanoTime() - start) / 1_000_000;
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        Map<String, String> seen = r.out().lines().filter(l -> l.matches("[A-Z_]+=.*"))
                .collect(Collectors.toMap(l -> l.substring(0, l.indexOf('=')), l -> l.substring(l.indexOf('=') + 1),
                        (a, b) -> b));
        assertEquals(1, factory.created().size());
        VirtioSnd snd = factory.created().get(0);
        long[] playback = snd.consumed(VirtioSnd.PLAYBACK);
        long[] recorded = snd.consumed(VirtioSnd.CAPTURE);
        System.out.println("[snd guest test] " + seen + "; device: playback " + playback[0] + " bytes, first to last period "
                + playback[1] / 1_000_000 + " ms; capture " + recorded[0] + " bytes in " + recorded[1] / 1_000_000
                + " ms; VM " + vmMillis + " ms");

        assertTrue(seen.getOrDefault("CARDS", "").contains("VirtIO SoundCard"), "ALSA sees the card: " + r);
        assertEquals("card0", seen.get("APLAY_L"), r.toString());
        assertEquals("0", seen.get("APLAY_STATUS"), r.toString());
        assertEquals("0", seen.get("ARECORD_STATUS"), r.toString());
        assertEquals("yes", seen.get("TIMEOUT_ARG"), "the device's kernel argument: " + r);

        // Playback: the host file is a WAV of the clip's format holding the clip's samples, in order, then
        // silence: aplay pads its last chunk with silence to a whole period, and the device plays whole periods.
        byte[] out = Files.readAllBytes(played);
        byte[] expectedHeader = wav(clip);
        assertArrayEquals(Arrays.copyOfRange(expectedHeader, 0, 4), Arrays.copyOfRange(out, 0, 4));
        assertArrayEquals(Arrays.copyOfRange(expectedHeader, 8, 36), Arrays.copyOfRange(out, 8, 36),
                "WAVE, fmt: PCM, 2 channels, 44100 Hz, 16 bits");
        int dataBytes = ByteBuffer.wrap(out).order(ByteOrder.LITTLE_ENDIAN).getInt(40);
        assertEquals(out.length - Wav.HEADER_SIZE, dataBytes, "the header's data size is the file's");
        assertTrue(dataBytes >= clip.length && dataBytes - clip.length < VirtioSnd.MAX_BUFFER_BYTES,
                "sample bytes " + dataBytes + " for a clip of " + clip.length);
        assertArrayEquals(clip, Arrays.copyOfRange(out, Wav.HEADER_SIZE, Wav.HEADER_SIZE + clip.length),
                "the same samples, in order");
        byte[] padding = Arrays.copyOfRange(out, Wav.HEADER_SIZE + clip.length, out.length);
        assertArrayEquals(new byte[padding.length], padding, "then only silence (aplay's padding of its last period)");
        // Real time: 2 s of samples; the periods' ends span the clip less one period.
        assertEquals(dataBytes, playback[0]);
        assertTrue(playback[1] > 1_500_000_000L && playback[1] < 10_000_000_000L,
                "playback periods spread over " + playback[1] / 1_000_000 + " ms for a 2,000 ms clip");
        assertTrue(Long.parseLong(seen.get("APLAY_MS")) >= 1900, "aplay ran " + seen.get("APLAY_MS") + " ms");

        // Capture: arecord's file holds the capture file's samples from its start, in order. A guest that does
        // not read in time (an overrun: arecord restarts the stream) loses the periods the device recorded
        // meanwhile, as with real hardware: then the file is runs of the source, each later in it than the last,
        // and silence if they reach the source's end (the device records silence after the 1.5 s file; seen on a
        // kvm-pvm host so busy that aplay took 26.8 s for the 2 s clip).
        byte[] rec = Files.readAllBytes(share.resolve("rec.wav"));
        int recData = rec.length - Wav.HEADER_SIZE;
        assertEquals(RATE * FRAME, recData, "1 s of S16_LE stereo");
        int skipped = assertRunsOf(Arrays.copyOfRange(rec, Wav.HEADER_SIZE, rec.length), source);
        System.out.println("[snd guest test] arecord's second is the capture file's from its start"
                + (skipped == 0 ? ", without a gap" : ", less " + skipped + " bytes the guest did not read in time"));
    }

    /**
     * Asserts that {@code got} is {@code source} from its start, or runs of it each later than the last (frames
     * skipped, never repeated or made up), then perhaps silence once the runs reach the source's end; returns the
     * bytes skipped.
     */
    static int assertRunsOf(byte[] got, byte[] source) {
        int at = 0;
        int skipped = 0;
        int i = 0;
        while (i < got.length) {
            if (at + FRAME <= source.length && Arrays.equals(got, i, i + FRAME, source, at, at + FRAME)) {
                i += FRAME;
                at += FRAME;
                continue;
            }
            int probe = Math.min(64 * FRAME, got.length - i);
            int next = -1;
            for (int j = at + FRAME; j + probe <= source.length; j += FRAME) {
                if (Arrays.equals(got, i, i + probe, source, j, j + probe)) {
                    next = j;
                    break;
                }
            }
            if (next < 0 && Arrays.equals(got, i, got.length, new byte[got.length - i], 0, got.length - i)) {
                // The rest is silence: the device got to the capture file's end (it records silence after it), the
                // guest having skipped enough of it on a busy host.
                return skipped + source.length - at;
            }
            assertTrue(next >= 0, "recorded bytes " + i + "... are not the capture file's after its byte " + at);
            skipped += next - at;
            at = next;
        }
        return skipped;
    }

    /**
     * Asserts that {@code heard} is runs of {@code played}, in order, each later than the last (frames missing,
     * never repeated, reordered or made up); returns how many of {@code played} were not heard, before, between
     * and after the runs.
     */
    static int assertRunsOfFrames(int[] heard, int[] played) {
        int at = 0;
        int missing = 0;
        for (int i = 0; i < heard.length; i++) {
            int j = at;
            while (j < played.length && played[j] != heard[i]) {
                j++;
            }
            assertTrue(j < played.length, "heard frame " + i + " (" + Integer.toHexString(heard[i])
                    + ") is not among the clip's frames after its " + at + "th");
            missing += j - at;
            at = j + 1;
        }
        return missing + played.length - at;
    }

    /** For a failure message: where (the clip's frame) and how many frames are missing after the first heard one. */
    static String gaps(int[] heard, int[] played) {
        StringBuilder sb = new StringBuilder();
        int at = 0;
        for (int i = 0; i < heard.length; i++) {
            int j = at;
            while (j < played.length && played[j] != heard[i]) {
                j++;
            }
            if (j > at && i > 0) {
                sb.append(", ").append(j - at).append(" before the clip's frame ").append(j);
            }
            at = j + 1;
        }
        return sb.toString();
    }

    /**
     * A second boot, with the pulse backend on a PulseAudio server the test starts (a 44.1 kHz S16LE stereo sink
     * whose output the test reads, see {@link PulseServer}): {@code aplay -D hw:0,0} of the same clip reaches the
     * sink, every frame of it and in order (silence set aside: the sink plays silence before and after, and where
     * the stream ran dry on a busy host), and the server accepted every byte the device played. The device is made
     * as {@link SndFactory} makes it for {@code --sound pulse}, with the test's server instead of the default one.
     */
    @Test
    void aplayInADebianGuestReachesAPulseAudioSink(@TempDir Path dir) throws Exception {
        Path debian = debianRoot();
        try (PulseServer pulse = new PulseServer(Files.createDirectories(dir.resolve("pulse")))) {
            Path share = Files.createDirectories(dir.resolve("share"));
            byte[] clip = samples(2.0, 440, 0);
            Files.write(share.resolve("clip.wav"), wav(clip));
            Path recorded = dir.resolve("sink.raw");
            pulse.record(recorded);
            String server = pulse.address;
            java.util.List<PulseBackend> backends = new java.util.concurrent.CopyOnWriteArrayList<>();
            java.util.List<VirtioSnd> devices = new java.util.concurrent.CopyOnWriteArrayList<>();
            org.krun.spi.virtio.VirtioDeviceFactory factory = new org.krun.spi.virtio.AbstractDeviceFactory<SoundSpec>(
                    SoundSpec.TYPE, SoundSpec.class) {
                @Override
                protected org.krun.spi.virtio.VirtioDevice newDevice(SoundSpec spec) {
                    PulseBackend backend = new PulseBackend(server);
                    VirtioSnd snd = new VirtioSnd(backend, PcmClock.system("krun-snd-timer"));
                    backends.add(backend);
                    devices.add(snd);
                    return snd;
                }
            };
            String script = String.join("\n",
                    "for d in /sys/bus/virtio/devices/*; do read id < $d/device; echo DEVICE=$id $(readlink $d/driver); done",
                    "cat /proc/asound/cards",
                    "s=$(date +%s%N)",
                    "aplay -q -D hw:0,0 /mnt/snd/clip.wav; echo APLAY_STATUS=$?",
                    "e=$(date +%s%N); echo APLAY_MS=$(( (e - s) / 1000000 ))",
                    "echo '--- dmesg'; dmesg | grep -i -E 'snd|sound|virtio'; echo '--- end'");
            LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(factory, new FsFactory()),
                    LinuxGuest.config("/bin/sh", "-c", script).root(debian).ephemeralRoot(true).memoryMib(512)
                            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
                            .device(new FsShareSpec("snd", share, true))
                            .mount(new GuestMount("snd", "/mnt/snd", "virtiofs", "ro"))
                            .device(new SoundSpec(SoundSpec.PULSE, java.util.Optional.empty(), java.util.Optional.empty())),
                    null, Duration.ofMinutes(10));
            // The device closed with the VM, its backend draining into the server; the sink renders the rest in real time.
            Thread.sleep(1000);
            pulse.stopRecording();
            assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
            assertEquals(1, devices.size());
            long consumed = devices.get(0).consumed(VirtioSnd.PLAYBACK)[0];
            long accepted = backends.get(0).playedBytes();
            System.out.println("[snd guest test, pulse] " + r.out().lines().filter(l -> l.startsWith("APLAY")).toList()
                    + "; the device played " + consumed + " bytes, the server accepted " + accepted + ", the sink rendered "
                    + Files.size(recorded));
            assertTrue(r.out().contains("APLAY_STATUS=0"), r.toString());
            assertTrue(consumed >= clip.length, "the device played " + consumed + " bytes of a " + clip.length + "-byte clip");
            assertEquals(consumed, accepted, "the bytes the server accepted from the backend");
            // What sounds at the sink is the clip's frames (each frame of it is unique: a sine on the left, a counter
            // on the right), every one, in order.
            int gaps = PulseBackendTest.assertSinkHolds(Files.readAllBytes(recorded), clip, pulse);
            System.out.println("[snd guest test, pulse] the sink rendered the clip's frames, all in order, with " + gaps
                    + " frames of silence between its first and last sound");
        }
    }
}
