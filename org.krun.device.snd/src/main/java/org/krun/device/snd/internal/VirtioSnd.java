package org.krun.device.snd.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayDeque;

import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.GuestSetup;
import org.krun.spi.virtio.InvalidChainException;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.ShortChainException;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;

/**
 * virtio-snd (virtio 1.2 §5.14): two jacks (line out, microphone), two PCM streams (0 playback, 1
 * capture, both of function group 0, so the guest sees one card with one PCM device) and four channel maps
 * (mono and stereo per direction). Control elements (VIRTIO_SND_F_CTLS) and shared-memory transport are not
 * offered: samples travel in txq and rxq messages.
 *
 * <p>Timing: a stream consumes its queued messages in order, each when its samples would have been played
 * or recorded at the stream's rate since the previous one ended (or since it came, after an underrun), and
 * only then returns it; a {@link PcmClock} timer says when, and the work runs on the event loop. A
 * message's samples are read from guest memory when its time comes, as real hardware reads its buffer.
 *
 * <p>Everything a guest controls is bounded: buffers and periods at most {@link #MAX_BUFFER_BYTES}, a
 * message's samples at most its stream's buffer, and the messages held are the queues' own (at most 64 per
 * queue). A malformed message is answered VIRTIO_SND_S_BAD_MSG, an unoffered choice VIRTIO_SND_S_NOT_SUPP.
 */
final class VirtioSnd extends AbstractVirtioDevice<VirtioSnd.Streams> implements SnapshottableDevice {

    static final int QUEUE_SIZE = 64;
    /** The largest buffer_bytes (and so period and message) a stream accepts. Linux asks for 160 ms, 120 KiB at most here. */
    static final int MAX_BUFFER_BYTES = 1 << 20;
    static final int MAX_CHANNELS = 2;
    static final int PLAYBACK = 0;
    static final int CAPTURE = 1;
    static final int STREAMS = 2;
    static final int JACKS = 2;
    static final int CHMAPS = 4;
    static final long FORMATS = 1L << Snd.FMT_U8 | 1L << Snd.FMT_S16 | 1L << Snd.FMT_S32 | 1L << Snd.FMT_FLOAT;
    /** Rate codes offered: 8, 11.025, 16, 22.05, 32, 44.1, 48 and 96 kHz. */
    static final long RATES = 1L << 1 | 1L << 2 | 1L << 3 | 1L << 4 | 1L << 5 | 1L << 6 | 1L << 7 | 1L << 10;

    /** HDA pin default configuration (HDA 7.3.3.31): jack, rear, line out, 1/8" stereo, green, association 1. */
    static final int LINE_OUT_DEFCONF = 0x01014010;
    /** Jack, rear, mic in, 1/8" stereo, pink, association 2. */
    static final int MIC_DEFCONF = 0x01a19020;
    /** HDA pin capabilities (HDA 7.3.4.9): presence detect (bit 2) and output (bit 4) or input (bit 5). */
    static final int LINE_OUT_CAPS = 1 << 2 | 1 << 4;
    static final int MIC_CAPS = 1 << 2 | 1 << 5;
    /** The most bytes per item a query may ask for: enough for any future growth of the structures. */
    static final int MAX_INFO_SIZE = 1024;

    private final SoundBackend backend;
    private final PcmClock clock;
    /** Per stream over the device's life (loop writes, others read): bytes consumed, first and last period's time. */
    private final long[] consumedBytes = new long[STREAMS];
    private final long[] firstPeriodNanos = new long[STREAMS];
    private final long[] lastPeriodNanos = new long[STREAMS];

    VirtioSnd(SoundBackend backend, PcmClock clock) {
        super("virtio-snd", VirtioIds.SOUND, 0, Snd.QUEUE_COUNT, QUEUE_SIZE, Snd.CONFIG_SIZE);
        this.backend = backend;
        this.clock = clock;
        config().putInt(0, JACKS).putInt(4, STREAMS).putInt(8, CHMAPS).putInt(12, 0);
    }

    /** A stream's state in the PCM command lifecycle (§5.14.6.6.1). */
    enum State {
        IDLE, PARAMS_SET, PREPARED, RUNNING, STOPPED, RELEASED
    }

    /** A tx or rx message waiting for its time. */
    static final class Transfer {
        final DescriptorChain chain;
        /** Where in its queue's available ring the driver put it (a free-running 16-bit index), for snapshots. */
        final int availIndex;
        /** Samples it carries (tx) or has room for (rx). */
        final int bytes;
        final long queuedAt;
        /** When it has been played or recorded; set when it becomes the stream's next. */
        long end = -1;

        Transfer(DescriptorChain chain, int availIndex, int bytes, long queuedAt) {
            this.chain = chain;
            this.availIndex = availIndex;
            this.bytes = bytes;
            this.queuedAt = queuedAt;
        }
    }

    /** One PCM stream of one activation. */
    static final class PcmStream {
        final int id;
        final int direction;
        final int queue;
        State state = State.IDLE;
        PcmParams params;
        final ArrayDeque<Transfer> pending = new ArrayDeque<>();
        /** When what the stream consumed so far has been played (nanoTime). */
        long playhead;
        Runnable cancelTimer;

        PcmStream(int id, int direction) {
            this.id = id;
            this.direction = direction;
            this.queue = direction == Snd.D_OUTPUT ? Snd.TXQ : Snd.RXQ;
        }
    }

    /**
     * Linux's driver waits 1 s for each control answer and gives up on the stream (or the whole card, while
     * probing) after that. The device answers at once, but a guest whose vCPU hardly runs (guest kernel code
     * is emulated on kvm-pvm hosts, and those hosts are often busy) may not see the answer in time: 10 s.
     */
    static final String MSG_TIMEOUT_ARG = "virtio_snd.msg_timeout_ms=10000";

    @Override
    public GuestSetup guestSetup() {
        return new GuestSetup(java.util.List.of(MSG_TIMEOUT_ARG), java.util.Map.of(), java.util.Map.of());
    }

    /** The per-activation state: the streams. */
    static final class Streams {
        final PcmStream[] streams = {new PcmStream(PLAYBACK, Snd.D_OUTPUT), new PcmStream(CAPTURE, Snd.D_INPUT)};
    }

    @Override
    protected Streams onActivate(Active<Streams> a) {
        return new Streams();
    }

    @Override
    protected void onQueueNotify(Active<Streams> a, int queue) {
        switch (queue) {
            case Snd.CONTROLQ -> {
                DescriptorChain chain;
                while (a.isCurrent() && (chain = a.pop(Snd.CONTROLQ)) != null) {
                    a.addUsed(Snd.CONTROLQ, chain.head(), control(a, chain));
                }
            }
            case Snd.TXQ, Snd.RXQ -> {
                DescriptorChain chain;
                while (a.isCurrent() && (chain = a.pop(queue)) != null) {
                    transfer(a, queue, chain, (a.queue(queue).nextAvail() - 1) & 0xffff);
                }
            }
            default -> {
                // eventq: the device has no events to send (its jacks never change); buffers wait there.
            }
        }
    }

    // ---- controlq

    /** Serves one control request; returns the bytes written into the chain. */
    private int control(Active<Streams> a, DescriptorChain chain) {
        ChainWriter w = chain.writer(a.memory());
        if (w.remaining() < Snd.HDR_SIZE) {
            guestError("control request without room for a status");
            return 0;
        }
        ControlRequest request;
        try {
            ChainReader r = chain.reader(a.memory());
            int length = (int) Math.min(r.remaining(), ControlRequest.MAX_SIZE);
            request = ControlRequest.parse(r.readBytes(length), length);
        } catch (GuestMemoryException | ShortChainException e) {
            request = new ControlRequest.Malformed(e.getMessage());
        }
        try {
            return switch (request) {
                case ControlRequest.QueryInfo q -> queryInfo(q, w);
                case ControlRequest.JackRemap r -> status(w, r.jackId() < JACKS ? Snd.S_NOT_SUPP : bad("JACK_REMAP of jack " + r.jackId()));
                case ControlRequest.SetParams p -> status(w, setParams(a.state(), p));
                case ControlRequest.PcmCommand c -> status(w, command(a, c));
                case ControlRequest.Unsupported u -> status(w, Snd.S_NOT_SUPP);
                case ControlRequest.Malformed m -> status(w, bad(m.why()));
            };
        } catch (GuestMemoryException e) {
            guestError("control response buffer outside guest RAM: " + e.getMessage());
            return 0;
        }
    }

    private int bad(String why) {
        guestError(why);
        return Snd.S_BAD_MSG;
    }

    private static int status(ChainWriter w, int status) {
        w.writeInt(status);
        return Snd.HDR_SIZE;
    }

    private int queryInfo(ControlRequest.QueryInfo q, ChainWriter w) {
        int items = switch (q.code()) {
            case Snd.R_JACK_INFO -> JACKS;
            case Snd.R_PCM_INFO -> STREAMS;
            default -> CHMAPS;
        };
        int itemSize = switch (q.code()) {
            case Snd.R_JACK_INFO -> Snd.JACK_INFO_SIZE;
            case Snd.R_PCM_INFO -> Snd.PCM_INFO_SIZE;
            default -> Snd.CHMAP_INFO_SIZE;
        };
        // §5.14.6.1: start_id + count within the items, size at least the structure's; the answer must fit.
        if (q.startId() > items || q.count() > items - q.startId() || q.size() < itemSize || q.size() > MAX_INFO_SIZE
                || Snd.HDR_SIZE + q.count() * q.size() > w.remaining()) {
            return status(w, bad(Snd.codeName(q.code()) + " of items " + q.startId() + "+" + q.count() + ", size "
                    + q.size() + " into " + w.remaining() + " bytes"));
        }
        ByteBuffer out = ByteBuffer.allocate((int) (Snd.HDR_SIZE + q.count() * q.size())).order(ByteOrder.LITTLE_ENDIAN);
        out.putInt(Snd.S_OK);
        for (int i = (int) q.startId(); i < q.startId() + q.count(); i++) {
            int at = out.position();
            switch (q.code()) {
                case Snd.R_JACK_INFO -> jackInfo(out, i);
                case Snd.R_PCM_INFO -> pcmInfo(out, i);
                default -> chmapInfo(out, i);
            }
            out.position(at + (int) q.size());
        }
        w.write(out.array());
        return out.capacity();
    }

    private static void jackInfo(ByteBuffer out, int jack) {
        out.putInt(0); // hda_fn_nid
        out.putInt(0); // features: no VIRTIO_SND_JACK_F_REMAP
        out.putInt(jack == 0 ? LINE_OUT_DEFCONF : MIC_DEFCONF);
        out.putInt(jack == 0 ? LINE_OUT_CAPS : MIC_CAPS);
        out.put((byte) 1); // connected
    }

    private static void pcmInfo(ByteBuffer out, int stream) {
        out.putInt(0); // hda_fn_nid: one function group, so one PCM device with both directions
        out.putInt(0); // features: none of shmem, polling, period or xrun events
        out.putLong(FORMATS);
        out.putLong(RATES);
        out.put((byte) (stream == PLAYBACK ? Snd.D_OUTPUT : Snd.D_INPUT));
        out.put((byte) 1);
        out.put((byte) MAX_CHANNELS);
    }

    private static void chmapInfo(ByteBuffer out, int chmap) {
        out.putInt(0);
        out.put((byte) (chmap < 2 ? Snd.D_OUTPUT : Snd.D_INPUT));
        if (chmap % 2 == 0) {
            out.put((byte) 1).put((byte) Snd.CHMAP_MONO);
        } else {
            out.put((byte) 2).put((byte) Snd.CHMAP_FL).put((byte) Snd.CHMAP_FR);
        }
    }

    private int setParams(Streams s, ControlRequest.SetParams p) {
        if (p.streamId() >= STREAMS) {
            return bad("PCM_SET_PARAMS for stream " + p.streamId());
        }
        PcmStream stream = s.streams[(int) p.streamId()];
        if (!(stream.state == State.IDLE || stream.state == State.PARAMS_SET || stream.state == State.PREPARED
                || stream.state == State.RELEASED)) {
            return bad("PCM_SET_PARAMS for stream " + stream.id + " while " + stream.state);
        }
        if (!stream.pending.isEmpty()) {
            // A prepared stream may hold I/O messages sized for its current buffer; new parameters would
            // have them played or recorded against another (a driver releases the stream first).
            return bad("PCM_SET_PARAMS for stream " + stream.id + " with " + stream.pending.size()
                    + " I/O messages queued");
        }
        if (p.features() != 0) {
            return bad("PCM_SET_PARAMS with features 0x" + Long.toHexString(p.features()) + " not offered");
        }
        if (p.channels() < 1 || p.channels() > MAX_CHANNELS || p.format() >= 64 || (FORMATS & 1L << p.format()) == 0
                || p.rate() >= 64 || (RATES & 1L << p.rate()) == 0) {
            guestError("PCM_SET_PARAMS for stream " + stream.id + ": " + p.channels() + " channels, format " + p.format()
                    + ", rate " + p.rate() + " not offered");
            return Snd.S_NOT_SUPP;
        }
        int frame = PcmParams.sampleBytes(p.format()) * p.channels();
        if (p.bufferBytes() == 0 || p.bufferBytes() > MAX_BUFFER_BYTES || p.periodBytes() == 0
                || p.periodBytes() > p.bufferBytes() || p.periodBytes() % frame != 0 || p.bufferBytes() % frame != 0) {
            return bad("PCM_SET_PARAMS for stream " + stream.id + ": buffer " + p.bufferBytes() + ", period "
                    + p.periodBytes() + " bytes");
        }
        stream.params = new PcmParams((int) p.bufferBytes(), (int) p.periodBytes(), p.channels(), p.format(),
                Snd.RATES_HZ[p.rate()]);
        stream.state = State.PARAMS_SET;
        return Snd.S_OK;
    }

    private int command(Active<Streams> a, ControlRequest.PcmCommand c) {
        if (c.streamId() >= STREAMS) {
            return bad(Snd.codeName(c.code()) + " for stream " + c.streamId());
        }
        PcmStream stream = a.state().streams[(int) c.streamId()];
        State from = stream.state;
        boolean allowed = switch (c.code()) {
            case Snd.R_PCM_PREPARE -> from == State.PARAMS_SET || from == State.PREPARED || from == State.RELEASED;
            case Snd.R_PCM_START -> from == State.PREPARED || from == State.STOPPED;
            case Snd.R_PCM_STOP -> from == State.RUNNING;
            default -> from == State.PREPARED || from == State.STOPPED; // RELEASE
        };
        if (!allowed) {
            return bad(Snd.codeName(c.code()) + " for stream " + stream.id + " while " + from);
        }
        switch (c.code()) {
            case Snd.R_PCM_PREPARE -> stream.state = State.PREPARED;
            case Snd.R_PCM_START -> {
                stream.state = State.RUNNING;
                stream.playhead = clock.nanoTime();
                for (Transfer t : stream.pending) {
                    t.end = -1;
                }
                arm(a, stream);
            }
            case Snd.R_PCM_STOP -> {
                stream.state = State.STOPPED;
                disarm(stream);
            }
            default -> {
                // §5.14.6.6.5: on RELEASE the device MUST complete all pending I/O messages of the stream.
                stream.state = State.RELEASED;
                disarm(stream);
                Transfer t;
                while ((t = stream.pending.poll()) != null) {
                    finish(a, stream, t, false);
                }
            }
        }
        return Snd.S_OK;
    }

    // ---- txq, rxq

    /** Takes a tx or rx message: answered at once if it is wrong, else queued on its stream for its time. */
    private void transfer(Active<Streams> a, int queue, DescriptorChain chain, int availIndex) {
        int direction = queue == Snd.TXQ ? Snd.D_OUTPUT : Snd.D_INPUT;
        if (chain.readableBytes() < Snd.PCM_XFER_SIZE || chain.writableBytes() < Snd.PCM_STATUS_SIZE) {
            guestError((direction == Snd.D_OUTPUT ? "tx" : "rx") + " message of " + chain.readableBytes() + "+"
                    + chain.writableBytes() + " bytes has no header or no room for a status");
            answer(a, queue, chain, Snd.S_BAD_MSG, 0);
            return;
        }
        long streamId;
        try {
            streamId = chain.reader(a.memory()).readInt() & 0xffffffffL;
        } catch (GuestMemoryException e) {
            guestError("transfer header outside guest RAM: " + e.getMessage());
            answer(a, queue, chain, Snd.S_BAD_MSG, 0);
            return;
        }
        long bytes = direction == Snd.D_OUTPUT ? chain.readableBytes() - Snd.PCM_XFER_SIZE
                : chain.writableBytes() - Snd.PCM_STATUS_SIZE;
        PcmStream stream = streamId < STREAMS ? a.state().streams[(int) streamId] : null;
        if (stream == null || stream.direction != direction) {
            guestError((direction == Snd.D_OUTPUT ? "tx" : "rx") + " message for stream " + streamId);
            answer(a, queue, chain, Snd.S_BAD_MSG, 0);
            return;
        }
        if (stream.params == null || stream.state == State.IDLE || stream.state == State.PARAMS_SET
                || stream.state == State.RELEASED) {
            guestError("transfer for stream " + stream.id + " while " + stream.state);
            answer(a, queue, chain, Snd.S_BAD_MSG, 0);
            return;
        }
        if (bytes > stream.params.bufferBytes()) {
            guestError("transfer of " + bytes + " bytes for stream " + stream.id + " with a buffer of "
                    + stream.params.bufferBytes());
            answer(a, queue, chain, Snd.S_BAD_MSG, 0);
            return;
        }
        stream.pending.add(new Transfer(chain, availIndex, (int) bytes, clock.nanoTime()));
        if (stream.state == State.RUNNING && stream.cancelTimer == null) {
            arm(a, stream);
        }
    }

    /** Schedules the stream's next message for when it has been played (RUNNING streams only). */
    private void arm(Active<Streams> a, PcmStream stream) {
        Transfer next = stream.pending.peek();
        if (next == null || stream.state != State.RUNNING) {
            return;
        }
        if (next.end < 0) {
            next.end = Math.max(stream.playhead, next.queuedAt) + stream.params.nanosFor(next.bytes);
        }
        Object[] token = new Object[1];
        Runnable cancel;
        try {
            cancel = clock.schedule(next.end, () -> onLoop(a, x -> {
                if (stream.cancelTimer == token[0]) {
                    stream.cancelTimer = null;
                    tick(a, stream);
                }
            }));
        } catch (java.util.concurrent.RejectedExecutionException e) {
            return; // the device is closing
        }
        token[0] = cancel;
        stream.cancelTimer = cancel;
    }

    private static void disarm(PcmStream stream) {
        Runnable cancel = stream.cancelTimer;
        stream.cancelTimer = null;
        if (cancel != null) {
            cancel.run();
        }
    }

    /** The timer fired: completes every message whose time has come, then waits for the next. */
    private void tick(Active<Streams> a, PcmStream stream) {
        long now = clock.nanoTime();
        Transfer t;
        while (a.isCurrent() && stream.state == State.RUNNING && (t = stream.pending.peek()) != null) {
            if (t.end < 0) {
                t.end = Math.max(stream.playhead, t.queuedAt) + stream.params.nanosFor(t.bytes);
            }
            if (t.end > now) {
                break;
            }
            stream.pending.poll();
            stream.playhead = t.end;
            finish(a, stream, t, true);
        }
        if (a.isCurrent()) {
            arm(a, stream);
        }
    }

    /**
     * Returns a message to the driver: with its samples taken (played) or given (recorded) when
     * {@code consumed}, else (RELEASE) without.
     */
    private void finish(Active<Streams> a, PcmStream stream, Transfer t, boolean consumed) {
        DescriptorChain chain = t.chain;
        try {
            if (stream.direction == Snd.D_OUTPUT) {
                if (consumed) {
                    ChainReader r = chain.reader(a.memory());
                    r.skip(Snd.PCM_XFER_SIZE);
                    backend.play(stream.id, stream.params, r.readBytes(t.bytes));
                    consumed(stream, t.bytes);
                }
                answer(a, stream.queue, chain, Snd.S_OK, 0);
            } else {
                ChainWriter w = chain.writer(a.memory());
                int data = 0;
                if (consumed) {
                    byte[] samples = new byte[t.bytes];
                    backend.capture(stream.id, stream.params, samples);
                    w.write(samples);
                    data = t.bytes;
                    consumed(stream, t.bytes);
                } else {
                    w.skip(t.bytes);
                }
                w.writeInt(Snd.S_OK);
                w.writeInt(0);
                a.addUsed(stream.queue, chain.head(), data + Snd.PCM_STATUS_SIZE);
            }
        } catch (GuestMemoryException | ShortChainException e) {
            guestError("transfer buffer of stream " + stream.id + " outside guest RAM: " + e.getMessage());
            a.addUsed(stream.queue, chain.head(), 0);
        }
    }

    private void consumed(PcmStream stream, int bytes) {
        long now = clock.nanoTime();
        synchronized (consumedBytes) {
            if (consumedBytes[stream.id] == 0) {
                firstPeriodNanos[stream.id] = now;
            }
            consumedBytes[stream.id] += bytes;
            lastPeriodNanos[stream.id] = now;
        }
    }

    /**
     * What stream {@code id} consumed over the device's life: its bytes, and the nanoseconds from its first
     * period's end to its last's (for tests and logs).
     */
    long[] consumed(int id) {
        synchronized (consumedBytes) {
            return new long[] {consumedBytes[id], lastPeriodNanos[id] - firstPeriodNanos[id]};
        }
    }

    /** Returns a tx or rx message with only a status: written after {@code dataBytes} of its writable part. */
    private void answer(Active<Streams> a, int queue, DescriptorChain chain, int status, int dataBytes) {
        try {
            ChainWriter w = chain.writer(a.memory());
            if (w.remaining() < Snd.PCM_STATUS_SIZE) {
                a.addUsed(queue, chain.head(), 0);
                return;
            }
            if (queue == Snd.RXQ) {
                // the status follows the data area, whose size is the driver's: it ends the message
                w.skip(w.remaining() - Snd.PCM_STATUS_SIZE);
            }
            w.writeInt(status);
            w.writeInt(0);
            a.addUsed(queue, chain.head(), queue == Snd.RXQ ? dataBytes + Snd.PCM_STATUS_SIZE : Snd.PCM_STATUS_SIZE);
        } catch (GuestMemoryException e) {
            guestError("transfer status outside guest RAM: " + e.getMessage());
            a.addUsed(queue, chain.head(), 0);
        }
    }

    @Override
    protected void onDeactivate(Active<Streams> a) {
        Streams s = a.state();
        if (s != null) {
            for (PcmStream stream : s.streams) {
                disarm(stream);
                stream.pending.clear();
            }
        }
    }

    @Override
    protected void onClose() {
        for (int id = 0; id < STREAMS; id++) {
            long[] c = consumed(id);
            if (c[0] > 0) {
                int stream = id;
                log().log(System.Logger.Level.DEBUG, () -> name() + ": stream " + stream + " consumed " + c[0] + " bytes, "
                        + c[1] / 1_000_000 + " ms from its first period to its last");
            }
        }
        try {
            clock.close();
        } finally {
            backend.close();
        }
    }

    // ---- snapshots

    static final int STATE_VERSION = 1;

    /**
     * The activation's streams, big-endian: the version, then per stream its state, its parameters (buffer and
     * period bytes, channels, format, rate in Hz) when set, and the messages it holds, each as where the driver
     * put it in the available ring and its head; nothing when inactive. The jacks and channel maps never change,
     * and control requests are answered within the notification that took them.
     *
     * <p>Held messages stay held: the restored device takes them again from the available ring, where the driver
     * left them (virtio 1.2 §2.7.13: a ring entry is not reused while its chain is outstanding), and goes on
     * playing or recording them in order, a running stream from the moment the restored VM runs. The backend
     * is the new device's own, opened again from the same specification: a restored VM plays into a new
     * connection to the sound server (or a new WAV file) and, capturing, starts from the capture file's
     * beginning.
     */
    @Override
    public byte[] saveState() {
        Active<Streams> a = active();
        if (a == null) {
            return new byte[0];
        }
        ByteBuffer b = ByteBuffer.allocate(4 + STREAMS * (2 + 14 + 4 + 8 * QUEUE_SIZE));
        b.putInt(STATE_VERSION);
        for (PcmStream stream : a.state().streams) {
            b.put((byte) stream.state.ordinal());
            PcmParams p = stream.params;
            b.put((byte) (p == null ? 0 : 1));
            if (p != null) {
                b.putInt(p.bufferBytes()).putInt(p.periodBytes()).put((byte) p.channels()).put((byte) p.format())
                        .putInt(p.rateHz());
            }
            b.putInt(stream.pending.size());
            for (Transfer t : stream.pending) {
                b.putInt(t.availIndex).putInt(t.chain.head());
            }
        }
        byte[] out = new byte[b.position()];
        b.flip().get(out);
        return out;
    }

    @Override
    public void restoreState(byte[] state) {
        Active<Streams> a = active();
        if (state.length == 0) {
            return; // saved inactive (the transport restores activation, so this one is too)
        }
        if (a == null) {
            throw new IllegalArgumentException("virtio-snd: state of an active device given to an inactive one");
        }
        ByteBuffer b = ByteBuffer.wrap(state);
        try {
            int version = b.getInt();
            if (version != STATE_VERSION) {
                throw new IllegalArgumentException("virtio-snd: saved state version " + version + " (this krun reads "
                        + STATE_VERSION + ")");
            }
            for (PcmStream stream : a.state().streams) {
                restoreStream(a, stream, b);
            }
            if (b.hasRemaining()) {
                throw new IllegalArgumentException("virtio-snd: saved state has " + b.remaining() + " extra bytes");
            }
        } catch (java.nio.BufferUnderflowException e) {
            throw new IllegalArgumentException("virtio-snd: saved state is truncated");
        }
        for (PcmStream stream : a.state().streams) {
            if (stream.state == State.RUNNING) {
                stream.playhead = clock.nanoTime();
                arm(a, stream);
            }
        }
    }

    private void restoreStream(Active<Streams> a, PcmStream stream, ByteBuffer b) {
        String what = "virtio-snd: saved stream " + stream.id;
        int ordinal = b.get();
        if (ordinal < 0 || ordinal >= State.values().length) {
            throw new IllegalArgumentException(what + " has state " + ordinal);
        }
        State saved = State.values()[ordinal];
        PcmParams params = null;
        if (b.get() != 0) {
            int buffer = b.getInt();
            int period = b.getInt();
            int channels = b.get();
            int format = b.get();
            int rateHz = b.getInt();
            int rate = -1;
            for (int code = 0; code < Snd.RATES_HZ.length; code++) {
                if (Snd.RATES_HZ[code] == rateHz && (RATES & 1L << code) != 0) {
                    rate = code;
                }
            }
            if (channels < 1 || channels > MAX_CHANNELS || format < 0 || format >= 64 || (FORMATS & 1L << format) == 0
                    || rate < 0 || buffer <= 0 || buffer > MAX_BUFFER_BYTES || period <= 0 || period > buffer
                    || period % (PcmParams.sampleBytes(format) * channels) != 0
                    || buffer % (PcmParams.sampleBytes(format) * channels) != 0) {
                throw new IllegalArgumentException(what + " has parameters this device does not offer: buffer " + buffer
                        + ", period " + period + ", " + channels + " channels, format " + format + ", " + rateHz + " Hz");
            }
            params = new PcmParams(buffer, period, channels, format, rateHz);
        }
        if (params == null && saved != State.IDLE) {
            throw new IllegalArgumentException(what + " is " + saved + " without parameters");
        }
        int held = b.getInt();
        boolean holds = saved == State.PREPARED || saved == State.RUNNING || saved == State.STOPPED;
        if (held < 0 || held > QUEUE_SIZE || held > 0 && !holds) {
            throw new IllegalArgumentException(what + " holds " + held + " messages while " + saved);
        }
        int[] positions = new int[held];
        int[] heads = new int[held];
        for (int i = 0; i < held; i++) {
            positions[i] = b.getInt();
            heads[i] = b.getInt();
            if ((positions[i] | heads[i]) >>> 16 != 0) {
                throw new IllegalArgumentException(what + " holds a message at ring entry " + positions[i] + ", head " + heads[i]);
            }
        }
        stream.state = saved;
        stream.params = params;
        stream.pending.clear();
        if (held > 0) {
            retake(a, stream, positions, heads, what);
        }
    }

    /**
     * Takes a stream's held messages again: moves its queue's next available index back to the first held one's
     * entry, then takes every entry up to where it was, keeping the held ones (checked against their saved heads)
     * and passing over the others (answered before the snapshot: the used ring has them).
     */
    private void retake(Active<Streams> a, PcmStream stream, int[] positions, int[] heads, String what) {
        Virtqueue q = a.queue(stream.queue);
        Virtqueue.Indices saved = q.indices();
        int span = (saved.nextAvail() - positions[0]) & 0xffff;
        if (span < positions.length || span > q.size()) {
            throw new IllegalArgumentException(what + " holds messages from ring entry " + positions[0]
                    + ", but the queue's next is " + saved.nextAvail());
        }
        q.restoreIndices(new Virtqueue.Indices(positions[0], saved.nextUsed(), saved.signalledUsed()));
        long now = clock.nanoTime();
        int next = 0;
        for (int k = 0; k < span; k++) {
            int position = (positions[0] + k) & 0xffff;
            DescriptorChain chain;
            try {
                chain = q.pop(a.memory());
            } catch (InvalidChainException e) {
                chain = null; // a malformed entry, answered before the snapshot; a held one is checked below
            }
            if (next < positions.length && positions[next] == position) {
                if (chain == null || chain.head() != heads[next]) {
                    throw new IllegalArgumentException(what + ": ring entry " + position + " no longer holds its message "
                            + heads[next]);
                }
                long bytes = stream.direction == Snd.D_OUTPUT ? chain.readableBytes() - Snd.PCM_XFER_SIZE
                        : chain.writableBytes() - Snd.PCM_STATUS_SIZE;
                if (bytes < 0 || bytes > stream.params.bufferBytes() || chain.writableBytes() < Snd.PCM_STATUS_SIZE) {
                    throw new IllegalArgumentException(what + ": message " + heads[next] + " of " + bytes + " bytes");
                }
                stream.pending.add(new Transfer(chain, position, (int) bytes, now));
                next++;
            }
        }
        if (next != positions.length || q.nextAvail() != saved.nextAvail()) {
            throw new IllegalArgumentException(what + ": held messages out of ring order");
        }
    }

    /** For tests: a stream's state in the current activation, or null while inactive. */
    PcmStream stream(int id) {
        Active<Streams> a = active();
        return a == null ? null : a.state().streams[id];
    }
}
