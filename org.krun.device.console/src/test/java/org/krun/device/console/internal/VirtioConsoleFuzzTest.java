package org.krun.device.console.internal;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.api.ConsoleSpec;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of virtio-console (virtio 1.2 §5.3) with a hostile driver: multiport control
 * messages of every event, for any port id and value, short, long and split; storms of DEVICE_READY and
 * PORT_READY with no control buffers posted; control and receive buffers of any size; output on every
 * port; garbage descriptors on any queue; kicks for queues that do not exist; resets; and the host side at
 * the same time (input arriving and ending, resizes), in terminal and pipes mode, with and without
 * MULTIPORT.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds}: every chain on a transmit queue (control or
 * port output) comes back, and nothing is left in those rings after a kick, unless the device asked for a
 * reset; at most {@link VirtioConsole#MAX_PENDING_CONTROL} control messages wait for the driver, however
 * many it provokes; ports are announced (DEVICE_ADD) once per activation whatever the storm; every control
 * message the device sends is well formed, for a port that exists, with its name; the host's input reaches
 * the guest in order, without loss or duplication, and only on the input port; the guest's output reaches
 * its port's host stream byte for byte.
 */
class VirtioConsoleFuzzTest {

    private static final int QUEUE_SIZE = 64;
    private static final int MAX_STEPS = 96;
    private static final TestGuestMemory MEMORY = TestGuestMemory.create(4 << 20);
    private static final Set<Integer> DEVICE_EVENTS = Set.of(ControlMessage.DEVICE_ADD, ControlMessage.CONSOLE_PORT,
            ControlMessage.RESIZE, ControlMessage.PORT_OPEN, ControlMessage.PORT_NAME);

    static {
        FuzzBounds.quietLogs("org.krun.device.console");
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-console", FuzzBounds.Limits.defaults(),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void controlStormsAndHostileQueuesStayBounded(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** A byte stream whose bytes can be compared where they are. */
    private static final class Bytes extends ByteArrayOutputStream {
        byte[] array() {
            return buf;
        }
    }

    /** Counts what a port's host stream receives; keeps the first bytes for comparison. */
    private static final class Sink extends OutputStream {
        final ByteArrayOutputStream head = new ByteArrayOutputStream();
        long count;

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            count += len;
            if (head.size() < 1 << 16) {
                head.write(b, off, Math.min(len, (1 << 16) - head.size()));
            }
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final boolean pipes;
        private final Sink out = new Sink();
        private final Sink err = new Sink();
        private final VirtioConsole console;
        private final InputPipe input;
        private final long features;
        private List<MockDriverQueue> queues;
        private List<Virtqueue> deviceQueues;
        private FakeDeviceContext context;

        /** What the host wrote to the console's input, and what reached the guest. */
        private final Bytes hostInput = new Bytes();
        private final Bytes guestReceived = new Bytes();
        /** How many bytes of {@link #guestReceived} were found equal to the host's input so far. */
        private int receivedChecked;
        /** What the device took from each port's transmit queue (chains built by the rules), in order. */
        private final ByteArrayOutputStream[] guestSent;
        /** The data of each outstanding output chain, by queue and head. */
        private List<java.util.Map<Integer, byte[]>> output;
        /** DEVICE_ADD announcements per port in this activation. */
        private int[] announced;
        /** Garbage was posted on a queue: which bytes it carried is unknown. */
        private boolean garbage;
        /** Garbage was posted where host input goes: some of it went there. */
        private boolean inputUnknown;
        /** Signals the host handed the console, and what the guest found on the signal port. */
        private final ByteArrayOutputStream hostSignals = new ByteArrayOutputStream();
        private final ByteArrayOutputStream guestSignals = new ByteArrayOutputStream();
        /** Garbage was posted where signals go. */
        private boolean signalsUnknown;
        private boolean inputClosed;

        Scenario(FuzzInput in) throws IOException {
            this.in = in;
            MEMORY.clear();
            pipes = in.bool();
            ConsoleSpec spec = pipes ? ConsoleSpec.pipes(out, err, in.u8() >= 32)
                    : ConsoleSpec.terminal(out, in.pick(0, 80, 300, 0xffff), in.pick(0, 24, 100, 0xffff));
            console = new VirtioConsole(spec.withSignals(in.u8() < 96));
            input = (InputPipe) console.input();
            features = (in.u8() >= 32 ? VirtioConsole.F_MULTIPORT : 0) | (in.bool() ? VirtioConsole.F_SIZE : 0)
                    | VirtioFeatures.VERSION_1;
            guestSent = new ByteArrayOutputStream[console.ports().size()];
            for (int i = 0; i < guestSent.length; i++) {
                guestSent[i] = new ByteArrayOutputStream();
            }
            activate();
        }

        private void activate() {
            queues = new ArrayList<>();
            deviceQueues = new ArrayList<>();
            output = new ArrayList<>();
            for (int i = 0; i < console.queueCount(); i++) {
                MockDriverQueue q = new MockDriverQueue(MEMORY, QUEUE_SIZE);
                queues.add(q);
                deviceQueues.add(q.configuredQueue(in.bool()));
                output.add(new java.util.HashMap<>());
            }
            context = new FakeDeviceContext(MEMORY.memory(), features, deviceQueues);
            console.activate(context);
            announced = new int[console.ports().size()];
        }

        void run() throws IOException {
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    step();
                    check();
                }
                // The driver kicks every transmit queue one last time: nothing may stay there.
                for (int q = 0; q < console.queueCount(); q++) {
                    if (transmit(q)) {
                        console.queueNotify(q);
                    }
                }
                collect();
                check();
                finalChecks();
            } finally {
                console.close();
            }
        }

        private void step() throws IOException {
            switch (in.below(14)) {
                case 0, 1, 2 -> control(in.pick(ControlMessage.DEVICE_READY, ControlMessage.PORT_READY,
                        ControlMessage.PORT_OPEN, ControlMessage.PORT_OPEN, ControlMessage.RESIZE, ControlMessage.DEVICE_ADD,
                        in.u16()), portId(), in.pick(1, 1, 0, in.u16()));
                case 3 -> storm();
                case 4 -> post(VirtioConsole.CONTROL_RECEIVE_QUEUE, 1 + in.below(8), in.pick(64, 64, 8, 4, 0, 12));
                case 5 -> post(receiveQueueOf(in.below(console.ports().size())), 1 + in.below(4), in.pick(64, 1, 4096, 0));
                case 6 -> transmitOutput(in.below(console.ports().size()));
                case 7 -> hostInput();
                case 8 -> {
                    if (in.u8() < 32) {
                        input.close();
                        inputClosed = true;
                    } else if (console.carriesSignals()) {
                        int signal = 1 + in.below(64);
                        if (console.signal(signal)) {
                            hostSignals.write(signal);
                        }
                    }
                }
                case 9 -> console.resize(in.u16(), in.u16());
                case 10 -> garbageChain(in.below(console.queueCount()));
                case 11 -> console.queueNotify(in.pick(0, 1, 2, 3, console.queueCount(), -1, in.u8()));
                case 12 -> {
                    if (in.u8() < 24) {
                        console.reset();
                        activate();
                    }
                }
                default -> control(ControlMessage.PORT_OPEN, portId(), 1);
            }
            collect();
        }

        private int portId() {
            return in.pick(-1, 0, 1, 2, 3, 4, in.i32());
        }

        private static int receiveQueueOf(int port) {
            return port == 0 ? 0 : 2 * port + 2;
        }

        private boolean transmit(int queue) {
            return queue == 1 || queue == VirtioConsole.CONTROL_TRANSMIT_QUEUE || (queue > 3 && queue % 2 == 1);
        }

        // ---- the driver

        /** A control message on the control transmit queue: 8 bytes, or short, long or split. */
        private void control(int event, int id, int value) {
            byte[] m = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putInt(id).putShort((short) event)
                    .putShort((short) value).array();
            List<byte[]> readable = switch (in.below(8)) {
                case 0 -> List.of(Arrays.copyOf(m, in.below(8)));
                case 1 -> List.of(Arrays.copyOf(m, 4), Arrays.copyOfRange(m, 4, 8));
                case 2 -> List.of(Arrays.copyOf(m, 8 + in.below(64)));
                default -> List.of(m);
            };
            add(VirtioConsole.CONTROL_TRANSMIT_QUEUE, readable, List.of());
            console.queueNotify(VirtioConsole.CONTROL_TRANSMIT_QUEUE);
        }

        /** DEVICE_READY or PORT_READY again and again, with or without control buffers to answer into. */
        private void storm() {
            int event = in.bool() ? ControlMessage.DEVICE_READY : ControlMessage.PORT_READY;
            int times = 1 + in.below(200);
            for (int i = 0; i < times; i++) {
                byte[] m = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                        .putInt(event == ControlMessage.DEVICE_READY ? -1 : i % Math.max(1, console.ports().size()))
                        .putShort((short) event).putShort((short) 1).array();
                if (add(VirtioConsole.CONTROL_TRANSMIT_QUEUE, List.of(m), List.of()) < 0) {
                    console.queueNotify(VirtioConsole.CONTROL_TRANSMIT_QUEUE); // ring full: let the device drain it
                    collect();
                    add(VirtioConsole.CONTROL_TRANSMIT_QUEUE, List.of(m), List.of());
                }
            }
            console.queueNotify(VirtioConsole.CONTROL_TRANSMIT_QUEUE);
        }

        private void post(int queue, int buffers, int size) {
            for (int i = 0; i < buffers; i++) {
                add(queue, List.of(), List.of(size));
            }
            console.queueNotify(queue);
        }

        private void transmitOutput(int port) {
            byte[] data = in.bytes(512);
            List<byte[]> readable = data.length > 1 && in.bool()
                    ? List.of(Arrays.copyOf(data, data.length / 2), Arrays.copyOfRange(data, data.length / 2, data.length))
                    : List.of(data);
            int queue = receiveQueueOf(port) + 1;
            int head = add(queue, readable, List.of());
            if (head >= 0) {
                output.get(queue).put(head, data);
            }
            console.queueNotify(queue);
        }

        private void hostInput() throws IOException {
            byte[] data = in.bytes(1024);
            int room = InputPipe.CAPACITY - input.available(); // a full pipe blocks its writer: stay within it
            int n = Math.min(data.length, room);
            input.write(data, 0, n);
            if (!inputClosed) {
                hostInput.write(data, 0, n);
            }
        }

        /** Any descriptors on any queue. */
        private void garbageChain(int queue) {
            MockDriverQueue q = queues.get(queue);
            int n = 1 + in.below(4);
            if (n > q.freeDescriptorCount()) {
                return;
            }
            garbage = true;
            inputUnknown |= queue == receiveQueueOf(pipes ? 1 : 0);
            signalsUnknown |= console.carriesSignals() && queue == receiveQueueOf(console.ports().size() - 1);
            int[] d = q.reserveDescriptors(n);
            long ram = MEMORY.memory().size();
            for (int i = 0; i < n; i++) {
                long address = switch (in.below(4)) {
                    case 0 -> ram - in.below(64);
                    case 1 -> in.i64();
                    default -> ram - 4096 - in.below(4096);
                };
                int length = in.pick(0, 1, 8, 4096, -1, in.i32());
                int flags = in.below(8);
                driverWrite(q, d[i], address, length, flags | (i + 1 < n ? MockDriverQueue.DESC_F_NEXT : 0),
                        i + 1 < n ? d[i + 1] : in.below(QUEUE_SIZE + 2));
            }
            q.makeAvailable(in.u8() < 8 ? in.u16() : d[0]);
            console.queueNotify(queue);
        }

        private static void driverWrite(MockDriverQueue q, int index, long address, int length, int flags, int next) {
            q.writeDescriptor(index, address, length, flags, next);
        }

        /** Adds a chain if the queue has descriptors and RAM is left: its head, or -1. */
        private int add(int queue, List<byte[]> readable, List<Integer> writable) {
            MockDriverQueue q = queues.get(queue);
            // Asked, not tried: a storm against a full ring or exhausted RAM would otherwise throw thousands of
            // exceptions per input, whose stack traces were charged to the device's heap bound (24 MiB: a
            // false finding, JFR allocation samples all in Throwable.fillInStackTrace under addChain).
            return q.fits(readable, writable) ? q.addChain(readable, writable) : -1;
        }

        // ---- what came back

        private void collect() {
            int inputPort = pipes ? 1 : 0;
            for (int qi = 0; qi < queues.size(); qi++) {
                for (MockDriverQueue.Used u : queues.get(qi).usedEntries()) {
                    byte[] sent = output.get(qi).remove(u.id());
                    if (sent != null) {
                        guestSent[qi == 1 ? 0 : (qi - 2) / 2].writeBytes(sent);
                    }
                    if (qi == VirtioConsole.CONTROL_RECEIVE_QUEUE) {
                        checkControlMessage(u.written());
                    } else if (qi == receiveQueueOf(inputPort) && console.ports().get(inputPort).input()) {
                        guestReceived.writeBytes(u.written());
                    } else if (console.carriesSignals() && qi == receiveQueueOf(console.ports().size() - 1)) {
                        guestSignals.writeBytes(u.written());
                    } else if (!transmit(qi) && u.len() != 0 && !garbage) {
                        throw new AssertionError("receive queue " + qi + ", of a port without input, returned " + u.len()
                                + " bytes");
                    }
                }
            }
        }

        private void checkControlMessage(byte[] m) {
            if (m.length == 0) {
                return; // a buffer too small for the message, returned empty
            }
            if (m.length < ControlMessage.HEADER_SIZE) {
                throw new AssertionError("a control message of " + m.length + " bytes");
            }
            ByteBuffer b = ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN);
            int id = b.getInt();
            int event = b.getShort() & 0xffff;
            if (id < 0 || id >= console.ports().size() || !DEVICE_EVENTS.contains(event)) {
                throw new AssertionError("the device sent event " + event + " for port " + id);
            }
            if (event == ControlMessage.DEVICE_ADD && ++announced[id] > 1) {
                throw new AssertionError("port " + id + " announced twice in one activation");
            }
            if (event == ControlMessage.PORT_NAME) {
                String name = new String(m, 8, m.length - 8, StandardCharsets.US_ASCII);
                if (!name.equals(console.ports().get(id).name())) {
                    throw new AssertionError("port " + id + " named " + name);
                }
            }
        }

        private void check() {
            if (console.pendingControlMessages() > VirtioConsole.MAX_PENDING_CONTROL) {
                throw new AssertionError(console.pendingControlMessages() + " control messages pending");
            }
            if (!signalsUnknown) {
                byte[] sent = hostSignals.toByteArray();
                byte[] got = guestSignals.toByteArray();
                if (got.length > sent.length || !Arrays.equals(got, Arrays.copyOf(sent, got.length))) {
                    throw new AssertionError("the guest's signal port got " + Arrays.toString(got) + ", the host sent "
                            + Arrays.toString(sent));
                }
            }
            if (inputUnknown) {
                return;
            }
            // Both only grow, and the bytes before receivedChecked were compared at an earlier step: compare the
            // new ones, in place (copying both streams at every step allocated more than the device did).
            int sent = hostInput.size();
            int got = guestReceived.size();
            if (got > sent || !Arrays.equals(guestReceived.array(), receivedChecked, got, hostInput.array(), receivedChecked, got)) {
                throw new AssertionError("the guest received " + got + " bytes that are not the host's input ("
                        + sent + " written)");
            }
            receivedChecked = got;
        }

        private void finalChecks() {
            if (!context.resetReasons().isEmpty()) {
                return; // the device stopped serving, as the spec allows; the driver must reset it
            }
            for (int q = 0; q < deviceQueues.size(); q++) {
                Virtqueue vq = deviceQueues.get(q);
                if (transmit(q) && (vq.pending(MEMORY.memory()) != 0 || vq.nextAvail() != vq.nextUsed())) {
                    throw new AssertionError("transmit queue " + q + ": " + vq.pending(MEMORY.memory()) + " chains left, "
                            + vq.nextAvail() + " taken, " + vq.nextUsed() + " returned");
                }
            }
            if (garbage) {
                return;
            }
            for (int port = 0; port < console.ports().size(); port++) {
                OutputStream sink = console.ports().get(port).sink();
                if (sink == null) {
                    continue;
                }
                Sink s = (Sink) sink;
                long expected = 0;
                for (int p = 0; p < console.ports().size(); p++) {
                    if (console.ports().get(p).sink() == sink) {
                        expected += guestSent[p].size();
                    }
                }
                if (s.count != expected) {
                    throw new AssertionError("port " + port + "'s host stream got " + s.count + " bytes, the guest sent "
                            + expected);
                }
                if (sinkSharedBy(sink) == 1) {
                    byte[] want = guestSent[port].toByteArray();
                    byte[] got = s.head.toByteArray();
                    if (!Arrays.equals(got, Arrays.copyOf(want, got.length))) {
                        throw new AssertionError("port " + port + "'s host stream differs from what the guest sent");
                    }
                }
            }
        }

        private int sinkSharedBy(OutputStream sink) {
            int n = 0;
            for (ConsolePort p : console.ports()) {
                n += p.sink() == sink ? 1 : 0;
            }
            return n;
        }
    }
}
