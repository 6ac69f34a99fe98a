package org.krun.device.console.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

import org.krun.api.ConsoleSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.HostConsole;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.spi.virtio.Virtqueue;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * virtio-console with VIRTIO_CONSOLE_F_MULTIPORT (virtio 1.2 §5.3). Port 0 is the guest console; in pipes
 * mode, ports {@code krun-stdin}, {@code krun-stdout} and {@code krun-stderr} carry the command's streams
 * byte for byte, and closing the host's input closes the stdin port (the guest reads end-of-file).
 *
 * <p>All protocol work runs on the VM's event loop; host input arrives through an {@link InputPipe}.
 */
final class VirtioConsole implements VirtioDevice, HostConsole {
    private static final Logger LOG = LoggerFactory.getLogger(VirtioConsole.class);

    static final long F_SIZE = 1L;
    static final long F_MULTIPORT = 1L << 1;
    static final int QUEUE_SIZE = 256;
    static final int CONTROL_RECEIVE_QUEUE = 2;
    static final int CONTROL_TRANSMIT_QUEUE = 3;
    /** cols u16, rows u16, max_nr_ports u32, emerg_wr u32 (virtio 1.2 §5.3.4). */
    static final int CONFIG_SIZE = 12;

    static final String STDIN = "krun-stdin";
    static final String STDOUT = "krun-stdout";
    static final String STDERR = "krun-stderr";

    private sealed interface State permits Inactive, Active {
    }

    private record Inactive() implements State {
    }

    private record Active(GuestMemory mem, List<Virtqueue> queues, InterruptTrigger interrupt, EventLoop loop,
            DeviceContext context) implements State {
    }

    private static final State INACTIVE = new Inactive();

    private final ConsoleSpec spec;
    private final List<ConsolePort> ports;
    private final ConsolePort inputPort;
    private final InputPipe input;
    private volatile State state = INACTIVE;
    private volatile int columns;
    private volatile int rows;

    // protocol state, event loop only
    private final Deque<byte[]> controlOut = new ArrayDeque<>();
    private final boolean[] portReady;
    /** The guest has the port open (PORT_OPEN from the guest). Linux discards data for closed ports. */
    private final boolean[] guestOpen;
    private boolean hostClosedInput;

    VirtioConsole(ConsoleSpec spec) {
        this.spec = spec;
        this.columns = spec.columns();
        this.rows = spec.rows();
        List<ConsolePort> p = new ArrayList<>();
        if (spec.mode() == ConsoleSpec.Mode.TERMINAL) {
            p.add(new ConsolePort(0, "console", true, spec.stdout(), spec.input()));
        } else {
            p.add(new ConsolePort(0, "console", true, spec.stderr(), false));
            p.add(new ConsolePort(1, STDIN, false, null, true));
            p.add(new ConsolePort(2, STDOUT, false, spec.stdout(), false));
            p.add(new ConsolePort(3, STDERR, false, spec.stderr(), false));
        }
        this.ports = List.copyOf(p);
        this.inputPort = ports.stream().filter(ConsolePort::input).findFirst().orElse(null);
        this.portReady = new boolean[ports.size()];
        this.guestOpen = new boolean[ports.size()];
        this.input = new InputPipe(this::scheduleInput);
        if (inputPort == null || !spec.input()) {
            input.close(); // nobody will read, or nobody will write: the guest reads end-of-file at once
        }
    }

    List<ConsolePort> ports() {
        return ports;
    }

    @Override
    public int deviceType() {
        return VirtioIds.CONSOLE;
    }

    @Override
    public long deviceFeatures() {
        return F_SIZE | F_MULTIPORT;
    }

    @Override
    public int queueCount() {
        return 2 * ports.size() + 2;
    }

    @Override
    public int queueMaxSize(int index) {
        return QUEUE_SIZE;
    }

    @Override
    public int configSize() {
        return CONFIG_SIZE;
    }

    @Override
    public void readConfig(int offset, byte[] data) {
        ByteBuffer b = ByteBuffer.allocate(CONFIG_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort((short) columns).putShort((short) rows).putInt(ports.size()).putInt(0);
        System.arraycopy(b.array(), offset, data, 0, data.length);
    }

    @Override
    public void writeConfig(int offset, byte[] data) {
        // emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered; the rest is read-only.
    }

    @Override
    public void activate(DeviceContext context) {
        state = new Active(context.memory(), context.queues(), context.interrupt(), context.eventLoop(), context);
        if (!context.hasFeature(F_MULTIPORT)) {
            // Without MULTIPORT there is no control queue: port 0 exists from the start (virtio 1.2 §5.3.6).
            portReady[0] = true;
        }
    }

    @Override
    public void reset() {
        state = INACTIVE;
        controlOut.clear();
        java.util.Arrays.fill(portReady, false);
        java.util.Arrays.fill(guestOpen, false);
        hostClosedInput = false;
    }

    @Override
    public void queueNotify(int index) {
        if (!(state instanceof Active a)) {
            return;
        }
        if (index == CONTROL_TRANSMIT_QUEUE) {
            handleControl(a);
        } else if (index == CONTROL_RECEIVE_QUEUE) {
            flushControl(a);
        } else {
            int portId = index < 2 ? 0 : (index - 2) / 2;
            if (portId >= ports.size()) {
                return;
            }
            ConsolePort port = ports.get(portId);
            if (index == port.transmitQueue()) {
                drainOutput(a, port);
            } else {
                pumpInput(a);
            }
        }
    }

    // ---- host to guest

    private void scheduleInput() {
        if (state instanceof Active a) {
            a.loop().execute(() -> {
                if (state instanceof Active now) {
                    pumpInput(now);
                }
            });
        }
    }

    /** Moves buffered host input into the input port's receive buffers; closes the port at end-of-file. */
    private void pumpInput(Active a) {
        if (inputPort == null || !portReady[inputPort.id()]) {
            return;
        }
        // drivers/char/virtio_console.c in_intr(): data for a generic port nobody in the guest has open
        // is discarded, so it waits until the guest opens the port. The console port takes data at once.
        if (!inputPort.console() && !guestOpen[inputPort.id()]) {
            return;
        }
        Virtqueue q = a.queues().get(inputPort.receiveQueue());
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        while (input.available() > 0) {
            DescriptorChain chain = pop(a, q);
            if (chain == null) {
                break;
            }
            try {
                ChainWriter w = chain.writer(a.mem());
                byte[] bytes = input.peek((int) Math.min(w.remaining(), Integer.MAX_VALUE));
                w.write(bytes);
                input.consume(bytes.length); // only once the guest has them: a bad buffer loses nothing
                q.addUsed(a.mem(), chain.head(), (int) w.position());
            } catch (GuestMemoryException e) {
                q.addUsed(a.mem(), chain.head(), 0);
            }
            used = true;
        }
        if (used && q.needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
        if (input.atEof() && !inputPort.console() && !hostClosedInput) {
            hostClosedInput = true;
            sendControl(a, new ControlMessage(inputPort.id(), ControlMessage.PORT_OPEN, 0));
        }
    }

    // ---- guest to host

    private void drainOutput(Active a, ConsolePort port) {
        Virtqueue q = a.queues().get(port.transmitQueue());
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        DescriptorChain chain;
        while ((chain = pop(a, q)) != null) {
            try {
                if (port.sink() != null) {
                    copyOut(chain, a.mem(), port.sink());
                }
            } catch (GuestMemoryException e) {
                LOG.debug("console output from outside guest RAM dropped: {}", e.getMessage());
            } catch (IOException e) {
                LOG.debug("console output sink failed: {}", e.toString());
            }
            q.addUsed(a.mem(), chain.head(), 0);
            used = true;
        }
        if (used) {
            flushSink(port.sink());
            if (q.needsInterrupt(a.mem())) {
                a.interrupt().trigger(InterruptTrigger.QUEUE);
            }
        }
    }

    /**
     * Writes the chain's readable bytes to {@code sink}. The guest chooses the lengths: check that every
     * buffer is RAM first (nothing is written otherwise), then copy through a bounded buffer.
     */
    private static void copyOut(DescriptorChain chain, GuestMemory mem, OutputStream sink) throws IOException {
        ChainReader r = chain.reader(mem);
        List<MemorySegment> pieces = r.take(r.remaining());
        byte[] buf = new byte[(int) Math.min(chain.readableBytes(), 64 * 1024)];
        for (MemorySegment piece : pieces) {
            for (long off = 0; off < piece.byteSize(); ) {
                int n = (int) Math.min(buf.length, piece.byteSize() - off);
                MemorySegment.copy(piece, JAVA_BYTE, off, buf, 0, n);
                sink.write(buf, 0, n);
                off += n;
            }
        }
    }

    private static void flushSink(OutputStream sink) {
        if (sink != null) {
            try {
                sink.flush();
            } catch (IOException e) {
                LOG.debug("console output sink failed: {}", e.toString());
            }
        }
    }

    // ---- control queue (virtio 1.2 §5.3.6.2)

    private void handleControl(Active a) {
        Virtqueue q = a.queues().get(CONTROL_TRANSMIT_QUEUE);
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        DescriptorChain chain;
        while ((chain = pop(a, q)) != null) {
            ControlMessage m = null;
            try {
                ChainReader r = chain.reader(a.mem());
                m = ControlMessage.decode(r.readBytes((int) Math.min(r.remaining(), ControlMessage.HEADER_SIZE)));
            } catch (GuestMemoryException e) {
                LOG.debug("control message outside guest RAM: {}", e.getMessage());
            }
            q.addUsed(a.mem(), chain.head(), 0);
            used = true;
            if (m != null) {
                onControl(a, m);
            }
        }
        if (used && q.needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    private void onControl(Active a, ControlMessage m) {
        switch (m.event()) {
            case ControlMessage.DEVICE_READY -> {
                if (m.value() == 1) {
                    for (ConsolePort p : ports) {
                        sendControl(a, new ControlMessage(p.id(), ControlMessage.DEVICE_ADD, 0));
                    }
                }
            }
            case ControlMessage.PORT_READY -> {
                if (m.id() < 0 || m.id() >= ports.size() || m.value() != 1) {
                    return;
                }
                ConsolePort p = ports.get(m.id());
                portReady[p.id()] = true;
                if (p.console()) {
                    sendControl(a, new ControlMessage(p.id(), ControlMessage.CONSOLE_PORT, 1));
                    if (columns > 0 && rows > 0) {
                        sendControl(a, ControlMessage.resize(p.id(), columns, rows));
                    }
                } else {
                    sendControl(a, new ControlMessage(p.id(), ControlMessage.PORT_NAME, 0,
                            p.name().getBytes(StandardCharsets.US_ASCII)));
                }
                // An input port with no input left stays closed: the guest reads end-of-file at once.
                boolean open = p.console() || !p.input() || !input.atEof();
                if (open) {
                    sendControl(a, new ControlMessage(p.id(), ControlMessage.PORT_OPEN, 1));
                } else if (p == inputPort) {
                    hostClosedInput = true;
                }
                if (p == inputPort) {
                    pumpInput(a);
                }
            }
            case ControlMessage.PORT_OPEN -> {
                if (m.id() < 0 || m.id() >= ports.size()) {
                    return;
                }
                guestOpen[m.id()] = m.value() == 1;
                if (guestOpen[m.id()] && ports.get(m.id()) == inputPort) {
                    pumpInput(a);
                }
            }
            default -> LOG.debug("unexpected console control event {} for port {}", m.event(), m.id());
        }
    }

    private void sendControl(Active a, ControlMessage m) {
        controlOut.add(m.encode());
        flushControl(a);
    }

    private void flushControl(Active a) {
        Virtqueue q = a.queues().get(CONTROL_RECEIVE_QUEUE);
        if (!q.ready()) {
            return;
        }
        boolean used = false;
        while (!controlOut.isEmpty()) {
            DescriptorChain chain = pop(a, q);
            if (chain == null) {
                break;
            }
            byte[] msg = controlOut.poll();
            int written = 0;
            try {
                ChainWriter w = chain.writer(a.mem());
                if (w.remaining() >= msg.length) {
                    w.write(msg);
                    written = msg.length;
                } else {
                    LOG.debug("control buffer of {} bytes too small for a {}-byte message", w.remaining(), msg.length);
                }
            } catch (GuestMemoryException e) {
                LOG.debug("control buffer outside guest RAM: {}", e.getMessage());
            }
            q.addUsed(a.mem(), chain.head(), written);
            used = true;
        }
        if (used && q.needsInterrupt(a.mem())) {
            a.interrupt().trigger(InterruptTrigger.QUEUE);
        }
    }

    /** The next well-formed chain (virtio 1.2 §2.7: malformed ones go back unused; a broken queue asks for a reset). */
    private static DescriptorChain pop(Active a, Virtqueue q) {
        return q.popValid(a.mem(), a.context(), m -> LOG.debug("malformed descriptor chain returned unused: {}", m));
    }

    // ---- HostConsole

    @Override
    public OutputStream input() {
        return input;
    }

    @Override
    public void resize(int columns, int rows) {
        this.columns = columns;
        this.rows = rows;
        if (state instanceof Active a) {
            a.loop().execute(() -> {
                if (!(state instanceof Active now)) {
                    return;
                }
                if (!now.context().hasFeature(F_MULTIPORT)) {
                    now.interrupt().trigger(InterruptTrigger.CONFIG); // the size lives in config space (F_SIZE)
                } else if (portReady[0]) {
                    sendControl(now, ControlMessage.resize(0, columns, rows));
                }
            });
        }
    }

    @Override
    public void flush() {
        for (ConsolePort p : ports) {
            flushSink(p.sink());
        }
    }

    @Override
    public void close() {
        input.discard();
        flush();
    }
}
