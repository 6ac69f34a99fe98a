package org.krun.device.snd.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-snd's control and transfer messages (virtio 1.2 §5.14) with a hostile
 * driver: control requests of any code and length with fields near and far from valid (stream ids, sizes,
 * formats, rates, buffer and period sizes up to 4 GiB), PCM commands in any order, tx and rx messages for any
 * stream with headers missing, samples longer than the buffer, no room for a status, buffers outside guest
 * RAM; time moving in steps from nothing to seconds; resets.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: the device never throws; every control
 * request is answered at once with a status (when it has room for one) that is a {@code VIRTIO_SND_S_*}
 * code; each period handed to the backend is at most its stream's buffer (so at most
 * {@link VirtioSnd#MAX_BUFFER_BYTES}); a stream holds at most the queue's size of messages and the device
 * at most one timer per stream; after a RELEASE or a reset no message of that stream is held; the
 * device never asks for a reset (every guest mistake is answered, not fatal).
 */
class VirtioSndFuzzTest {

    private static final int RAM = 2 << 20;
    private static final int MAX_STEPS = 48;

    static {
        FuzzBounds.quietLogs("org.krun.device.snd");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-snd", FuzzBounds.Limits.defaults(),
            input -> new Scenario(new FuzzInput(input)).run(),
            // a playback session as Linux runs it, to warm the main paths up
            new byte[] {0, 1, 0, 0, 2, 0, 3, 0, 4, 0, 5, 1, 6, 6, 6, 6, 7, 7, 8, 8});

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void hostileControlAndTransferMessagesStayBounded(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** Checks every period played or captured against the stream's buffer. */
    private static final class CheckingBackend implements SoundBackend {
        long bytes;

        @Override
        public void play(int streamId, PcmParams params, byte[] frames) {
            check(params, frames.length);
        }

        @Override
        public void capture(int streamId, PcmParams params, byte[] into) {
            check(params, into.length);
        }

        private void check(PcmParams params, int length) {
            if (length > params.bufferBytes() || params.bufferBytes() > VirtioSnd.MAX_BUFFER_BYTES) {
                throw new AssertionError("a period of " + length + " bytes for a buffer of " + params.bufferBytes());
            }
            bytes += length;
        }

        @Override
        public void close() {
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final TestGuestMemory ram = TestGuestMemory.create(RAM);
        private final MockDriverQueue controlq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
        private final MockDriverQueue eventq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
        private final MockDriverQueue txq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
        private final MockDriverQueue rxq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
        private final ManualClock clock = new ManualClock();
        private final VirtioSnd snd = new VirtioSnd(new CheckingBackend(), clock);
        private FakeDeviceContext context;

        Scenario(FuzzInput in) {
            this.in = in;
        }

        void run() {
            try {
                activate();
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    step();
                    check();
                }
            } finally {
                snd.close();
                ram.close();
            }
        }

        private void activate() {
            context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(controlq.configuredQueue(),
                    eventq.configuredQueue(), txq.configuredQueue(), rxq.configuredQueue()));
            snd.activate(context);
        }

        private static ByteBuffer le(int n) {
            return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
        }

        private int streamId() {
            return (int) in.pick(0L, 1L, 0L, 1L, 2L, 0xffffffffL, in.i32());
        }

        private void step() {
            switch (in.below(10)) {
                case 0 -> control(le(24).putInt(Snd.R_PCM_SET_PARAMS).putInt(streamId())
                        .putInt(in.pick(19200, 4800, 0, 1 << 20, (1 << 20) + 4, -1, in.i32()))
                        .putInt(in.pick(4800, 1200, 0, 19200, 4799, in.i32())).putInt(in.pick(0, 0, 0, in.i32()))
                        .put((byte) in.pick(2, 1, 0, 3, in.u8())).put((byte) in.pick(5, 4, 17, 19, 0, in.u8()))
                        .put((byte) in.pick(7, 6, 1, 13, in.u8())).put((byte) 0).array());
                case 1, 2 -> control(le(8).putInt(in.pick(Snd.R_PCM_PREPARE, Snd.R_PCM_START, Snd.R_PCM_STOP,
                        Snd.R_PCM_RELEASE)).putInt(streamId()).array());
                case 3 -> control(le(16).putInt(in.pick(Snd.R_PCM_INFO, Snd.R_JACK_INFO, Snd.R_CHMAP_INFO, Snd.R_JACK_REMAP))
                        .putInt(in.pick(0, 1, 4, -1)).putInt(in.pick(1, 2, 4, 0, -1, in.i32()))
                        .putInt(in.pick(24, 32, 16, 1024, 1025, -1, in.i32())).array());
                case 4 -> control(in.bytes(40));
                case 5, 6 -> transfer(txq, Snd.TXQ);
                case 7 -> transfer(rxq, Snd.RXQ);
                case 8 -> clock.advance(in.pick(1_000_000L, 25_000_000L, 100_000_000L, 2_000_000_000L, in.u16() * 1000L));
                default -> {
                    if (in.below(8) == 0) {
                        snd.reset();
                        if (clock.pending() > 0) {
                            throw new AssertionError(clock.pending() + " timers outlive the activation");
                        }
                        return; // the rest of the input finds the device inactive: control and transfer skip
                    }
                    clock.advance(in.u16() * 1000L);
                }
            }
        }

        private void control(byte[] request) {
            if (snd.stream(0) == null) {
                return;
            }
            int response = in.pick(4, 4, 4 + 64, 0, 2, in.u8());
            List<Integer> writable = response == 0 ? List.of() : List.of(response);
            if (!controlq.fits(List.of(request), writable)) {
                return;
            }
            controlq.addChain(List.of(request), writable);
            snd.queueNotify(Snd.CONTROLQ);
            List<MockDriverQueue.Used> used = controlq.usedEntries();
            if (used.size() != 1) {
                throw new AssertionError("a control request was not answered at once: " + used.size());
            }
            MockDriverQueue.Used u = used.get(0);
            if (response >= 4) {
                int status = ByteBuffer.wrap(u.written()).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
                if (u.len() < 4 || status < Snd.S_OK || status > Snd.S_IO_ERR) {
                    throw new AssertionError("control answer of " + u.len() + " bytes, status 0x" + Integer.toHexString(status));
                }
                if (u.len() > response) {
                    throw new AssertionError("used length " + u.len() + " over the " + response + " writable bytes");
                }
            } else if (u.len() != 0) {
                throw new AssertionError("wrote " + u.len() + " bytes into " + response);
            }
        }

        private void transfer(MockDriverQueue q, int queue) {
            if (snd.stream(0) == null) {
                return;
            }
            List<byte[]> readable = new ArrayList<>();
            if (in.below(8) != 0) {
                readable.add(le(4).putInt(streamId()).array());
            }
            List<Integer> writable = new ArrayList<>();
            if (queue == Snd.TXQ) {
                int samples = in.pick(4800, 1200, 0, 19200, 19204, 200_000, in.u16());
                if (samples > 0) {
                    readable.add(new byte[samples]);
                }
                if (in.below(8) != 0) {
                    writable.add(in.pick(8, 8, 4, 16));
                }
            } else {
                int room = in.pick(4800, 1200, 0, 19200, 19204, 200_000, in.u16());
                if (room > 0) {
                    writable.add(room);
                }
                if (in.below(8) != 0) {
                    writable.add(8);
                }
            }
            if (readable.isEmpty() && writable.isEmpty()) {
                return;
            }
            if (!q.fits(readable, writable)) {
                // out of descriptors or RAM: let time pass instead, which returns messages
                clock.advance(100_000_000L);
                q.usedEntriesWithoutData();
                return;
            }
            if (in.below(16) == 0) {
                int[] d = q.reserveDescriptors(1);
                q.writeDescriptor(d[0], in.pick(1L << 40, RAM - 2, -1L), in.i32(), in.u8() & 3, in.u8());
                q.makeAvailable(d[0]);
            } else {
                q.addChain(readable, writable);
            }
            snd.queueNotify(queue);
            q.usedEntriesWithoutData();
        }

        private void check() {
            if (!context.resetReasons().isEmpty()) {
                throw new AssertionError("the device asked for a reset: " + context.resetReasons());
            }
            long timers = clock.pending();
            if (timers > VirtioSnd.STREAMS) {
                throw new AssertionError(timers + " timers for " + VirtioSnd.STREAMS + " streams");
            }
            for (int s = 0; s < VirtioSnd.STREAMS; s++) {
                VirtioSnd.PcmStream stream = snd.stream(s);
                if (stream == null) {
                    continue;
                }
                if (stream.pending.size() > VirtioSnd.QUEUE_SIZE) {
                    throw new AssertionError("stream " + s + " holds " + stream.pending.size() + " messages");
                }
                if ((stream.state == VirtioSnd.State.RELEASED || stream.state == VirtioSnd.State.IDLE)
                        && !stream.pending.isEmpty()) {
                    throw new AssertionError("stream " + s + " holds messages while " + stream.state);
                }
            }
        }
    }
}
