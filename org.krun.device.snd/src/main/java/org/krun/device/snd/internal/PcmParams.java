package org.krun.device.snd.internal;

/**
 * The parameters PCM_SET_PARAMS chose for a stream (virtio 1.2 §5.14.6.6.4), already checked against what
 * the stream offers and the device's bounds: what the stream's timing and the backend's format follow.
 *
 * @param bufferBytes the size of the driver's hardware buffer
 * @param periodBytes the size of one period
 * @param channels 1 or 2
 * @param format a {@code Snd.FMT_*} code this device offers
 * @param rateHz frames per second
 */
record PcmParams(int bufferBytes, int periodBytes, int channels, int format, int rateHz) {

    /** Bytes of one sample in {@code format} (every format offered is byte-aligned). */
    static int sampleBytes(int format) {
        return switch (format) {
            case Snd.FMT_U8 -> 1;
            case Snd.FMT_S16 -> 2;
            case Snd.FMT_S32, Snd.FMT_FLOAT -> 4;
            default -> throw new IllegalArgumentException("format " + format + " not offered");
        };
    }

    int sampleBytes() {
        return sampleBytes(format);
    }

    int frameBytes() {
        return sampleBytes() * channels;
    }

    long bytesPerSecond() {
        return (long) frameBytes() * rateHz;
    }

    /** How long {@code bytes} of this stream take to play at its rate, in nanoseconds. */
    long nanosFor(long bytes) {
        return bytes * 1_000_000_000L / bytesPerSecond();
    }

    /** For logs: {@code S16 2ch 44100 Hz}. */
    String describe() {
        String f = switch (format) {
            case Snd.FMT_U8 -> "U8";
            case Snd.FMT_S16 -> "S16_LE";
            case Snd.FMT_S32 -> "S32_LE";
            case Snd.FMT_FLOAT -> "FLOAT_LE";
            default -> "format " + format;
        };
        return f + " " + channels + "ch " + rateHz + " Hz";
    }

    /** Whether two streams' samples are laid out alike (sizes of buffer and period aside). */
    boolean sameFormat(PcmParams o) {
        return channels == o.channels && format == o.format && rateHz == o.rateHz;
    }
}
