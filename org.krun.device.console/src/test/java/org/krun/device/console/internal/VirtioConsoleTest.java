package org.krun.device.console.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioIds;

/**
 * The multiport console (virtio 1.2 §5.3) against a mock guest driver. Queues: port 0 uses 0/1, the
 * control queues are 2 (receive) and 3 (transmit), port n uses 2n+2 / 2n+3.
 */
class VirtioConsoleTest {

    private static final int PORT0_RX = 0;
    private static final int PORT0_TX = 1;
    private static final int CONTROL_RX = 2;
    private static final int CONTROL_TX = 3;
    private static final int STDIN_RX = 4;
    private static final int STDIN_TX = 5;
    private static final int STDOUT_RX = 6;
    private static final int STDOUT_TX = 7;
    private static final int STDERR_RX = 8;
    private static final int STDERR_TX = 9;

    private final ByteArrayOutputStream stdout = new ByteArrayOutputStream();
    private final ByteArrayOutputStream stderr = new ByteArrayOutputStream();
    private ConsoleHarness h;

    @AfterEach
    void close() {
        if (h != null) {
            h.close();
        }
    }

    private ConsoleHarness pipes(boolean input) {
        h = new ConsoleHarness(ConsoleSpec.pipes(stdout, stderr, input));
        return h;
    }

    private ConsoleHarness terminal(int columns, int rows) {
        h = new ConsoleHarness(ConsoleSpec.terminal(stdout, columns, rows));
        return h;
    }

    private static byte[] allByteValues() {
        byte[] b = new byte[256];
        for (int i = 0; i < 256; i++) {
            b[i] = (byte) i;
        }
        return b;
    }

    // ---- device shape

    @Test
    void pipesModeOffersFourPortsOnTenQueues() {
        pipes(true);
        assertEquals(VirtioIds.CONSOLE, h.console.deviceType());
        assertEquals(10, h.console.queueCount());
        assertEquals(VirtioConsole.F_MULTIPORT | VirtioConsole.F_SIZE, h.console.deviceFeatures());
        byte[] config = new byte[4];
        h.console.readConfig(4, config);
        assertEquals(4, ByteBuffer.wrap(config).order(ByteOrder.LITTLE_ENDIAN).getInt()); // max_nr_ports
    }

    @Test
    void portsUseTheSpecQueueLayout() {
        pipes(true);
        List<ConsolePort> ports = h.console.ports();
        assertEquals(List.of(0, 4, 6, 8), ports.stream().map(ConsolePort::receiveQueue).toList());
        assertEquals(List.of(1, 5, 7, 9), ports.stream().map(ConsolePort::transmitQueue).toList());
    }

    // ---- multiport handshake (virtio 1.2 §5.3.6.2)

    @Test
    void deviceReadyAddsEveryPort() {
        pipes(true);
        h.postControlBuffers(8, ConsoleHarness.CONTROL_BUFFER);
        h.sendControl(-1, ControlMessage.DEVICE_READY, 1);

        assertEquals(List.of("DEVICE_ADD(0,0)", "DEVICE_ADD(1,0)", "DEVICE_ADD(2,0)", "DEVICE_ADD(3,0)"),
                h.receivedControl());
        assertTrue(h.context.interrupts().contains(InterruptTrigger.QUEUE));
    }

    @Test
    void deviceReadyWithFailureAddsNothing() {
        pipes(true);
        h.postControlBuffers(8, ConsoleHarness.CONTROL_BUFFER);
        h.sendControl(-1, ControlMessage.DEVICE_READY, 0);

        assertEquals(List.of(), h.receivedControl());
    }

    @Test
    void portReadyOpensThePipePortsBeforeNamingThem() {
        // The guest finds a port by its name: once it can, the port must be open (a closed one means "the host
        // went away" to the init, which then ends the command).
        pipes(true);
        assertEquals(List.of(
                "DEVICE_ADD(0,0)", "DEVICE_ADD(1,0)", "DEVICE_ADD(2,0)", "DEVICE_ADD(3,0)",
                "CONSOLE_PORT(0,1)", "PORT_OPEN(0,1)",
                "PORT_OPEN(1,1)", "PORT_NAME(1,krun-stdin)",
                "PORT_OPEN(2,1)", "PORT_NAME(2,krun-stdout)",
                "PORT_OPEN(3,1)", "PORT_NAME(3,krun-stderr)"), h.handshake());
    }

    @Test
    void stdinPortWithoutInputIsNamedButNeverOpened() {
        pipes(false);
        List<String> said = h.handshake();

        assertTrue(said.contains("PORT_NAME(1,krun-stdin)"), said.toString());
        assertFalse(said.stream().anyMatch(s -> s.startsWith("PORT_OPEN(1,")), said.toString());
        assertTrue(said.contains("PORT_OPEN(2,1)"), said.toString());
    }

    @Test
    void controlMessagesWaitForReceiveBuffers() {
        pipes(true);
        h.sendControl(-1, ControlMessage.DEVICE_READY, 1);
        assertEquals(List.of(), h.receivedControl());

        h.postControlBuffers(2, ConsoleHarness.CONTROL_BUFFER);
        assertEquals(List.of("DEVICE_ADD(0,0)", "DEVICE_ADD(1,0)"), h.receivedControl());
        h.postControlBuffers(4, ConsoleHarness.CONTROL_BUFFER);
        assertEquals(List.of("DEVICE_ADD(2,0)", "DEVICE_ADD(3,0)"), h.receivedControl());
    }

    @Test
    void portReadyForUnknownPortsIsIgnored() {
        pipes(true);
        h.postControlBuffers(8, ConsoleHarness.CONTROL_BUFFER);
        h.sendControl(4, ControlMessage.PORT_READY, 1);
        h.sendControl(-1, ControlMessage.PORT_READY, 1);
        h.sendControl(1, ControlMessage.PORT_READY, 0); // the guest failed to set the port up

        assertEquals(List.of(), h.receivedControl());
        assertEquals(List.of(), h.context.resetReasons());
    }

    @Test
    void shortControlMessagesAreReturnedAndIgnored() {
        pipes(true);
        h.postControlBuffers(8, ConsoleHarness.CONTROL_BUFFER);
        h.queue(CONTROL_TX).addReadable(new byte[] {0, 0, 0, 0, 0});
        h.notify(CONTROL_TX);

        List<MockDriverQueue.Used> used = h.queue(CONTROL_TX).usedEntries();
        assertEquals(1, used.size());
        assertEquals(0, used.get(0).len());
        assertEquals(List.of(), h.receivedControl());
    }

    @Test
    void controlBuffersTooSmallForAMessageAreReturnedEmpty() {
        pipes(true);
        h.postControlBuffers(4, 4);
        h.sendControl(-1, ControlMessage.DEVICE_READY, 1);

        List<MockDriverQueue.Used> used = h.queue(CONTROL_RX).usedEntries();
        assertEquals(4, used.size());
        assertTrue(used.stream().allMatch(u -> u.len() == 0));

        // The device carries on with buffers of a workable size.
        h.postControlBuffers(8, ConsoleHarness.CONTROL_BUFFER);
        h.sendControl(2, ControlMessage.PORT_READY, 1);
        assertEquals(List.of("PORT_OPEN(2,1)", "PORT_NAME(2,krun-stdout)"), h.receivedControl());
    }

    @Test
    void portNameNeedsRoomForTheWholeName() {
        pipes(true);
        h.postControlBuffers(1, ConsoleHarness.CONTROL_BUFFER);
        h.postControlBuffers(1, 12); // header fits, "krun-stdout" does not
        h.sendControl(2, ControlMessage.PORT_READY, 1);

        assertEquals(List.of("PORT_OPEN(2,1)", "empty"), h.receivedControl());
    }

    // ---- guest to host

    @Test
    void outputReachesTheRightStreamByteExact() {
        pipes(true);
        h.handshake();
        byte[] all = allByteValues();
        byte[] nulAndFf = {0, (byte) 0xff, 0, 0, (byte) 0xff, '\n', '\r'};

        h.queue(STDOUT_TX).addChain(List.of(java.util.Arrays.copyOf(all, 100),
                java.util.Arrays.copyOfRange(all, 100, 256)), List.of());
        h.notify(STDOUT_TX);
        h.queue(STDERR_TX).addReadable(nulAndFf);
        h.notify(STDERR_TX);

        assertArrayEquals(all, stdout.toByteArray());
        assertArrayEquals(nulAndFf, stderr.toByteArray());
        List<MockDriverQueue.Used> used = h.queue(STDOUT_TX).usedEntries();
        assertEquals(1, used.size());
        assertEquals(0, used.get(0).len()); // the device wrote nothing into a transmit buffer
    }

    @Test
    void consolePortOutputGoesToStderrInPipesMode() {
        pipes(true);
        h.queue(PORT0_TX).addReadable("[    0.000000] Linux version\n".getBytes(US_ASCII));
        h.notify(PORT0_TX);

        assertEquals("[    0.000000] Linux version\n", stderr.toString(US_ASCII));
        assertEquals(0, stdout.size());
    }

    @Test
    void outputOnTheStdinPortIsDiscarded() {
        pipes(true);
        h.queue(STDIN_TX).addReadable("x".getBytes(US_ASCII));
        h.notify(STDIN_TX);

        assertEquals(1, h.queue(STDIN_TX).usedEntries().size());
        assertEquals(0, stdout.size());
        assertEquals(0, stderr.size());
    }

    @Test
    void outputIsWrittenInChainOrderAcrossManyChains() {
        pipes(true);
        for (int i = 0; i < 40; i++) {
            h.queue(STDOUT_TX).addReadable(("line " + i + "\n").getBytes(US_ASCII));
        }
        h.notify(STDOUT_TX);

        StringBuilder expected = new StringBuilder();
        for (int i = 0; i < 40; i++) {
            expected.append("line ").append(i).append('\n');
        }
        assertEquals(expected.toString(), stdout.toString(US_ASCII));
        assertEquals(40, h.queue(STDOUT_TX).usedEntries().size());
    }

    @Test
    void aFailingSinkClosesItsPortTowardsTheGuestOnceAndTheOtherPortsGoOn() {
        java.util.concurrent.atomic.AtomicInteger writes = new java.util.concurrent.atomic.AtomicInteger();
        h = new ConsoleHarness(ConsoleSpec.pipes(new java.io.OutputStream() {
            @Override
            public void write(int b) throws IOException {
                writes.incrementAndGet();
                throw new IOException("Broken pipe");
            }
        }, stderr, true));
        h.handshake();
        h.queue(STDOUT_TX).addReadable("lost".getBytes(US_ASCII));
        h.notify(STDOUT_TX);
        assertEquals(List.of("PORT_OPEN(2,0)"), h.receivedControl(), "the guest learns the host closed stdout");
        int tried = writes.get();

        for (int i = 0; i < 3; i++) {
            h.queue(STDOUT_TX).addReadable("more".getBytes(US_ASCII)); // queued before the guest took note
            h.notify(STDOUT_TX);
        }
        h.queue(STDERR_TX).addReadable("kept".getBytes(US_ASCII));
        h.notify(STDERR_TX);

        assertEquals(4, h.queue(STDOUT_TX).usedEntries().size(), "every chain is returned");
        assertEquals(tried, writes.get(), "nothing more is written to the failed sink");
        assertEquals(List.of(), h.receivedControl(), "the port is closed once");
        assertEquals("kept", stderr.toString(US_ASCII));
    }

    @Test
    void aFailingConsoleSinkLeavesTheConsolePortOpen() {
        h = new ConsoleHarness(ConsoleSpec.pipes(stdout, new java.io.OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("Broken pipe");
            }
        }, true));
        h.handshake();
        h.queue(PORT0_TX).addReadable("kernel says\n".getBytes(US_ASCII));
        h.notify(PORT0_TX);

        assertEquals(List.of(), h.receivedControl(), "the kernel's console is never closed");

        h.queue(STDERR_TX).addReadable("the command's error\n".getBytes(US_ASCII));
        h.notify(STDERR_TX);
        assertEquals(List.of("PORT_OPEN(3,0)"), h.receivedControl(), "stderr, on the same failed stream, is");
    }

    // ---- signals for the command (ConsoleSpec.signals)

    @Test
    void withSignalsATerminalConsoleAddsANamedSignalPort() {
        h = new ConsoleHarness(ConsoleSpec.terminal(stdout, 80, 24).withSignals(true));
        assertEquals(6, h.console.queueCount());
        assertTrue(h.console.carriesSignals());
        List<String> said = h.handshake();
        assertTrue(said.containsAll(List.of("DEVICE_ADD(1,0)", "PORT_OPEN(1,1)", "PORT_NAME(1,krun-signals)")), said.toString());
    }

    @Test
    void withoutSignalsThereIsNoSignalPortAndSignalsAreRefused() {
        pipes(true);
        assertFalse(h.console.carriesSignals());
        assertFalse(h.console.signal(15));
        assertFalse(h.handshake().stream().anyMatch(m -> m.contains("krun-signals")));
    }

    @Test
    void signalsWaitUntilTheGuestHasTheSignalPortOpenThenArriveOneByteEach() {
        h = new ConsoleHarness(ConsoleSpec.pipes(stdout, stderr, true).withSignals(true));
        int signalsRx = 10; // port 4
        assertEquals(12, h.console.queueCount());
        h.postControlBuffers(32, ConsoleHarness.CONTROL_BUFFER);
        h.sendControl(-1, ControlMessage.DEVICE_READY, 1);
        h.sendControl(4, ControlMessage.PORT_READY, 1);
        assertTrue(h.receivedControl().contains("PORT_NAME(4,krun-signals)"));
        h.queue(signalsRx).addWritable(64);
        assertTrue(h.console.signal(15));
        assertTrue(h.console.signal(10));
        h.notify(signalsRx);
        assertEquals(0, h.queue(signalsRx).usedIndex(), "Linux drops data for a port nobody has open");

        h.sendControl(4, ControlMessage.PORT_OPEN, 1);
        assertArrayEquals(new byte[] {15, 10}, h.received(signalsRx));
        assertTrue(h.console.signal(9));
        assertEquals(0, h.received(signalsRx).length, "no buffer: the signal waits");
        h.postReceiveBuffer(signalsRx, 1);
        assertArrayEquals(new byte[] {9}, h.received(signalsRx));
    }

    @Test
    void signalsWaitingForTheGuestAreBounded() {
        h = new ConsoleHarness(ConsoleSpec.terminal(stdout, 80, 24).withSignals(true));
        for (int i = 0; i < VirtioConsole.MAX_PENDING_SIGNALS; i++) {
            assertTrue(h.console.signal(1 + i % 64));
        }
        assertFalse(h.console.signal(15), "a guest that never reads does not grow the queue");
        h.handshake();
        int signalsRx = h.console.ports().get(1).receiveQueue(); // 4: port 1
        h.postReceiveBuffer(signalsRx, 1024);
        assertEquals(VirtioConsole.MAX_PENDING_SIGNALS, h.received(signalsRx).length);
        assertTrue(h.console.signal(15), "taken by the guest: room again");
    }

    // ---- host to guest

    @Test
    void hostInputReachesTheStdinPortReceiveBuffers() throws IOException {
        pipes(true);
        h.handshake();
        h.postReceiveBuffer(STDIN_RX, 8);
        h.postReceiveBuffer(STDIN_RX, 8);

        byte[] data = {'a', 0, (byte) 0xff, 'b', '\n', 0, 0, (byte) 0x80, 'c', 'd'};
        h.console.input().write(data);

        List<MockDriverQueue.Used> used = h.queue(STDIN_RX).usedEntries();
        assertEquals(2, used.size());
        assertEquals(8, used.get(0).len());
        assertEquals(2, used.get(1).len());
        byte[] got = new byte[10];
        System.arraycopy(used.get(0).written(), 0, got, 0, 8);
        System.arraycopy(used.get(1).written(), 0, got, 8, 2);
        assertArrayEquals(data, got);
        assertTrue(h.context.interrupts().contains(InterruptTrigger.QUEUE));
    }

    @Test
    void hostInputWaitsForReceiveBuffers() throws IOException {
        pipes(true);
        h.handshake();
        h.console.input().write("hello, guest".getBytes(US_ASCII));
        assertEquals(0, h.queue(STDIN_RX).usedIndex());

        h.postReceiveBuffer(STDIN_RX, 5);
        h.postReceiveBuffer(STDIN_RX, 100);

        assertEquals("hello, guest", new String(h.received(STDIN_RX), US_ASCII));
    }

    @Test
    void hostInputWaitsUntilTheGuestHasTheStdinPortOpen() throws IOException {
        pipes(true);
        h.postControlBuffers(32, ConsoleHarness.CONTROL_BUFFER);
        h.queue(STDIN_RX).addWritable(64);
        h.console.input().write("early".getBytes(US_ASCII));
        h.notify(STDIN_RX);
        assertEquals(0, h.queue(STDIN_RX).usedIndex());

        h.sendControl(1, ControlMessage.PORT_READY, 1);
        // Linux drops data that reaches a port no guest process has open: still nothing delivered.
        assertEquals(0, h.queue(STDIN_RX).usedIndex());

        h.sendControl(1, ControlMessage.PORT_OPEN, 1);
        assertEquals("early", new String(h.received(STDIN_RX), US_ASCII));
    }

    @Test
    void hostInputPausesWhileTheGuestHasTheStdinPortClosed() throws IOException {
        pipes(true);
        h.handshake();
        h.receivedControl();
        h.sendControl(1, ControlMessage.PORT_OPEN, 0);
        h.queue(STDIN_RX).addWritable(64);
        h.console.input().write("later".getBytes(US_ASCII));
        h.notify(STDIN_RX);
        assertEquals(0, h.received(STDIN_RX).length);

        h.sendControl(1, ControlMessage.PORT_OPEN, 1);
        assertEquals("later", new String(h.received(STDIN_RX), US_ASCII));
    }

    @Test
    void closingInputClosesTheStdinPortOnlyAfterTheDataWasDelivered() throws IOException {
        pipes(true);
        h.handshake();
        h.console.input().write("last words".getBytes(US_ASCII));
        h.console.input().close();

        assertEquals(List.of(), h.receivedControl()); // data still pending: the port stays open

        h.postReceiveBuffer(STDIN_RX, 4);
        assertEquals("last", new String(h.received(STDIN_RX), US_ASCII));
        assertEquals(List.of(), h.receivedControl());

        h.postReceiveBuffer(STDIN_RX, 64);
        assertEquals(" words", new String(h.received(STDIN_RX), US_ASCII));
        assertEquals(List.of("PORT_OPEN(1,0)"), h.receivedControl());

        h.postReceiveBuffer(STDIN_RX, 64); // nothing more, and no second close
        assertEquals(0, h.received(STDIN_RX).length);
        assertEquals(List.of(), h.receivedControl());
    }

    @Test
    void closingInputWithNothingPendingClosesTheStdinPortAtOnce() throws IOException {
        pipes(true);
        h.handshake();
        h.console.input().close();

        assertEquals(List.of("PORT_OPEN(1,0)"), h.receivedControl());
    }

    @Test
    void inputClosedBeforePortReadyLeavesTheStdinPortClosed() throws IOException {
        pipes(true);
        h.console.input().close();
        List<String> said = h.handshake();

        assertTrue(said.contains("PORT_NAME(1,krun-stdin)"), said.toString());
        assertFalse(said.stream().anyMatch(s -> s.startsWith("PORT_OPEN(1,")), said.toString());
    }

    @Test
    void writesAfterCloseAreDropped() throws IOException {
        pipes(true);
        h.handshake();
        h.console.input().close();
        h.console.input().write("late".getBytes(US_ASCII));
        h.postReceiveBuffer(STDIN_RX, 64);

        assertEquals(0, h.received(STDIN_RX).length);
    }

    // ---- terminal mode

    @Test
    void terminalModeUsesOnlyPortZero() throws IOException {
        terminal(80, 24);
        assertEquals(4, h.console.queueCount());
        assertEquals(List.of(
                "DEVICE_ADD(0,0)",
                "CONSOLE_PORT(0,1)", "RESIZE(0,80x24)", "PORT_OPEN(0,1)"), h.handshake());

        h.postReceiveBuffer(PORT0_RX, 16);
        h.console.input().write("ls\r".getBytes(US_ASCII));
        assertEquals("ls\r", new String(h.received(PORT0_RX), US_ASCII));

        h.queue(PORT0_TX).addReadable("\u001b[1mbold\u001b[0m\r\n".getBytes(US_ASCII));
        h.notify(PORT0_TX);
        assertEquals("\u001b[1mbold\u001b[0m\r\n", stdout.toString(US_ASCII));
    }

    @Test
    void terminalWithoutKnownSizeSendsNoResize() {
        terminal(0, 0);
        assertEquals(List.of("DEVICE_ADD(0,0)", "CONSOLE_PORT(0,1)", "PORT_OPEN(0,1)"), h.handshake());
    }

    @Test
    void resizeSendsColumnsThenRowsForTheConsolePort() {
        terminal(80, 24);
        h.handshake();

        h.console.resize(132, 43);

        List<MockDriverQueue.Used> used = h.queue(CONTROL_RX).usedEntries();
        assertEquals(1, used.size());
        byte[] m = used.get(0).written();
        assertEquals(12, m.length);
        ByteBuffer b = ByteBuffer.wrap(m).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals(0, b.getInt()); // port 0
        assertEquals(ControlMessage.RESIZE, b.getShort());
        assertEquals(0, b.getShort());
        assertEquals(132, b.getShort()); // cols, then rows (virtio 1.2 §5.3.6.2, as Linux 6.12 reads it)
        assertEquals(43, b.getShort());

        byte[] config = new byte[4];
        h.console.readConfig(0, config);
        assertArrayEquals(new byte[] {(byte) 132, 0, 43, 0}, config); // cols, rows in config space
    }

    @Test
    void resizeBeforeTheConsolePortIsReadyIsSentWhenItBecomesReady() {
        terminal(80, 24);
        h.console.resize(100, 30);
        assertEquals(List.of(), h.receivedControl());

        assertTrue(h.handshake().contains("RESIZE(0,100x30)"));
    }

    // ---- malformed chains

    /** Puts a chain with a device-readable descriptor after a device-writable one on {@code queue}. */
    private int addReadableAfterWritable(int queue) {
        MockDriverQueue q = h.queue(queue);
        int[] d = q.reserveDescriptors(2);
        q.writeDescriptor(d[0], q.allocate(8), 8, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[1]);
        q.writeDescriptor(d[1], q.allocate(8), 8, 0, 0);
        q.makeAvailable(d[0]);
        return d[0];
    }

    @Test
    void malformedChainsOnTransmitQueuesAreReturnedWithLengthZero() throws IOException {
        pipes(true);
        h.handshake();
        for (int queue : new int[] {PORT0_TX, CONTROL_TX, STDIN_TX, STDOUT_TX, STDERR_TX}) {
            int head = addReadableAfterWritable(queue);
            h.notify(queue);
            List<MockDriverQueue.Used> used = h.queue(queue).usedEntries();
            assertEquals(1, used.size(), "queue " + queue);
            assertEquals(head, used.get(0).id(), "queue " + queue);
            assertEquals(0, used.get(0).len(), "queue " + queue);
        }
        assertEquals(List.of(), h.context.resetReasons());

        // and everything still works
        h.queue(STDOUT_TX).addReadable("still here".getBytes(US_ASCII));
        h.notify(STDOUT_TX);
        assertEquals("still here", stdout.toString(US_ASCII));
        h.postReceiveBuffer(STDIN_RX, 8);
        h.console.input().write("ok".getBytes(US_ASCII));
        assertEquals("ok", new String(h.received(STDIN_RX), US_ASCII));
        h.console.input().close();
        assertEquals(List.of("PORT_OPEN(1,0)"), h.receivedControl());
    }

    @Test
    void malformedChainBeforeAGoodOneDoesNotLoseAControlMessage() {
        pipes(true);
        addReadableAfterWritable(CONTROL_RX);
        h.queue(CONTROL_RX).addWritable(ConsoleHarness.CONTROL_BUFFER);
        h.sendControl(0, ControlMessage.PORT_READY, 1);

        assertEquals(List.of("empty", "CONSOLE_PORT(0,1)"), h.receivedControl());
    }

    @Test
    void malformedChainOnTheStdinQueueIsReturnedEmptyWithoutLosingInput() throws IOException {
        pipes(true);
        h.handshake();
        int bad = addReadableAfterWritable(STDIN_RX);
        h.queue(STDIN_RX).addWritable(16);
        h.console.input().write("kept".getBytes(US_ASCII));

        List<MockDriverQueue.Used> used = h.queue(STDIN_RX).usedEntries();
        assertEquals(2, used.size());
        assertEquals(bad, used.get(0).id());
        assertEquals(0, used.get(0).len());
        assertEquals("kept", new String(used.get(1).written(), US_ASCII));
    }

    @Test
    void headOutOfRangeAsksForReset() {
        pipes(true);
        h.queue(STDOUT_TX).makeAvailable(ConsoleHarness.QUEUE_SIZE + 1);
        h.notify(STDOUT_TX);

        assertEquals(1, h.context.resetReasons().size());
    }

    @Test
    void outputFromOutsideGuestRamIsDroppedAndTheChainReturned() {
        pipes(true);
        MockDriverQueue q = h.queue(STDOUT_TX);
        int head = q.reserveDescriptors(1)[0];
        q.writeDescriptor(head, h.ram.memory().size() - 2, 4, 0, 0);
        q.makeAvailable(head);
        q.addReadable("after".getBytes(US_ASCII));
        h.notify(STDOUT_TX);

        assertEquals(2, q.usedEntries().size());
        assertEquals("after", stdout.toString(US_ASCII)); // nothing of the bad chain
    }

    @Test
    void outputDescriptorClaimingGigabytesDoesNotEscapeTheDevice() {
        pipes(true);
        MockDriverQueue q = h.queue(STDOUT_TX);
        int head = q.reserveDescriptors(1)[0];
        q.writeDescriptor(head, 0, 0xfffffff0, 0, 0); // ~4 GiB from guest address 0, in 8 MiB of RAM
        q.makeAvailable(head);
        q.addReadable("after".getBytes(US_ASCII));

        h.notify(STDOUT_TX);

        assertEquals(2, q.usedEntries().size());
        assertEquals("after", stdout.toString(US_ASCII)); // nothing of the bad chain
        assertEquals(List.of(), h.context.resetReasons());
    }

    @Test
    void controlMessageClaimingGigabytesDoesNotEscapeTheDevice() {
        pipes(true);
        h.postControlBuffers(8, ConsoleHarness.CONTROL_BUFFER);
        MockDriverQueue q = h.queue(CONTROL_TX);
        int[] d = q.reserveDescriptors(2);
        long msg = q.writeBuffer(new ControlMessage(2, ControlMessage.PORT_READY, 1).encode());
        q.writeDescriptor(d[0], msg, 8, MockDriverQueue.DESC_F_NEXT, d[1]);
        q.writeDescriptor(d[1], 0, 0xfffffff0, 0, 0);
        q.makeAvailable(d[0]);

        h.notify(CONTROL_TX);

        assertEquals(1, q.usedEntries().size());
        assertEquals(List.of(), h.context.resetReasons());
        h.sendControl(3, ControlMessage.PORT_READY, 1);
        assertTrue(h.receivedControl().contains("PORT_NAME(3,krun-stderr)"));
    }

    @Test
    void receiveBufferOutsideGuestRamIsReturnedEmpty() throws IOException {
        pipes(true);
        h.handshake();
        MockDriverQueue q = h.queue(STDIN_RX);
        int head = q.reserveDescriptors(1)[0];
        q.writeDescriptor(head, -4096, 16, MockDriverQueue.DESC_F_WRITE, 0);
        q.makeAvailable(head);
        h.console.input().write("x".getBytes(US_ASCII));

        List<MockDriverQueue.Used> used = q.usedEntries();
        assertEquals(1, used.size());
        assertEquals(0, used.get(0).len());
    }

    // ---- lifecycle

    @Test
    void inactiveDeviceIgnoresNotifications() {
        pipes(true);
        h.console.reset();
        h.queue(STDOUT_TX).addReadable("x".getBytes(US_ASCII));
        h.notify(STDOUT_TX);

        assertEquals(0, stdout.size());
        assertEquals(0, h.queue(STDOUT_TX).usedIndex());
    }

    @Test
    void resetForgetsTheHandshake() throws IOException {
        pipes(true);
        h.handshake();
        h.console.reset();
        h.activate();

        // Input must wait for the new driver's PORT_READY again.
        h.postReceiveBuffer(STDIN_RX, 16);
        h.console.input().write("again".getBytes(US_ASCII));
        assertEquals(0, h.queue(STDIN_RX).usedIndex());

        assertEquals(12, h.handshake().size());
        assertEquals("again", new String(h.received(STDIN_RX), US_ASCII));
    }
}
