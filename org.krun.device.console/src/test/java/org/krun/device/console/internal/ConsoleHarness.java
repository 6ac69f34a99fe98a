package org.krun.device.console.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.krun.api.ConsoleSpec;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;

/**
 * An active {@link VirtioConsole} with a {@link MockDriverQueue} behind each of its queues, played from
 * the guest driver's side (drivers/char/virtio_console.c): send control messages, post receive buffers,
 * transmit output, and read back what the device returned. Control messages are described as short
 * strings ({@code "PORT_NAME(1,krun-stdin)"}) so tests compare whole conversations.
 */
final class ConsoleHarness implements AutoCloseable {
    static final int QUEUE_SIZE = 64;
    static final int CONTROL_BUFFER = 64;

    private static final String[] EVENTS = {"DEVICE_READY", "DEVICE_ADD", "DEVICE_REMOVE", "PORT_READY",
            "CONSOLE_PORT", "RESIZE", "PORT_OPEN", "PORT_NAME"};

    final TestGuestMemory ram = TestGuestMemory.create(4 << 20);
    final VirtioConsole console;
    List<MockDriverQueue> queues;
    FakeDeviceContext context;

    ConsoleHarness(ConsoleSpec spec) {
        console = new VirtioConsole(spec);
        activate();
    }

    /** Activates the device on fresh queues, as the driver does after DRIVER_OK (again after a reset). */
    void activate() {
        queues = new ArrayList<>();
        List<Virtqueue> deviceQueues = new ArrayList<>();
        for (int i = 0; i < console.queueCount(); i++) {
            MockDriverQueue q = new MockDriverQueue(ram, QUEUE_SIZE);
            queues.add(q);
            deviceQueues.add(q.configuredQueue());
        }
        context = new FakeDeviceContext(ram.memory(), VirtioConsole.F_MULTIPORT | VirtioConsole.F_SIZE
                | VirtioFeatures.VERSION_1, deviceQueues);
        console.activate(context);
    }

    MockDriverQueue queue(int index) {
        return queues.get(index);
    }

    void notify(int queue) {
        console.queueNotify(queue);
    }

    /** The guest sends {@code id, event, value} on the control transmit queue (and reclaims the buffer). */
    void sendControl(int id, int event, int value) {
        byte[] msg = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN)
                .putInt(id).putShort((short) event).putShort((short) value).array();
        MockDriverQueue q = queue(VirtioConsole.CONTROL_TRANSMIT_QUEUE);
        q.addReadable(msg);
        notify(VirtioConsole.CONTROL_TRANSMIT_QUEUE);
        if (q.usedEntries().size() != 1) {
            throw new AssertionError("the device did not return the control message");
        }
    }

    /** The guest posts {@code n} control receive buffers of {@code bytes} each. */
    void postControlBuffers(int n, int bytes) {
        for (int i = 0; i < n; i++) {
            queue(VirtioConsole.CONTROL_RECEIVE_QUEUE).addWritable(bytes);
        }
        notify(VirtioConsole.CONTROL_RECEIVE_QUEUE);
    }

    /** The control messages the device returned since the last call, described. */
    List<String> receivedControl() {
        List<String> out = new ArrayList<>();
        for (MockDriverQueue.Used u : queue(VirtioConsole.CONTROL_RECEIVE_QUEUE).usedEntries()) {
            out.add(describe(u.written()));
        }
        return out;
    }

    /** DEVICE_READY, then PORT_READY for every port the device added; returns all the device said. */
    List<String> handshake() {
        postControlBuffers(32, CONTROL_BUFFER);
        sendControl(-1, ControlMessage.DEVICE_READY, 1);
        List<String> said = new ArrayList<>(receivedControl());
        for (ConsolePort p : console.ports()) {
            sendControl(p.id(), ControlMessage.PORT_READY, 1);
        }
        said.addAll(receivedControl());
        // The guest init then opens its ports (which tells the host with PORT_OPEN).
        for (ConsolePort p : console.ports()) {
            if (!p.console()) {
                sendControl(p.id(), ControlMessage.PORT_OPEN, 1);
            }
        }
        return said;
    }

    /** Posts one receive buffer of {@code bytes} on {@code queue} and notifies. */
    void postReceiveBuffer(int queue, int bytes) {
        queue(queue).addWritable(bytes);
        notify(queue);
    }

    /** Concatenation of what the device wrote into {@code queue}'s returned buffers since the last call. */
    byte[] received(int queue) {
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        for (MockDriverQueue.Used u : queue(queue).usedEntries()) {
            out.writeBytes(u.written());
        }
        return out.toByteArray();
    }

    /**
     * A control message as text: {@code EVENT(id,value)}, with the name for PORT_NAME and
     * {@code cols x rows} for RESIZE; {@code "empty"} for a buffer the device returned unwritten.
     */
    static String describe(byte[] m) {
        if (m.length == 0) {
            return "empty";
        }
        if (m.length < ControlMessage.HEADER_SIZE) {
            return "short" + Arrays.toString(m);
        }
        ByteBuffer b = ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN);
        int id = b.getInt();
        int event = b.getShort() & 0xffff;
        int value = b.getShort() & 0xffff;
        String name = event < EVENTS.length ? EVENTS[event] : "EVENT" + event;
        return switch (event) {
            case ControlMessage.PORT_NAME ->
                name + "(" + id + "," + new String(m, 8, m.length - 8, StandardCharsets.US_ASCII) + ")";
            case ControlMessage.RESIZE -> name + "(" + id + "," + (b.getShort() & 0xffff) + "x" + (b.getShort() & 0xffff)
                    + ")";
            default -> name + "(" + id + "," + value + ")" + (m.length > 8 ? "+" + (m.length - 8) : "");
        };
    }

    @Override
    public void close() {
        console.close();
        ram.close();
    }
}
