package org.krun.device.snd.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * One controlq request (virtio 1.2 §5.14.6), parsed from the bytes the driver wrote and nothing else: pure,
 * so that it can be tested and fuzzed alone. What it means for the device's streams is {@link VirtioSnd}'s.
 */
sealed interface ControlRequest {

    /** JACK_INFO, PCM_INFO or CHMAP_INFO: items {@code [startId, startId + count)}, each {@code size} bytes. */
    record QueryInfo(int code, long startId, long count, long size) implements ControlRequest {
    }

    /** JACK_REMAP. */
    record JackRemap(long jackId, long association, long sequence) implements ControlRequest {
    }

    /** PCM_SET_PARAMS, as the driver sent it (unchecked). */
    record SetParams(long streamId, long bufferBytes, long periodBytes, long features, int channels, int format,
            int rate) implements ControlRequest {
    }

    /** PCM_PREPARE, PCM_RELEASE, PCM_START or PCM_STOP. */
    record PcmCommand(int code, long streamId) implements ControlRequest {
    }

    /** A code this device does not implement (control elements, which it does not offer, or garbage). */
    record Unsupported(int code) implements ControlRequest {
    }

    /** Too short for its code: answered VIRTIO_SND_S_BAD_MSG. */
    record Malformed(String why) implements ControlRequest {
    }

    /** The most bytes any request this device understands has; the rest of a longer one is ignored. */
    int MAX_SIZE = Snd.PCM_SET_PARAMS_SIZE;

    /** Parses the first {@code length} bytes of {@code bytes}. */
    static ControlRequest parse(byte[] bytes, int length) {
        if (length < Snd.HDR_SIZE) {
            return new Malformed("request of " + length + " bytes has no header");
        }
        ByteBuffer b = ByteBuffer.wrap(bytes, 0, length).order(ByteOrder.LITTLE_ENDIAN);
        int code = b.getInt(0);
        return switch (code) {
            case Snd.R_JACK_INFO, Snd.R_PCM_INFO, Snd.R_CHMAP_INFO -> length < Snd.QUERY_INFO_SIZE
                    ? new Malformed(Snd.codeName(code) + " of " + length + " bytes")
                    : new QueryInfo(code, u32(b, 4), u32(b, 8), u32(b, 12));
            case Snd.R_JACK_REMAP -> length < Snd.JACK_REMAP_SIZE
                    ? new Malformed("JACK_REMAP of " + length + " bytes")
                    : new JackRemap(u32(b, 4), u32(b, 8), u32(b, 12));
            case Snd.R_PCM_SET_PARAMS -> length < Snd.PCM_SET_PARAMS_SIZE
                    ? new Malformed("PCM_SET_PARAMS of " + length + " bytes")
                    : new SetParams(u32(b, 4), u32(b, 8), u32(b, 12), u32(b, 16), b.get(20) & 0xff, b.get(21) & 0xff,
                            b.get(22) & 0xff);
            case Snd.R_PCM_PREPARE, Snd.R_PCM_RELEASE, Snd.R_PCM_START, Snd.R_PCM_STOP -> length < Snd.PCM_HDR_SIZE
                    ? new Malformed(Snd.codeName(code) + " of " + length + " bytes")
                    : new PcmCommand(code, u32(b, 4));
            default -> new Unsupported(code);
        };
    }

    private static long u32(ByteBuffer b, int at) {
        return b.getInt(at) & 0xffffffffL;
    }
}
