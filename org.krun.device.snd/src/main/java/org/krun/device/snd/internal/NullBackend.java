package org.krun.device.snd.internal;

import java.util.Arrays;

/** Discards playback and captures silence (zero samples; U8's silence is 0x80). */
final class NullBackend implements SoundBackend {

    @Override
    public void play(int streamId, PcmParams params, byte[] frames) {
    }

    @Override
    public void capture(int streamId, PcmParams params, byte[] into) {
        Silence.fill(params, into);
    }

    @Override
    public void close() {
    }

    /** Silence in a stream's format. */
    static final class Silence {
        private Silence() {
        }

        static void fill(PcmParams params, byte[] into) {
            Arrays.fill(into, params.format() == Snd.FMT_U8 ? (byte) 0x80 : 0);
        }
    }
}
