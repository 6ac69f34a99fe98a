package org.krun.device.console.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.System.Logger.Level;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

import org.krun.api.ConsoleSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.ChainReader;
import org.krun.spi.virtio.ChainWriter;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.HostConsole;
import org.krun.spi.virtio.VirtioIds;

/**
 * virtio-console with VIRTIO_CONSOLE_F_MULTIPORT (virtio 1.2 §5.3). Port 0 is the guest console; in pipes
 * mode, ports {@code krun-stdin}, {@code krun-stdout} and {@code krun-stderr} carry the command's streams
 * byte for byte, and closing the host's input closes the stdin port (the guest reads end-of-file). When the
 * host's end of an output port fails (its reader went away: EPIPE), the device closes that port towards the
 * guest (PORT_OPEN 0): the guest's writers block, and krun's init ends the command as a local pipe would, with
 * SIGPIPE; what the guest had queued is discarded. With {@link ConsoleSpec#signals()}, a last port
 * {@code krun-signals} carries signals for the command, one byte each, which krun's init waits for on its
 * interrupt (instead of polling the VMM).
 *
 * <p>All protocol work runs on the VM's event loop; host input arrives through an {@link InputPipe}.
 */
final class VirtioConsole extends AbstractVirtioDevice<VirtioConsole.Ports> implements HostConsole, SnapshottableDevice {

    static final long F_SIZE = 1L;
    static final long F_MULTIPORT = 1L << 1;
    static final int QUEUE_SIZE = 256;
    static final int CONTROL_RECEIVE_QUEUE = 2;
    static final int CONTROL_TRANSMIT_QUEUE = 3;
    /** cols u16, rows u16, max_nr_ports u32, emerg_wr u32 (virtio 1.2 §5.3.4). */
    static final int CONFIG_SIZE = 12;
    static final int CONFIG_COLS = 0;
    static final int CONFIG_ROWS = 2;
    static final int CONFIG_MAX_NR_PORTS = 4;
    /**
     * The most control messages waiting for the driver's buffers. The device sends a handful per port; a
     * driver that never posts control buffers (or repeats DEVICE_READY) must not grow this without bound.
     */
    static final int MAX_PENDING_CONTROL = 64;

    static final String STDIN = "krun-stdin";
    static final String STDOUT = "krun-stdout";
    static final String STDERR = "krun-stderr";
    static final String SIGNALS = "krun-signals";
    /** The most signals waiting for the guest to take them. */
    static final int MAX_PENDING_SIGNALS = 64;

    /** The multiport protocol state of one activation (event loop only). */
    static final class Ports {
        final Deque<byte[]> controlOut = new ArrayDeque<>();
        final boolean[] ready;
        /** The guest has the port open (PORT_OPEN from the guest). Linux discards data for closed ports. */
        final boolean[] guestOpen;
        /** The host's end of the port failed: its output is discarded and the guest was told it is closed. */
        final boolean[] hostFailed;
        boolean deviceReady;
        boolean hostClosedInput;

        Ports(int count) {
            ready = new boolean[count];
            guestOpen = new boolean[count];
            hostFailed = new boolean[count];
        }
    }

    private final List<ConsolePort> ports;
    private final ConsolePort inputPort;
    private final InputPipe input;
    /** The port for signals, or null. */
    private final ConsolePort signalPort;
    /** Signals not yet in the guest's buffers (any thread; guarded by itself). */
    private final Deque<Byte> signals = new ArrayDeque<>();

    VirtioConsole(ConsoleSpec spec) {
        super("virtio-console", VirtioIds.CONSOLE, F_SIZE | F_MULTIPORT, 2 * portCount(spec) + 2, QUEUE_SIZE,
                CONFIG_SIZE);
        List<ConsolePort> p = new ArrayList<>();
        if (spec.mode() == ConsoleSpec.Mode.TERMINAL) {
            p.add(new ConsolePort(0, "console", true, spec.stdout(), spec.input()));
        } else {
            p.add(new ConsolePort(0, "console", true, spec.stderr(), false));
            p.add(new ConsolePort(1, STDIN, false, null, true));
            p.add(new ConsolePort(2, STDOUT, false, spec.stdout(), false));
            p.add(new ConsolePort(3, STDERR, false, spec.stderr(), false));
        }
        if (spec.signals()) {
            p.add(new ConsolePort(p.size(), SIGNALS, false, null, false));
        }
        this.ports = List.copyOf(p);
        this.signalPort = spec.signals() ? ports.getLast() : null;
        this.inputPort = ports.stream().filter(ConsolePort::input).findFirst().orElse(null);
        // emerg_wr needs VIRTIO_CONSOLE_F_EMERG_WRITE, which is not offered; the whole space is read-only.
        config().putShort(CONFIG_COLS, spec.columns()).putShort(CONFIG_ROWS, spec.rows())
                .putInt(CONFIG_MAX_NR_PORTS, ports.size());
        this.input = new InputPipe(this::scheduleInput);
        if (inputPort == null || !spec.input()) {
            input.close(); // nobody will read, or nobody will write: the guest reads end-of-file at once
        }
    }

    private static int portCount(ConsoleSpec spec) {
        return (spec.mode() == ConsoleSpec.Mode.TERMINAL ? 1 : 4) + (spec.signals() ? 1 : 0);
    }

    List<ConsolePort> ports() {
        return ports;
    }

    @Override
    protected Ports onActivate(Active<Ports> a) {
        Ports p = new Ports(ports.size());
        if (!a.hasFeature(F_MULTIPORT)) {
            // Without MULTIPORT there is no control queue: port 0 exists from the start (virtio 1.2 §5.3.6).
            p.ready[0] = true;
        }
        return p;
    }

    @Override
    protected void onQueueNotify(Active<Ports> a, int index) {
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
            } else if (port == signalPort) {
                pumpSignals(a);
            } else {
                pumpInput(a);
            }
        }
    }

    // ---- host to guest

    private void scheduleInput() {
        Active<Ports> a = active();
        if (a != null) {
            onLoop(a, this::pumpInput);
        }
    }

    /** Moves buffered host input into the input port's receive buffers; closes the port at end-of-file. */
    private void pumpInput(Active<Ports> a) {
        Ports p = a.state();
        if (inputPort == null || !p.ready[inputPort.id()]) {
            return;
        }
        // drivers/char/virtio_console.c in_intr(): data for a generic port nobody in the guest has open
        // is discarded, so it waits until the guest opens the port. The console port takes data at once.
        if (!inputPort.console() && !p.guestOpen[inputPort.id()]) {
            return;
        }
        int q = inputPort.receiveQueue();
        if (!a.queue(q).ready()) {
            return;
        }
        while (input.available() > 0) {
            DescriptorChain chain = a.pop(q);
            if (chain == null) {
                break;
            }
            int written = 0;
            try {
                ChainWriter w = chain.writer(a.memory());
                byte[] bytes = input.peek((int) Math.min(w.remaining(), Integer.MAX_VALUE));
                w.write(bytes);
                input.consume(bytes.length); // only once the guest has them: a bad buffer loses nothing
                written = (int) w.position();
            } catch (GuestMemoryException e) {
                guestError("input buffer outside guest RAM: " + e.getMessage());
            }
            a.addUsed(q, chain.head(), written);
        }
        if (input.atEof() && !inputPort.console() && !p.hostClosedInput) {
            p.hostClosedInput = true;
            sendControl(a, new ControlMessage(inputPort.id(), ControlMessage.PORT_OPEN, 0));
        }
    }

    /** Moves waiting signals into the signal port's receive buffers, once the guest has the port open. */
    private void pumpSignals(Active<Ports> a) {
        Ports p = a.state();
        if (signalPort == null || !p.ready[signalPort.id()] || !p.guestOpen[signalPort.id()]) {
            return;
        }
        int q = signalPort.receiveQueue();
        if (!a.queue(q).ready()) {
            return;
        }
        for (;;) {
            byte[] bytes;
            synchronized (signals) {
                if (signals.isEmpty()) {
                    return;
                }
                bytes = new byte[signals.size()];
                int i = 0;
                for (Byte b : signals) {
                    bytes[i++] = b;
                }
            }
            DescriptorChain chain = a.pop(q);
            if (chain == null) {
                return;
            }
            int written = 0;
            try {
                ChainWriter w = chain.writer(a.memory());
                written = (int) Math.min(w.remaining(), bytes.length);
                w.write(java.util.Arrays.copyOf(bytes, written));
            } catch (GuestMemoryException e) {
                guestError("signal buffer outside guest RAM: " + e.getMessage());
                written = 0;
            }
            a.addUsed(q, chain.head(), written);
            synchronized (signals) {
                for (int i = 0; i < written; i++) {
                    signals.poll(); // only once the guest has them: a bad buffer loses nothing
                }
            }
        }
    }

    // ---- guest to host

    private void drainOutput(Active<Ports> a, ConsolePort port) {
        int q = port.transmitQueue();
        boolean any = false;
        DescriptorChain chain;
        while ((chain = a.pop(q)) != null) {
            try {
                if (port.sink() != null && !a.state().hostFailed[port.id()]) {
                    copyOut(chain, a.memory(), port.sink());
                }
            } catch (GuestMemoryException e) {
                guestError("console output from outside guest RAM dropped: " + e.getMessage());
            } catch (IOException e) {
                hostFailed(a, port, e);
            }
            a.addUsed(q, chain.head(), 0);
            any = true;
        }
        if (any && port.sink() != null && !a.state().hostFailed[port.id()]) {
            try {
                port.sink().flush();
            } catch (IOException e) {
                hostFailed(a, port, e);
            }
        }
    }

    /**
     * The host's end of {@code port} failed (a pipe whose reader is gone): from now on its output is discarded,
     * and a generic port is closed towards the guest, whose writers then block until krun's init ends them.
     * The console port stays open: the kernel writes there whatever the host does with it.
     */
    private void hostFailed(Active<Ports> a, ConsolePort port, IOException e) {
        Ports p = a.state();
        if (p.hostFailed[port.id()]) {
            return;
        }
        p.hostFailed[port.id()] = true;
        log().log(Level.DEBUG, () -> "console port " + port.name() + ": the host's end failed, closing it: " + e);
        if (!port.console()) {
            sendControl(a, new ControlMessage(port.id(), ControlMessage.PORT_OPEN, 0));
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

    private void flushSink(OutputStream sink) {
        if (sink != null) {
            try {
                sink.flush();
            } catch (IOException e) {
                log().log(Level.DEBUG, () -> "console output sink failed: " + e);
            }
        }
    }

    // ---- control queue (virtio 1.2 §5.3.6.2)

    private void handleControl(Active<Ports> a) {
        DescriptorChain chain;
        while ((chain = a.pop(CONTROL_TRANSMIT_QUEUE)) != null) {
            ControlMessage m = null;
            try {
                ChainReader r = chain.reader(a.memory());
                m = ControlMessage.decode(r.readBytes((int) Math.min(r.remaining(), ControlMessage.HEADER_SIZE)));
            } catch (GuestMemoryException e) {
                guestError("control message outside guest RAM: " + e.getMessage());
            }
            a.addUsed(CONTROL_TRANSMIT_QUEUE, chain.head(), 0);
            if (m != null) {
                onControl(a, m);
            }
        }
    }

    private void onControl(Active<Ports> a, ControlMessage m) {
        Ports p = a.state();
        switch (m.event()) {
            case ControlMessage.DEVICE_READY -> {
                // Ports are announced once per activation, however often the driver says it is ready.
                if (m.value() == 1 && !p.deviceReady) {
                    p.deviceReady = true;
                    for (ConsolePort port : ports) {
                        sendControl(a, new ControlMessage(port.id(), ControlMessage.DEVICE_ADD, 0));
                    }
                }
            }
            case ControlMessage.PORT_READY -> {
                if (m.id() < 0 || m.id() >= ports.size() || m.value() != 1) {
                    return;
                }
                ConsolePort port = ports.get(m.id());
                p.ready[port.id()] = true;
                // An input port with no input left stays closed: the guest reads end-of-file at once.
                boolean open = port.console() || !port.input() || !input.atEof();
                if (port.console()) {
                    sendControl(a, new ControlMessage(port.id(), ControlMessage.CONSOLE_PORT, 1));
                    int columns = config().getShort(CONFIG_COLS);
                    int rows = config().getShort(CONFIG_ROWS);
                    if (columns > 0 && rows > 0) {
                        sendControl(a, ControlMessage.resize(port.id(), columns, rows));
                    }
                } else {
                    // Open before named: the guest driver handles control messages in order, so by the time a
                    // port can be found by its name it is open, and the init never mistakes "not open yet" for
                    // "closed by the host".
                    if (open) {
                        sendControl(a, new ControlMessage(port.id(), ControlMessage.PORT_OPEN, 1));
                    }
                    sendControl(a, new ControlMessage(port.id(), ControlMessage.PORT_NAME, 0,
                            port.name().getBytes(StandardCharsets.US_ASCII)));
                }
                if (open && port.console()) {
                    sendControl(a, new ControlMessage(port.id(), ControlMessage.PORT_OPEN, 1));
                } else if (!open && port == inputPort) {
                    p.hostClosedInput = true;
                }
                if (port == inputPort) {
                    pumpInput(a);
                }
            }
            case ControlMessage.PORT_OPEN -> {
                if (m.id() < 0 || m.id() >= ports.size()) {
                    return;
                }
                p.guestOpen[m.id()] = m.value() == 1;
                if (p.guestOpen[m.id()] && ports.get(m.id()) == inputPort) {
                    pumpInput(a);
                } else if (p.guestOpen[m.id()] && ports.get(m.id()) == signalPort) {
                    pumpSignals(a);
                }
            }
            default -> guestError("unexpected control event " + m.event() + " for port " + m.id());
        }
    }

    private void sendControl(Active<Ports> a, ControlMessage m) {
        Ports p = a.state();
        if (p.controlOut.size() >= MAX_PENDING_CONTROL) {
            guestError("control messages dropped: the driver posts no control buffers");
            return;
        }
        p.controlOut.add(m.encode());
        flushControl(a);
    }

    private void flushControl(Active<Ports> a) {
        Deque<byte[]> out = a.state().controlOut;
        if (!a.queue(CONTROL_RECEIVE_QUEUE).ready()) {
            return;
        }
        while (!out.isEmpty()) {
            DescriptorChain chain = a.pop(CONTROL_RECEIVE_QUEUE);
            if (chain == null) {
                break;
            }
            byte[] msg = out.poll();
            int written = 0;
            try {
                ChainWriter w = chain.writer(a.memory());
                if (w.remaining() >= msg.length) {
                    w.write(msg);
                    written = msg.length;
                } else {
                    guestError("control buffer of " + w.remaining() + " bytes too small for a " + msg.length
                            + "-byte message");
                }
            } catch (GuestMemoryException e) {
                guestError("control buffer outside guest RAM: " + e.getMessage());
            }
            a.addUsed(CONTROL_RECEIVE_QUEUE, chain.head(), written);
        }
    }

    /** Control messages waiting for the driver's buffers (on the loop), for tests. */
    int pendingControlMessages() {
        Active<Ports> a = active();
        return a == null ? 0 : a.state().controlOut.size();
    }

    /**
     * Without the terminal size: a VM restored from a template keeps its own run's size in config space, and
     * krun's init sets it on the terminal, so terminals of every size share a template.
     */
    @Override
    public byte[] templateKeyConfig() {
        byte[] space = new byte[CONFIG_SIZE];
        readConfig(0, space);
        java.util.Arrays.fill(space, CONFIG_COLS, CONFIG_ROWS + 2, (byte) 0);
        return space;
    }

    // ---- HostConsole

    @Override
    public OutputStream input() {
        return input;
    }

    @Override
    public void resize(int columns, int rows) {
        config().putShort(CONFIG_COLS, columns).putShort(CONFIG_ROWS, rows);
        Active<Ports> a = active();
        if (a != null) {
            onLoop(a, now -> {
                if (!now.hasFeature(F_MULTIPORT)) {
                    now.configChanged(); // the size lives in config space (F_SIZE)
                } else if (now.state().ready[0]) {
                    sendControl(now, ControlMessage.resize(0, columns, rows));
                }
            });
        }
    }

    @Override
    public boolean carriesSignals() {
        return signalPort != null;
    }

    @Override
    public boolean signal(int signal) {
        if (signal < 1 || signal > 64) {
            throw new IllegalArgumentException("no signal " + signal);
        }
        if (signalPort == null) {
            return false;
        }
        synchronized (signals) {
            if (signals.size() >= MAX_PENDING_SIGNALS) {
                return false;
            }
            signals.add((byte) signal);
        }
        Active<Ports> a = active();
        if (a != null) {
            onLoop(a, this::pumpSignals);
        }
        return true;
    }

    @Override
    public void flush() {
        for (ConsolePort p : ports) {
            flushSink(p.sink());
        }
    }

    @Override
    protected void onClose() {
        input.discard();
        flush();
    }

    // ---- snapshots

    /**
     * The multiport protocol state of the activation (ports ready, open in the guest, failed on the host,
     * control messages waiting for the driver's buffers); nothing when inactive. Every chain is answered
     * within the notification that took it, so no chain is held. Host input not yet given to the guest
     * stays with this VM: a restored VM has its own host side (and its own terminal size).
     */
    @Override
    public byte[] saveState() {
        Active<Ports> a = active();
        if (a == null) {
            return new byte[0];
        }
        Ports p = a.state();
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        java.io.DataOutputStream out = new java.io.DataOutputStream(bytes);
        try {
            out.writeInt(p.ready.length);
            for (int i = 0; i < p.ready.length; i++) {
                out.writeByte((p.ready[i] ? 1 : 0) | (p.guestOpen[i] ? 2 : 0) | (p.hostFailed[i] ? 4 : 0));
            }
            out.writeByte((p.deviceReady ? 1 : 0) | (p.hostClosedInput ? 2 : 0));
            out.writeInt(p.controlOut.size());
            for (byte[] m : p.controlOut) {
                out.writeInt(m.length);
                out.write(m);
            }
            out.flush();
        } catch (IOException e) {
            throw new IllegalStateException(e); // a ByteArrayOutputStream does not fail
        }
        return bytes.toByteArray();
    }

    @Override
    public void restoreState(byte[] state) {
        Active<Ports> a = active();
        if (state.length == 0) {
            return; // saved inactive (the transport restores activation, so this one is too)
        }
        if (a == null) {
            throw new IllegalArgumentException("virtio-console state of an active device given to an inactive one");
        }
        java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(state);
        Ports p = a.state();
        try {
            int n = b.getInt();
            if (n != p.ready.length) {
                throw new IllegalArgumentException("virtio-console state has " + n + " ports; this console has " + p.ready.length);
            }
            for (int i = 0; i < n; i++) {
                int f = b.get();
                p.ready[i] = (f & 1) != 0;
                p.guestOpen[i] = (f & 2) != 0;
                p.hostFailed[i] = (f & 4) != 0;
            }
            int f = b.get();
            p.deviceReady = (f & 1) != 0;
            p.hostClosedInput = (f & 2) != 0;
            int messages = b.getInt();
            if (messages < 0 || messages > MAX_PENDING_CONTROL) {
                throw new IllegalArgumentException("virtio-console state has " + messages + " pending control messages");
            }
            p.controlOut.clear();
            for (int i = 0; i < messages; i++) {
                int length = b.getInt();
                if (length < 0 || length > b.remaining()) {
                    throw new IllegalArgumentException("virtio-console state is truncated");
                }
                byte[] m = new byte[length];
                b.get(m);
                p.controlOut.add(m);
            }
        } catch (java.nio.BufferUnderflowException e) {
            throw new IllegalArgumentException("virtio-console state is truncated");
        }
    }
}
