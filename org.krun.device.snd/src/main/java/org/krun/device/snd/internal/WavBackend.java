package org.krun.device.snd.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayDeque;

import org.krun.api.VmConfigException;

/**
 * Playback into a WAV file, capture from another. The playback file takes the format of the first period
 * played (the guest's choice, unconverted); periods in another format later are dropped with a warning,
 * since one WAV file has one format. Writing happens on a thread of the backend's own, so the event loop
 * never waits for the disk; what waits for it is bounded ({@link #MAX_QUEUED_BYTES}), beyond which periods
 * are dropped with a warning rather than held. The header's sizes are completed on {@link #close()}.
 *
 * <p>The capture file is read whole when the device is made (at most {@link Wav#MAX_CAPTURE_BYTES}); the
 * guest records its samples from the start, then silence. A guest that records in another format than
 * the file's gets silence and the host a warning.
 */
final class WavBackend implements SoundBackend {

    static final long MAX_QUEUED_BYTES = 4L << 20;
    private static final System.Logger LOG = System.getLogger(WavBackend.class.getName());

    private final Path playbackPath;
    private final FileChannel playback;
    private final Wav.Samples capture;
    private int capturePosition;
    private boolean captureMismatchLogged;
    private boolean playbackMismatchLogged;
    private boolean droppedLogged;

    // guarded by this
    private final ArrayDeque<byte[]> queued = new ArrayDeque<>();
    private long queuedBytes;
    private boolean closing;
    private PcmParams format;
    private long written;
    private Thread writer;
    private IOException failure;

    /**
     * Opens (creating or truncating) {@code playback} and reads {@code capture}, each if not null (no playback
     * file: playback is discarded; no capture file: silence); one-line errors.
     */
    WavBackend(Path playback, Path capture) {
        Wav.Samples samples = null;
        if (capture != null) {
            try {
                samples = Wav.read(capture);
            } catch (IOException e) {
                throw new VmConfigException("sound capture file: " + oneLine(e));
            }
        }
        this.capture = samples;
        this.playbackPath = playback;
        if (playback == null) {
            this.playback = null;
            return;
        }
        try {
            this.playback = FileChannel.open(playback, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                    StandardOpenOption.TRUNCATE_EXISTING);
        } catch (IOException e) {
            throw new VmConfigException("sound playback file " + playback + ": " + oneLine(e));
        }
        try {
            // A valid, empty file from the start: a VM that never plays leaves one too.
            write(ByteBuffer.wrap(Wav.header(new PcmParams(0, 0, 2, Snd.FMT_S16, 48000), 0)), 0);
        } catch (IOException e) {
            close();
            throw new VmConfigException("sound playback file " + playback + ": " + oneLine(e));
        }
    }

    private static String oneLine(IOException e) {
        String m = e.getMessage() != null ? e.getMessage() : e.toString();
        return e instanceof java.nio.file.NoSuchFileException ? "no such file: " + m
                : e instanceof java.nio.file.AccessDeniedException ? "permission denied: " + m : m;
    }

    @Override
    public void play(int streamId, PcmParams params, byte[] frames) {
        synchronized (this) {
            if (closing || playback == null) {
                return;
            }
            if (format == null) {
                format = params;
            } else if (!format.sameFormat(params)) {
                if (!playbackMismatchLogged) {
                    playbackMismatchLogged = true;
                    LOG.log(Level.WARNING, playbackPath + " holds " + format.describe() + "; playback in "
                            + params.describe() + " is dropped");
                }
                return;
            }
            if (queuedBytes + frames.length > MAX_QUEUED_BYTES) {
                if (!droppedLogged) {
                    droppedLogged = true;
                    LOG.log(Level.WARNING, playbackPath + ": the disk is slower than playback; periods dropped");
                }
                return;
            }
            queued.add(frames);
            queuedBytes += frames.length;
            if (writer == null) {
                writer = Thread.ofPlatform().daemon(true).name("krun-snd-wav").start(this::writeLoop);
            }
            notifyAll();
        }
    }

    private void writeLoop() {
        while (true) {
            byte[] next;
            long at;
            synchronized (this) {
                while (queued.isEmpty() && !closing) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        // close() ends the loop; an interrupt alone does not
                    }
                }
                next = queued.poll();
                if (next == null) {
                    return; // closing and drained
                }
                queuedBytes -= next.length;
                at = Wav.HEADER_SIZE + written;
            }
            try {
                write(ByteBuffer.wrap(next), at);
                synchronized (this) {
                    written += next.length;
                }
            } catch (IOException e) {
                synchronized (this) {
                    failure = e;
                    closing = true;
                    queued.clear();
                    queuedBytes = 0;
                }
                LOG.log(Level.ERROR, "sound playback file " + playbackPath + ": " + e.getMessage());
                return;
            }
        }
    }

    private void write(ByteBuffer b, long at) throws IOException {
        while (b.hasRemaining()) {
            at += playback.write(b, at);
        }
    }

    @Override
    public void capture(int streamId, PcmParams params, byte[] into) {
        if (capture == null) {
            NullBackend.Silence.fill(params, into);
            return;
        }
        if (!capture.format().sameFormat(params)) {
            if (!captureMismatchLogged) {
                captureMismatchLogged = true;
                LOG.log(Level.WARNING, "the capture file holds " + capture.format().describe() + "; the guest records "
                        + params.describe() + " and gets silence");
            }
            NullBackend.Silence.fill(params, into);
            return;
        }
        int n = Math.min(into.length, capture.data().length - capturePosition);
        System.arraycopy(capture.data(), capturePosition, into, 0, n);
        capturePosition += n;
        if (n < into.length) {
            byte[] rest = new byte[into.length - n];
            NullBackend.Silence.fill(params, rest);
            System.arraycopy(rest, 0, into, n, rest.length);
        }
    }

    /** Waits for the writer, completes the header and closes the file. */
    @Override
    public void close() {
        Thread w;
        synchronized (this) {
            closing = true;
            w = writer;
            notifyAll();
        }
        if (w != null) {
            try {
                w.join(10_000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        if (playback == null) {
            return;
        }
        try (FileChannel ch = playback) {
            synchronized (this) {
                if (format != null && failure == null && (w == null || !w.isAlive())) {
                    write(ByteBuffer.wrap(Wav.header(format, written)), 0);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("sound playback file " + playbackPath + ": header", e);
        }
    }

    /** Sample bytes written to the file so far. */
    synchronized long written() {
        return written;
    }
}
