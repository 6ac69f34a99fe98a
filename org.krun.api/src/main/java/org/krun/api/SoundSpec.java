package org.krun.api;

import java.nio.file.Path;
import java.util.Objects;
import java.util.Optional;

/**
 * A virtio sound device (virtio-snd, virtio 1.2 §5.14): one playback and one capture stream the guest's
 * ALSA driver ({@code CONFIG_SND_VIRTIO}) sees as a sound card. Periods are consumed at the stream's real
 * rate whatever the backend, so a two-second clip takes two seconds to play.
 *
 * <p>Backends: {@code null} discards playback and captures silence; {@code wav} writes playback into
 * {@code playbackFile} (a RIFF WAVE file in the format the guest chose, its header completed when the VM
 * ends) and, with {@code captureFile}, gives the guest that WAV file's samples when it records (silence
 * once it ends, or when the guest records in another format than the file's). {@code pulse} plays to and
 * records from the host's sound server (PulseAudio, or PipeWire's pulse server; {@code $PULSE_SERVER} picks
 * another than the default), through its client library {@code libpulse-simple.so.0}; making the VM fails
 * with a one-line error when no server is reachable.
 *
 * @param backend {@code null}, {@code wav} or {@code pulse}
 * @param playbackFile where the {@code wav} backend writes playback; empty for the {@code null} backend
 * @param captureFile a WAV file whose samples the guest records; empty for silence
 * @since 1.5
 */
public record SoundSpec(String backend, Optional<Path> playbackFile, Optional<Path> captureFile) implements DeviceSpec {

    /** The device type of the sound device. */
    public static final String TYPE = "snd";
    /** The backend that discards playback and records silence. */
    public static final String NULL = "null";
    /** The backend that writes playback into a WAV file and records from one. */
    public static final String WAV = "wav";
    /** The host's sound server (PulseAudio, or PipeWire's pulse server), through its client library. */
    public static final String PULSE = "pulse";

    public SoundSpec {
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(playbackFile, "playbackFile");
        Objects.requireNonNull(captureFile, "captureFile");
        switch (backend) {
            case NULL, PULSE -> {
                if (playbackFile.isPresent() || (backend.equals(PULSE) && captureFile.isPresent())) {
                    throw new VmConfigException("sound backend '" + backend + "' takes no files");
                }
            }
            case WAV -> {
                if (playbackFile.isEmpty()) {
                    throw new VmConfigException("sound backend 'wav' needs a file: wav:FILE");
                }
            }
            default -> throw new VmConfigException("unknown sound backend '" + backend + "': expected null, wav:FILE or pulse");
        }
    }

    /** Discards playback, records silence. */
    public static SoundSpec silent() {
        return new SoundSpec(NULL, Optional.empty(), Optional.empty());
    }

    /** Playback into WAV file {@code playback}; recording from WAV file {@code capture} when not null. */
    public static SoundSpec wav(Path playback, Path capture) {
        return new SoundSpec(WAV, Optional.of(playback), Optional.ofNullable(capture));
    }

    /**
     * Parses {@code krun run --sound} and Config Admin's {@code sound}: {@code null}, {@code wav:FILE} (each
     * optionally followed by {@code ,capture=FILE}) or {@code pulse}. A value that means nothing is a one-line
     * {@link VmConfigException} (without the option's name: the caller adds it).
     */
    public static SoundSpec parse(String value) {
        Objects.requireNonNull(value, "value");
        String[] parts = value.split(",", -1);
        String head = parts[0];
        Path capture = null;
        for (int i = 1; i < parts.length; i++) {
            String p = parts[i];
            if (p.startsWith("capture=") && p.length() > "capture=".length()) {
                if (capture != null) {
                    throw new VmConfigException("capture= given twice");
                }
                capture = Path.of(p.substring("capture=".length()));
            } else {
                throw new VmConfigException("unknown option '" + p + "' (expected capture=FILE)");
            }
        }
        if (head.equals(NULL)) {
            return new SoundSpec(NULL, Optional.empty(), Optional.ofNullable(capture));
        }
        if (head.equals(PULSE)) {
            return new SoundSpec(PULSE, Optional.empty(), Optional.ofNullable(capture));
        }
        if (head.startsWith(WAV + ":") && head.length() > WAV.length() + 1) {
            return wav(Path.of(head.substring(WAV.length() + 1)), capture);
        }
        if (head.equals(WAV) || head.equals(WAV + ":")) {
            throw new VmConfigException("the wav backend needs a file: wav:FILE");
        }
        throw new VmConfigException("unknown backend '" + head + "' (expected null, wav:FILE or pulse)");
    }

    @Override
    public String type() {
        return TYPE;
    }
}
