package org.krun.device.snd.internal;

import java.lang.System.Logger.Level;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayDeque;

import org.krun.api.VmConfigException;

/**
 * The host's sound server (PulseAudio, or PipeWire's pulse server) through {@link PulseSimple}: playback
 * periods go to a playback connection in the guest's format, capture comes from a record connection in the
 * format the guest records in. Connections block, so each lives on a thread of the backend's own; the event
 * loop only hands periods over and takes what has been recorded (silence where the server has not caught
 * up). What waits is bounded: a second of playback (periods beyond it are dropped with a warning) and a
 * second of capture (the oldest is overwritten).
 */
final class PulseBackend implements SoundBackend {

    private static final System.Logger LOG = System.getLogger(PulseBackend.class.getName());
    /** The server's buffering asked for: enough to ride out a busy host, short enough to stay in step. */
    static final int LATENCY_MS = 200;
    static final int MAX_QUEUED_BYTES = 1 << 20;

    private final String server;
    private final Playback playback;
    private Capture capture; // loop only

    /**
     * Connects once to {@code server} (null: the default one) to check that it is there; a one-line
     * {@link VmConfigException} if it is not.
     */
    PulseBackend(String server) {
        this.server = server;
        this.playback = new Playback(server);
        try (PulseSimple probe = new PulseSimple(server, PulseSimple.PA_STREAM_PLAYBACK,
                new PcmParams(0, 0, 2, Snd.FMT_S16, 48000), "krun probe", LATENCY_MS)) {
            // connected: the server is reachable
        } catch (PulseSimple.PulseException e) {
            throw new VmConfigException("sound backend pulse: no sound server reachable: " + e.getMessage());
        }
    }

    @Override
    public void play(int streamId, PcmParams params, byte[] frames) {
        playback.offer(params, frames);
    }

    @Override
    public void capture(int streamId, PcmParams params, byte[] into) {
        if (capture == null || !capture.params.sameFormat(params)) {
            if (capture != null) {
                capture.stop();
            }
            capture = new Capture(server, params);
        }
        capture.take(into);
    }

    /** The playback bytes the server has accepted so far (for tests and logs). */
    long playedBytes() {
        return playback.written;
    }

    @Override
    public void close() {
        playback.stop();
        if (capture != null) {
            capture.stop();
        }
        long written = playback.written;
        if (written > 0) {
            LOG.log(Level.DEBUG, () -> "sound server: accepted " + written + " bytes of playback");
        }
    }

    /** Periods on their way to the server, and the thread that writes them. */
    private static final class Playback {
        private record Period(PcmParams params, byte[] frames) {
        }

        private final String server;
        private final ArrayDeque<Period> queued = new ArrayDeque<>();
        private long queuedBytes;
        private boolean closing;
        private boolean droppedLogged;
        private Thread thread;
        /** Bytes the server accepted (pa_simple_write returned), over the backend's life. */
        private volatile long written;

        Playback(String server) {
            this.server = server;
        }

        synchronized void offer(PcmParams params, byte[] frames) {
            if (closing) {
                return;
            }
            if (queuedBytes + frames.length > MAX_QUEUED_BYTES) {
                if (!droppedLogged) {
                    droppedLogged = true;
                    LOG.log(Level.WARNING, "sound server: playback falls behind; periods dropped");
                }
                return;
            }
            queued.add(new Period(params, frames));
            queuedBytes += frames.length;
            if (thread == null) {
                thread = Thread.ofPlatform().daemon(true).name("krun-snd-pulse-playback").start(this::run);
            }
            notifyAll();
        }

        private void run() {
            PulseSimple connection = null;
            PcmParams format = null;
            boolean failed = false;
            try {
                while (true) {
                    Period p;
                    synchronized (this) {
                        while (queued.isEmpty() && !closing) {
                            try {
                                wait();
                            } catch (InterruptedException e) {
                                // stop() ends the loop
                            }
                        }
                        p = queued.poll();
                        if (p == null) {
                            break;
                        }
                        queuedBytes -= p.frames().length;
                    }
                    if (failed) {
                        continue;
                    }
                    try {
                        if (connection == null || !format.sameFormat(p.params())) {
                            if (connection != null) {
                                connection.drain();
                                connection.close();
                                connection = null;
                            }
                            connection = new PulseSimple(server, PulseSimple.PA_STREAM_PLAYBACK, p.params(), "krun playback",
                                    LATENCY_MS);
                            format = p.params();
                        }
                        try (Arena arena = Arena.ofConfined()) {
                            connection.write(arena.allocateFrom(ValueLayout.JAVA_BYTE, p.frames()));
                        }
                        written += p.frames().length;
                    } catch (PulseSimple.PulseException e) {
                        LOG.log(Level.ERROR, "sound server playback: " + e.getMessage() + "; playback is dropped from now on");
                        failed = true;
                    }
                }
                if (connection != null) {
                    connection.drain();
                }
            } finally {
                if (connection != null) {
                    connection.close();
                }
            }
        }

        void stop() {
            Thread t;
            synchronized (this) {
                closing = true;
                t = thread;
                notifyAll();
            }
            join(t);
        }
    }

    /** A record connection in one format, the thread that reads it, and a second of what it recorded. */
    private static final class Capture {
        final PcmParams params;
        private final String server;
        private final byte[] ring;
        private int start;
        private int size;
        private volatile boolean closing;
        private final Thread thread;

        Capture(String server, PcmParams params) {
            this.params = params;
            this.server = server;
            int second = (int) Math.min(MAX_QUEUED_BYTES, params.bytesPerSecond());
            this.ring = new byte[Math.max(params.frameBytes(), second - second % params.frameBytes())];
            this.thread = Thread.ofPlatform().daemon(true).name("krun-snd-pulse-capture").start(this::run);
        }

        private void run() {
            int chunk = (int) Math.max(params.frameBytes(), params.bytesPerSecond() / 100 / params.frameBytes() * params.frameBytes());
            try (PulseSimple connection = new PulseSimple(server, PulseSimple.PA_STREAM_RECORD, params, "krun capture",
                    LATENCY_MS);
                    Arena arena = Arena.ofConfined()) {
                MemorySegment buffer = arena.allocate(chunk);
                byte[] bytes = new byte[chunk];
                while (!closing) {
                    connection.read(buffer);
                    MemorySegment.copy(buffer, ValueLayout.JAVA_BYTE, 0, bytes, 0, chunk);
                    put(bytes);
                }
            } catch (PulseSimple.PulseException e) {
                LOG.log(Level.ERROR, "sound server capture: " + e.getMessage() + "; the guest records silence");
            }
        }

        private synchronized void put(byte[] bytes) {
            for (byte b : bytes) {
                if (size == ring.length) {
                    start = (start + 1) % ring.length;
                    size--;
                }
                ring[(start + size) % ring.length] = b;
                size++;
            }
        }

        synchronized void take(byte[] into) {
            int n = Math.min(into.length, size);
            for (int i = 0; i < n; i++) {
                into[i] = ring[(start + i) % ring.length];
            }
            start = (start + n) % ring.length;
            size -= n;
            if (n < into.length) {
                byte[] rest = new byte[into.length - n];
                NullBackend.Silence.fill(params, rest);
                System.arraycopy(rest, 0, into, n, rest.length);
            }
        }

        void stop() {
            closing = true;
            join(thread);
        }
    }

    private static void join(Thread t) {
        if (t == null) {
            return;
        }
        try {
            t.join(5_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
