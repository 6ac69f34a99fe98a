package org.krun.device.snd.internal;

/**
 * Where a stream's samples go and come from. Called on the VM's event loop, so neither call may block:
 * a backend that does I/O hands it to a thread of its own. The device does the pacing; a backend only
 * takes and gives samples.
 */
interface SoundBackend extends AutoCloseable {

    /** A period of playback from stream {@code streamId}, in {@code params}' format; the array is the backend's now. */
    void play(int streamId, PcmParams params, byte[] frames);

    /** Fills {@code into} with a period of capture for stream {@code streamId}, in {@code params}' format. */
    void capture(int streamId, PcmParams params, byte[] into);

    /** The VM is gone: finish and release (a WAV file's header is completed here). */
    @Override
    void close();
}
