package org.krun.device.snd.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.MockDriverQueue.Used;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;

/** virtio-snd against driver-side mock queues, driven as sound/virtio in Linux drives it, on a clock moved by hand. */
class VirtioSndTest {

    /** S16_LE stereo 48 kHz: 192,000 bytes a second, so a 4,800-byte period is 25 ms. */
    static final int RATE_48000 = 7;
    static final int PERIOD = 4800;
    static final int BUFFER = 4 * PERIOD;

    /** Records playback; captures a counting pattern. */
    static final class RecordingBackend implements SoundBackend {
        final ByteArrayOutputStream played = new ByteArrayOutputStream();
        final List<Integer> periods = new ArrayList<>();
        int captured;
        boolean closed;

        @Override
        public void play(int streamId, PcmParams params, byte[] frames) {
            played.writeBytes(frames);
            periods.add(frames.length);
        }

        @Override
        public void capture(int streamId, PcmParams params, byte[] into) {
            for (int i = 0; i < into.length; i++) {
                into[i] = (byte) (captured++ * 7);
            }
        }

        @Override
        public void close() {
            closed = true;
        }
    }

    private final TestGuestMemory ram = TestGuestMemory.create(4 << 20);
    private final MockDriverQueue controlq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
    private final MockDriverQueue eventq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
    private final MockDriverQueue txq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
    private final MockDriverQueue rxq = new MockDriverQueue(ram, VirtioSnd.QUEUE_SIZE);
    private final RecordingBackend backend = new RecordingBackend();
    private final ManualClock clock = new ManualClock();
    private VirtioSnd snd;
    private FakeDeviceContext context;

    @BeforeEach
    void activate() {
        snd = new VirtioSnd(backend, clock);
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(controlq.configuredQueue(),
                eventq.configuredQueue(), txq.configuredQueue(), rxq.configuredQueue()));
        snd.activate(context);
    }

    @AfterEach
    void close() {
        snd.close();
        ram.close();
    }

    // ---- driver helpers

    static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** Sends a control request; returns the response as the device wrote it (its used length long). */
    ByteBuffer control(byte[] request, int responseSize) {
        controlq.addChain(List.of(request), List.of(responseSize));
        snd.queueNotify(Snd.CONTROLQ);
        List<Used> used = controlq.usedEntries();
        assertEquals(1, used.size(), "a control request is answered at once");
        return ByteBuffer.wrap(used.get(0).written()).order(ByteOrder.LITTLE_ENDIAN);
    }

    int status(byte[] request) {
        return control(request, 4).getInt(0);
    }

    static byte[] query(int code, int start, int count, int size) {
        return le(16).putInt(code).putInt(start).putInt(count).putInt(size).array();
    }

    static byte[] setParams(int stream, int buffer, int period, int channels, int format, int rate) {
        return le(24).putInt(Snd.R_PCM_SET_PARAMS).putInt(stream).putInt(buffer).putInt(period).putInt(0)
                .put((byte) channels).put((byte) format).put((byte) rate).put((byte) 0).array();
    }

    static byte[] pcm(int code, int stream) {
        return le(8).putInt(code).putInt(stream).array();
    }

    void prepare(int stream) {
        assertEquals(Snd.S_OK, status(setParams(stream, BUFFER, PERIOD, 2, Snd.FMT_S16, RATE_48000)));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_PREPARE, stream)));
    }

    static byte[] period(int seed) {
        byte[] b = new byte[PERIOD];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) (seed * 31 + i);
        }
        return b;
    }

    void send(int stream, byte[] samples) {
        txq.addChain(List.of(le(4).putInt(stream).array(), samples), List.of(Snd.PCM_STATUS_SIZE));
        snd.queueNotify(Snd.TXQ);
    }

    static int statusOf(Used u) {
        return ByteBuffer.wrap(u.written()).order(ByteOrder.LITTLE_ENDIAN).getInt(u.written().length - 8);
    }

    // ---- tests

    @Test
    void configSpaceCountsJacksStreamsAndChannelMaps() {
        assertEquals(VirtioIds.SOUND, snd.deviceType());
        assertEquals(25, snd.deviceType());
        byte[] config = new byte[16];
        snd.readConfig(0, config);
        ByteBuffer c = ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(List.of(2, 2, 4, 0), List.of(c.getInt(0), c.getInt(4), c.getInt(8), c.getInt(12)));
        assertEquals(4, snd.queueCount());
        assertEquals(List.of("virtio_snd.msg_timeout_ms=10000"), snd.guestSetup().kernelArgs());
    }

    @Test
    void pcmInfoOffersPlaybackAndCaptureInTheFormatsAndRatesAsked() {
        ByteBuffer r = control(query(Snd.R_PCM_INFO, 0, 2, 32), 4 + 64);
        assertEquals(Snd.S_OK, r.getInt(0));
        for (int i = 0; i < 2; i++) {
            int at = 4 + 32 * i;
            long formats = r.getLong(at + 8);
            long rates = r.getLong(at + 16);
            assertTrue((formats & 1L << Snd.FMT_S16) != 0 && (formats & 1L << Snd.FMT_S32) != 0
                    && (formats & 1L << Snd.FMT_FLOAT) != 0, "S16, S32, FLOAT");
            assertTrue((rates & 1L << 6) != 0 && (rates & 1L << 7) != 0, "44.1 and 48 kHz");
            assertEquals(i == 0 ? Snd.D_OUTPUT : Snd.D_INPUT, r.get(at + 24));
            assertEquals(1, r.get(at + 25));
            assertEquals(2, r.get(at + 26));
        }
    }

    @Test
    void jackAndChannelMapInfo() {
        ByteBuffer j = control(query(Snd.R_JACK_INFO, 0, 2, 24), 4 + 48);
        assertEquals(Snd.S_OK, j.getInt(0));
        assertEquals(VirtioSnd.LINE_OUT_DEFCONF, j.getInt(4 + 8));
        assertEquals(VirtioSnd.MIC_DEFCONF, j.getInt(4 + 24 + 8));
        assertEquals(1, j.get(4 + 16), "connected");
        ByteBuffer m = control(query(Snd.R_CHMAP_INFO, 1, 3, 24), 4 + 72);
        assertEquals(Snd.S_OK, m.getInt(0));
        assertEquals(Snd.D_OUTPUT, m.get(4 + 4));
        assertEquals(2, m.get(4 + 5));
        assertEquals(List.of((byte) Snd.CHMAP_FL, (byte) Snd.CHMAP_FR), List.of(m.get(4 + 6), m.get(4 + 7)));
        assertEquals(Snd.D_INPUT, m.get(4 + 24 + 4));
        assertEquals(1, m.get(4 + 24 + 5));
        assertEquals(Snd.CHMAP_MONO, m.get(4 + 24 + 6));
    }

    @Test
    void queriesOutsideTheItemsOrTooSmallAreBadMessages() {
        assertEquals(Snd.S_BAD_MSG, control(query(Snd.R_PCM_INFO, 1, 2, 32), 4 + 64).getInt(0));
        assertEquals(Snd.S_BAD_MSG, control(query(Snd.R_PCM_INFO, 0xffffffff, 2, 32), 4 + 64).getInt(0));
        assertEquals(Snd.S_BAD_MSG, control(query(Snd.R_PCM_INFO, 0, 2, 16), 4 + 64).getInt(0), "size under the structure's");
        assertEquals(Snd.S_BAD_MSG, control(query(Snd.R_PCM_INFO, 0, 2, 32), 4 + 32).getInt(0), "answer does not fit");
        assertEquals(Snd.S_BAD_MSG, control(query(Snd.R_JACK_INFO, 0, 1, 0x7fffffff), 4 + 64).getInt(0), "size over the cap");
        assertEquals(Snd.S_BAD_MSG, status(new byte[] {1, 0}), "no header");
        assertEquals(Snd.S_BAD_MSG, status(le(8).putInt(Snd.R_PCM_INFO).putInt(0).array()), "short query");
        assertEquals(Snd.S_NOT_SUPP, status(le(8).putInt(0x0300).putInt(0).array()), "control elements are not offered");
        assertEquals(Snd.S_NOT_SUPP, status(le(16).putInt(Snd.R_JACK_REMAP).putInt(0).putInt(1).putInt(0).array()));
        assertEquals(Snd.S_BAD_MSG, status(le(16).putInt(Snd.R_JACK_REMAP).putInt(9).putInt(1).putInt(0).array()));
        // no room for the status at all: returned with nothing written
        controlq.addChain(List.of(query(Snd.R_PCM_INFO, 0, 1, 32)), List.of());
        snd.queueNotify(Snd.CONTROLQ);
        assertEquals(0, controlq.usedEntries().get(0).len());
    }

    @Test
    void impossibleParametersAndOutOfOrderCommandsAreRefused() {
        assertEquals(Snd.S_BAD_MSG, status(setParams(2, BUFFER, PERIOD, 2, Snd.FMT_S16, RATE_48000)), "no stream 2");
        assertEquals(Snd.S_NOT_SUPP, status(setParams(0, BUFFER, PERIOD, 3, Snd.FMT_S16, RATE_48000)), "3 channels");
        assertEquals(Snd.S_NOT_SUPP, status(setParams(0, BUFFER, PERIOD, 2, 0, RATE_48000)), "IMA ADPCM");
        assertEquals(Snd.S_NOT_SUPP, status(setParams(0, BUFFER, PERIOD, 2, 200, RATE_48000)), "format 200");
        assertEquals(Snd.S_NOT_SUPP, status(setParams(0, BUFFER, PERIOD, 2, Snd.FMT_S16, 13)), "384 kHz");
        assertEquals(Snd.S_BAD_MSG, status(setParams(0, 0, 0, 2, Snd.FMT_S16, RATE_48000)), "empty buffer");
        assertEquals(Snd.S_BAD_MSG, status(setParams(0, 64 << 20, PERIOD, 2, Snd.FMT_S16, RATE_48000)), "64 MiB buffer");
        assertEquals(Snd.S_BAD_MSG, status(setParams(0, BUFFER, BUFFER * 2, 2, Snd.FMT_S16, RATE_48000)), "period > buffer");
        assertEquals(Snd.S_BAD_MSG, status(setParams(0, BUFFER, 4799, 2, Snd.FMT_S16, RATE_48000)), "period not whole frames");
        assertEquals(Snd.S_BAD_MSG, status(pcm(Snd.R_PCM_START, 0)), "START before SET_PARAMS and PREPARE");
        assertEquals(Snd.S_BAD_MSG, status(pcm(Snd.R_PCM_PREPARE, 0)), "PREPARE before SET_PARAMS");
        assertEquals(Snd.S_BAD_MSG, status(pcm(Snd.R_PCM_STOP, 7)), "no stream 7");
        prepare(0);
        assertEquals(Snd.S_BAD_MSG, status(pcm(Snd.R_PCM_STOP, 0)), "STOP while PREPARED");
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        assertEquals(Snd.S_BAD_MSG, status(setParams(0, BUFFER, PERIOD, 2, Snd.FMT_S16, RATE_48000)), "SET_PARAMS while RUNNING");
        assertEquals(Snd.S_BAD_MSG, status(pcm(Snd.R_PCM_RELEASE, 0)), "RELEASE while RUNNING");
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_STOP, 0)));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_RELEASE, 0)));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_PREPARE, 0)), "PREPARE again after RELEASE");
    }

    @Test
    void playbackPeriodsReturnAtTheStreamsRate() {
        prepare(0);
        for (int i = 0; i < 4; i++) {
            send(0, period(i));
        }
        clock.advanceMillis(100);
        assertEquals(List.of(), txq.usedEntries(), "nothing is played before START");
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        clock.advance(24_999_999);
        assertEquals(List.of(), txq.usedEntries(), "a 25 ms period is not done after 24.99 ms");
        clock.advance(1);
        List<Used> first = txq.usedEntries();
        assertEquals(1, first.size());
        assertEquals(Snd.PCM_STATUS_SIZE, first.get(0).len(), "a playback message's used length is its status");
        assertEquals(Snd.S_OK, statusOf(first.get(0)));
        assertArrayEquals(period(0), backend.played.toByteArray());
        clock.advanceMillis(50);
        assertEquals(2, txq.usedEntries().size(), "two more periods in 50 ms");
        clock.advanceMillis(25);
        assertEquals(1, txq.usedEntries().size());
        ByteArrayOutputStream all = new ByteArrayOutputStream();
        for (int i = 0; i < 4; i++) {
            all.writeBytes(period(i));
        }
        assertArrayEquals(all.toByteArray(), backend.played.toByteArray(), "the samples, in order");
        assertEquals(0, clock.pending(), "no timer while the queue is empty");

        // An underrun: a period sent 100 ms later plays from when it came, not at once.
        clock.advanceMillis(100);
        send(0, period(9));
        clock.advanceMillis(24);
        assertEquals(List.of(), txq.usedEntries());
        clock.advanceMillis(1);
        assertEquals(1, txq.usedEntries().size());
    }

    @Test
    void stopHoldsMessagesAndReleaseReturnsThemUnplayed() {
        prepare(0);
        send(0, period(0));
        send(0, period(1));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        clock.advanceMillis(10);
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_STOP, 0)));
        clock.advanceMillis(100);
        assertEquals(List.of(), txq.usedEntries(), "a stopped stream plays nothing");
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        clock.advanceMillis(25);
        assertEquals(1, txq.usedEntries().size(), "START again: the period plays in full");
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_STOP, 0)));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_RELEASE, 0)));
        List<Used> released = txq.usedEntries();
        assertEquals(1, released.size(), "RELEASE completes every pending message (§5.14.6.6.5)");
        assertEquals(Snd.S_OK, statusOf(released.get(0)));
        assertArrayEquals(period(0), backend.played.toByteArray(), "the released period was not played");
        assertEquals(0, clock.pending());
    }

    @Test
    void captureFillsPeriodsAtTheStreamsRate() {
        prepare(1);
        for (int i = 0; i < 2; i++) {
            rxq.addChain(List.of(le(4).putInt(1).array()), List.of(PERIOD, Snd.PCM_STATUS_SIZE));
        }
        snd.queueNotify(Snd.RXQ);
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 1)));
        clock.advanceMillis(24);
        assertEquals(List.of(), rxq.usedEntries());
        clock.advanceMillis(26);
        List<Used> used = rxq.usedEntries();
        assertEquals(2, used.size());
        for (int p = 0; p < 2; p++) {
            Used u = used.get(p);
            assertEquals(PERIOD + Snd.PCM_STATUS_SIZE, u.len(), "samples and status");
            for (int i = 0; i < PERIOD; i++) {
                assertEquals((byte) ((p * PERIOD + i) * 7), u.written()[i]);
            }
            assertEquals(Snd.S_OK, statusOf(u));
        }
    }

    @Test
    void hostileTransfersGetBadMessageAndNeverPlay() {
        send(0, period(0));
        assertEquals(Snd.S_BAD_MSG, statusOf(txq.usedEntries().get(0)), "before SET_PARAMS and PREPARE");
        prepare(0);
        prepare(1);
        send(5, period(0));
        assertEquals(Snd.S_BAD_MSG, statusOf(txq.usedEntries().get(0)), "no stream 5");
        send(1, period(0));
        assertEquals(Snd.S_BAD_MSG, statusOf(txq.usedEntries().get(0)), "playback on the capture stream");
        send(0, new byte[BUFFER + 2]);
        assertEquals(Snd.S_BAD_MSG, statusOf(txq.usedEntries().get(0)), "longer than the buffer");
        txq.addChain(List.of(new byte[2]), List.of(Snd.PCM_STATUS_SIZE));
        snd.queueNotify(Snd.TXQ);
        assertEquals(Snd.S_BAD_MSG, statusOf(txq.usedEntries().get(0)), "no header");
        txq.addChain(List.of(le(4).putInt(0).array(), period(0)), List.of());
        snd.queueNotify(Snd.TXQ);
        assertEquals(0, txq.usedEntries().get(0).len(), "no room for a status: returned with nothing written");
        rxq.addChain(List.of(le(4).putInt(1).array()), List.of(BUFFER + 16, Snd.PCM_STATUS_SIZE));
        snd.queueNotify(Snd.RXQ);
        Used rx = rxq.usedEntries().get(0);
        assertEquals(Snd.PCM_STATUS_SIZE, rx.len());
        rxq.addChain(List.of(le(4).putInt(0).array()), List.of(PERIOD, Snd.PCM_STATUS_SIZE));
        snd.queueNotify(Snd.RXQ);
        assertEquals(Snd.PCM_STATUS_SIZE, rxq.usedEntries().get(0).len(), "capture on the playback stream");
        // a buffer outside guest RAM
        int[] d = txq.reserveDescriptors(2);
        txq.writeDescriptor(d[0], 1L << 40, 4 + PERIOD, MockDriverQueue.DESC_F_NEXT, d[1]);
        txq.writeDescriptor(d[1], txq.allocate(8), 8, MockDriverQueue.DESC_F_WRITE, 0);
        txq.makeAvailable(d[0]);
        snd.queueNotify(Snd.TXQ);
        clock.advanceMillis(1000);
        assertEquals(0, backend.periods.size(), "nothing played");
        assertEquals(List.of(), context.resetReasons());
    }

    /**
     * The real clock (a timer thread posting to the loop): 8 periods of 25 ms come back in about 200 ms, not
     * at once. Printed; the bound is a sanity check only (the host may be busy).
     */
    @Test
    void onTheSystemClockPlaybackTakesRealTime() throws Exception {
        snd.close();
        PcmClock real = PcmClock.system("krun-snd-test-timer");
        snd = new VirtioSnd(backend, real);
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(controlq.configuredQueue(),
                eventq.configuredQueue(), txq.configuredQueue(), rxq.configuredQueue()));
        snd.activate(context);
        prepare(0);
        for (int i = 0; i < 4; i++) {
            send(0, period(i));
        }
        long start = System.nanoTime();
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        int returned = 0;
        int sent = 4;
        while (returned < 8 && System.nanoTime() - start < 5_000_000_000L) {
            int n;
            synchronized (context.eventLoop()) {
                n = txq.usedEntries().size();
                returned += n;
                for (int i = 0; i < n && sent < 8; i++) {
                    send(0, period(sent++));
                }
            }
            Thread.sleep(1);
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        System.out.println("[snd] 8 periods of 25 ms (200 ms of S16 stereo 48 kHz) returned in " + ms + " ms");
        assertEquals(8, returned);
        assertTrue(ms >= 195 && ms < 2000, ms + " ms");
        assertEquals(8 * PERIOD, backend.played.size());
    }

    @Test
    void resetCancelsTimersAndCloseClosesTheBackend() {
        prepare(0);
        send(0, period(0));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        assertEquals(1, clock.pending());
        snd.reset();
        assertEquals(0, clock.pending());
        clock.advanceMillis(100);
        assertEquals(0, backend.periods.size());
        snd.close();
        assertTrue(backend.closed);
        assertTrue(clock.closed);
    }

    // ---- snapshots

    private final RecordingBackend restoredBackend = new RecordingBackend();
    private final ManualClock restoredClock = new ManualClock();

    /**
     * The snapshot's VM goes away (its device closed, what it held unanswered); a fresh device over the same RAM,
     * its queues at the indices the transport saved, is activated and given {@code state}, as a restore does.
     */
    private void restore(byte[] state) {
        List<Virtqueue.Indices> indices = context.queues().stream().map(Virtqueue::indices).toList();
        snd.close();
        VirtioSnd fresh = new VirtioSnd(restoredBackend, restoredClock);
        MockDriverQueue[] mocks = {controlq, eventq, txq, rxq};
        List<Virtqueue> queues = new ArrayList<>();
        for (int i = 0; i < mocks.length; i++) {
            Virtqueue q = new Virtqueue(mocks[i].layout(), false);
            q.restoreIndices(indices.get(i));
            queues.add(q);
        }
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, queues);
        fresh.activate(context);
        snd = fresh;
        fresh.restoreState(state);
    }

    @Test
    void heldPlaybackGoesOnInTheRestoredDeviceInOrderAndAtItsRate() {
        prepare(0);
        send(0, period(0));
        send(0, period(1));
        send(5, period(8)); // answered at once (no stream 5): between held messages in the ring
        send(0, period(2));
        send(0, period(3));
        assertEquals(List.of(Snd.S_BAD_MSG), txq.usedEntries().stream().map(VirtioSndTest::statusOf).toList());
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        clock.advanceMillis(25);
        assertEquals(1, txq.usedEntries().size());
        assertArrayEquals(period(0), backend.played.toByteArray());

        byte[] state = snd.saveState();
        restore(state);
        assertEquals(VirtioSnd.State.RUNNING, snd.stream(0).state);
        assertEquals(3, snd.stream(0).pending.size(), "the three messages held, taken again from the ring");
        assertEquals(List.of(), txq.usedEntries(), "none answered at the restore, the bad one not again");
        restoredClock.advance(24_999_999);
        assertEquals(List.of(), txq.usedEntries(), "the stream goes on from the restore, at its rate");
        restoredClock.advance(1);
        assertEquals(1, txq.usedEntries().size());
        send(0, period(4));
        restoredClock.advanceMillis(75);
        List<Used> used = txq.usedEntries();
        assertEquals(3, used.size());
        assertTrue(used.stream().allMatch(u -> statusOf(u) == Snd.S_OK));
        ByteArrayOutputStream rest = new ByteArrayOutputStream();
        for (int i = 1; i <= 4; i++) {
            rest.writeBytes(period(i));
        }
        assertArrayEquals(rest.toByteArray(), restoredBackend.played.toByteArray(), "periods 1 to 4, in order, played once");
        assertEquals(0, restoredClock.pending());
    }

    @Test
    void heldCaptureIsRecordedByTheRestoredDevicesBackend() {
        assertEquals(Snd.S_OK, status(setParams(1, BUFFER, PERIOD, 2, Snd.FMT_S16, RATE_48000)));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_PREPARE, 1)));
        for (int i = 0; i < 2; i++) {
            rxq.addChain(List.of(le(4).putInt(1).array()), List.of(PERIOD, Snd.PCM_STATUS_SIZE));
        }
        snd.queueNotify(Snd.RXQ);
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 1)));
        restore(snd.saveState());
        restoredClock.advanceMillis(50);
        List<Used> used = rxq.usedEntries();
        assertEquals(2, used.size());
        for (int i = 0; i < 2; i++) {
            assertEquals(PERIOD + Snd.PCM_STATUS_SIZE, used.get(i).len());
            assertEquals(Snd.S_OK, statusOf(used.get(i)));
            assertEquals((byte) (i * PERIOD * 7), used.get(i).written()[0], "the restored backend's samples");
        }
        assertEquals(2 * PERIOD, restoredBackend.captured);
        assertEquals(0, backend.captured, "the snapshot's backend recorded nothing");
    }

    @Test
    void parametersAndStatesComeBackWithoutHeldMessages() {
        prepare(0);
        assertEquals(Snd.S_OK, status(setParams(1, 2 * PERIOD, PERIOD, 1, Snd.FMT_FLOAT, 6)));
        restore(snd.saveState());
        assertEquals(VirtioSnd.State.PREPARED, snd.stream(0).state);
        assertEquals(new PcmParams(BUFFER, PERIOD, 2, Snd.FMT_S16, 48000), snd.stream(0).params);
        assertEquals(VirtioSnd.State.PARAMS_SET, snd.stream(1).state);
        assertEquals(new PcmParams(2 * PERIOD, PERIOD, 1, Snd.FMT_FLOAT, 44100), snd.stream(1).params);
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)), "START without SET_PARAMS again");
        send(0, period(7));
        restoredClock.advanceMillis(25);
        assertArrayEquals(period(7), restoredBackend.played.toByteArray());

        VirtioSnd inactive = new VirtioSnd(new RecordingBackend(), new ManualClock());
        assertArrayEquals(new byte[0], inactive.saveState());
        inactive.restoreState(new byte[0]);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> inactive.restoreState(snd.saveState()));
        assertEquals("virtio-snd: state of an active device given to an inactive one", e.getMessage());
        inactive.close();
    }

    @Test
    void aStateThatDoesNotFitIsRefusedWithOneLine() {
        prepare(0);
        send(0, period(0));
        send(0, period(1));
        byte[] state = snd.saveState();
        // version, then stream 0: state, has-params, 14 bytes of parameters, 2 held (ring entry, head) ...
        int heldAt = 4 + 2 + 14;
        ByteBuffer b = ByteBuffer.wrap(state);
        assertEquals(2, b.getInt(heldAt));

        byte[] version = state.clone();
        version[3] = 9;
        byte[] truncated = java.util.Arrays.copyOf(state, state.length - 1);
        byte[] wrongHead = state.clone();
        ByteBuffer.wrap(wrongHead).putInt(heldAt + 4 + 8 + 4, ByteBuffer.wrap(state).getInt(heldAt + 4 + 4));
        byte[] badRate = state.clone();
        ByteBuffer.wrap(badRate).putInt(4 + 2 + 10, 12345);
        byte[] heldWhileIdle = state.clone();
        heldWhileIdle[4] = (byte) VirtioSnd.State.PARAMS_SET.ordinal();
        byte[] badState = state.clone();
        badState[4] = 42;
        List<Virtqueue.Indices> indices = context.queues().stream().map(Virtqueue::indices).toList();
        for (var c : List.of(
                java.util.Map.entry(version, "virtio-snd: saved state version 9 (this krun reads 1)"),
                java.util.Map.entry(truncated, "virtio-snd: saved state is truncated"),
                java.util.Map.entry(wrongHead, "virtio-snd: saved stream 0: ring entry 1 no longer holds its message 0"),
                java.util.Map.entry(badRate, "virtio-snd: saved stream 0 has parameters this device does not offer: buffer 19200, period 4800, 2 channels, format 5, 12345 Hz"),
                java.util.Map.entry(heldWhileIdle, "virtio-snd: saved stream 0 holds 2 messages while PARAMS_SET"),
                java.util.Map.entry(badState, "virtio-snd: saved stream 0 has state 42")))
        {
            VirtioSnd fresh = new VirtioSnd(new RecordingBackend(), new ManualClock());
            MockDriverQueue[] mocks = {controlq, eventq, txq, rxq};
            List<Virtqueue> queues = new ArrayList<>();
            for (int i = 0; i < mocks.length; i++) {
                Virtqueue q = new Virtqueue(mocks[i].layout(), false);
                q.restoreIndices(indices.get(i));
                queues.add(q);
            }
            fresh.activate(new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, queues));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fresh.restoreState(c.getKey()));
            assertEquals(c.getValue(), e.getMessage());
            fresh.close();
        }
        restore(state);
        assertEquals(2, snd.stream(0).pending.size(), "the untouched state restores");
    }

    @Test
    void aMangledStateIsRefusedOrRestoredNeverACrash() {
        prepare(0);
        send(0, period(0));
        send(0, period(1));
        assertEquals(Snd.S_OK, status(pcm(Snd.R_PCM_START, 0)));
        byte[] state = snd.saveState();
        List<Virtqueue.Indices> indices = context.queues().stream().map(Virtqueue::indices).toList();
        java.util.Random random = new java.util.Random(17);
        MockDriverQueue[] mocks = {controlq, eventq, txq, rxq};
        int refused = 0;
        for (int round = 0; round < 2000; round++) {
            byte[] mangled = random.nextInt(8) == 0 ? java.util.Arrays.copyOf(state, random.nextInt(state.length + 8)) : state.clone();
            for (int k = 1 + random.nextInt(3); k > 0 && mangled.length > 0; k--) {
                mangled[random.nextInt(mangled.length)] = (byte) random.nextInt(256);
            }
            VirtioSnd fresh = new VirtioSnd(new RecordingBackend(), new ManualClock());
            List<Virtqueue> queues = new ArrayList<>();
            for (int i = 0; i < mocks.length; i++) {
                Virtqueue q = new Virtqueue(mocks[i].layout(), false);
                q.restoreIndices(indices.get(i));
                queues.add(q);
            }
            fresh.activate(new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, queues));
            try {
                fresh.restoreState(mangled);
            } catch (IllegalArgumentException e) {
                assertEquals(1, e.getMessage().lines().count(), e.getMessage());
                assertTrue(e.getMessage().startsWith("virtio-snd: "), e.getMessage());
                refused++;
            } finally {
                fresh.close();
            }
        }
        assertTrue(refused > 1000, refused + " of 2000 mangled states refused");
    }
}
