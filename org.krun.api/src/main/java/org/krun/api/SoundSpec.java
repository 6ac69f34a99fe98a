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
 * once it ends, or when the guest records in another format than the file's).
 *
 * @param backend {@code null} or {@code wav}
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

    public SoundSpec {
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(playbackFile, "playbackFile");
        Objects.requireNonNull(captureFile, "captureFile");
        switch (backend) {
            case NULL -> {
                if (playbackFile.isPresent()) {
                    throw new VmConfigException("sound backend 'null' discards playback: it takes no playback file");
                }
            }
            case WAV -> {
                if (playbackFile.isEmpty()) {
                    throw new VmConfigException("sound backend 'wav' needs a file: wav:FILE");
                }
            }
            default -> throw new VmConfigException("unknown sound backend '" + backend + "': expected null or wav:FILE");
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
     * Parses {@code krun run --sound} and Config Admin's {@code sound}: {@code null}, {@code wav:FILE}, each
     * optionally followed by {@code ,capture=FILE}. A value that means nothing is a one-line
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
        if (head.startsWith(WAV + ":") && head.length() > WAV.length() + 1) {
            return wav(Path.of(head.substring(WAV.length() + 1)), capture);
        }
        if (head.equals(WAV) || head.equals(WAV + ":")) {
            throw new VmConfigException("the wav backend needs a file: wav:FILE");
        }
        throw new VmConfigException("unknown backend '" + head + "' (expected null or wav:FILE)");
    }

    @Override
    public String type() {
        return TYPE;
    }
}
