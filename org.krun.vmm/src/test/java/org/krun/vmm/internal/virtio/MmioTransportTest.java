package org.krun.vmm.internal.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.vmm.internal.virtio.DeviceStatus.ACKNOWLEDGE;
import static org.krun.vmm.internal.virtio.DeviceStatus.DEVICE_NEEDS_RESET;
import static org.krun.vmm.internal.virtio.DeviceStatus.DRIVER;
import static org.krun.vmm.internal.virtio.DeviceStatus.DRIVER_OK;
import static org.krun.vmm.internal.virtio.DeviceStatus.FAILED;
import static org.krun.vmm.internal.virtio.DeviceStatus.FEATURES_OK;
import static org.krun.vmm.internal.virtio.MmioTransport.CONFIG;
import static org.krun.vmm.internal.virtio.MmioTransport.CONFIG_GENERATION;
import static org.krun.vmm.internal.virtio.MmioTransport.DEVICE_FEATURES;
import static org.krun.vmm.internal.virtio.MmioTransport.DEVICE_FEATURES_SEL;
import static org.krun.vmm.internal.virtio.MmioTransport.DEVICE_ID;
import static org.krun.vmm.internal.virtio.MmioTransport.DRIVER_FEATURES;
import static org.krun.vmm.internal.virtio.MmioTransport.DRIVER_FEATURES_SEL;
import static org.krun.vmm.internal.virtio.MmioTransport.INTERRUPT_ACK;
import static org.krun.vmm.internal.virtio.MmioTransport.INTERRUPT_STATUS;
import static org.krun.vmm.internal.virtio.MmioTransport.MAGIC_VALUE;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_DESC_HIGH;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_DESC_LOW;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_DEVICE_HIGH;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_DEVICE_LOW;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_DRIVER_HIGH;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_DRIVER_LOW;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_NOTIFY;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_NUM;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_NUM_MAX;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_READY;
import static org.krun.vmm.internal.virtio.MmioTransport.QUEUE_SEL;
import static org.krun.vmm.internal.virtio.MmioTransport.STATUS;
import static org.krun.vmm.internal.virtio.MmioTransport.VENDOR_ID;
import static org.krun.vmm.internal.virtio.MmioTransport.VERSION;

import java.lang.foreign.Arena;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;
import org.krun.posix.EventFd;
import org.krun.vmm.internal.event.EventNotifier;
import org.krun.spi.virtio.QueueLayout;
import org.krun.posix.Posix;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;
import org.krun.vmm.internal.event.EpollEventLoop;

class MmioTransportTest {
    private static final long BASE = 0xd000_0000L;
    private static final int GSI = 5;
    private static final long RAM_SIZE = 0x10000;
    /** Queue 0 (max 16) and queue 1 (max 8) of the fake device. */
    private static final int QUEUE0_MAX = 16;
    private static final int QUEUE1_MAX = 8;
    private static final long DESC0 = 0x1000;
    private static final long AVAIL0 = 0x2000;
    private static final long USED0 = 0x3000;
    private static final long DESC1 = 0x4000;
    private static final long AVAIL1 = 0x5000;
    private static final long USED1 = 0x6000;
    /** What a driver that supports everything basic accepts. */
    private static final long ACCEPTED = VirtioFeatures.VERSION_1 | 1L;
    private static final int NEGOTIATED = ACKNOWLEDGE | DRIVER | FEATURES_OK;
    private static final int RUNNING = NEGOTIATED | DRIVER_OK;

    private Arena arena;
    private GuestMemory memory;
    private EpollEventLoop loop;
    private Thread loopThread;
    private FakeVirtioDevice device;
    private FakeHypervisorVm vm;
    private MmioTransport transport;

    @BeforeEach
    void setUp() {
        arena = Arena.ofShared();
        memory = new GuestMemory(List.of(new GuestRegion(0, arena.allocate(RAM_SIZE, 4096))));
        loop = new EpollEventLoop();
        loopThread = Thread.ofPlatform().name("test-device-loop").start(loop::run);
        device = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        vm = new FakeHypervisorVm();
        transport = new MmioTransport(device, memory, BASE, GSI);
        transport.attach(vm, loop);
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        transport.detach();
        loop.stop();
        loopThread.join();
        loop.close();
        arena.close();
    }

    // --- register access helpers, as a driver does them (32-bit) ---

    private int read(int offset) {
        return (int) transport.read(offset, 4);
    }

    private void write(int offset, int value) {
        transport.write(offset, 4, value & 0xffffffffL);
    }

    private void writeDriverFeatures(long features) {
        write(DRIVER_FEATURES_SEL, 0);
        write(DRIVER_FEATURES, (int) features);
        write(DRIVER_FEATURES_SEL, 1);
        write(DRIVER_FEATURES, (int) (features >>> 32));
    }

    /** ACKNOWLEDGE, DRIVER, driver features, FEATURES_OK. */
    private void negotiate(long features) {
        write(STATUS, ACKNOWLEDGE);
        write(STATUS, ACKNOWLEDGE | DRIVER);
        writeDriverFeatures(features);
        write(STATUS, NEGOTIATED);
    }

    private void configureQueue(int index, int size, long desc, long avail, long used) {
        write(QUEUE_SEL, index);
        write(QUEUE_NUM, size);
        write(QUEUE_DESC_LOW, (int) desc);
        write(QUEUE_DESC_HIGH, (int) (desc >>> 32));
        write(QUEUE_DRIVER_LOW, (int) avail);
        write(QUEUE_DRIVER_HIGH, (int) (avail >>> 32));
        write(QUEUE_DEVICE_LOW, (int) used);
        write(QUEUE_DEVICE_HIGH, (int) (used >>> 32));
        write(QUEUE_READY, 1);
    }

    /** Negotiates {@code features}, makes queue 0 ready, sets DRIVER_OK and waits for the device's activation. */
    private DeviceContext activate(long features) throws InterruptedException {
        negotiate(features);
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        write(STATUS, RUNNING);
        DeviceContext context = device.awaitActivation();
        assertEquals("activate", device.awaitCall());
        assertEquals("notify 0", device.awaitCall(), "activation notifies the ready queue once");
        return context;
    }

    /**
     * Returns once the loop has dispatched every descriptor signalled before this call and run every task
     * queued before it (and by those handlers). A probe descriptor signalled now is reported no earlier than
     * the ones already ready, and its handler's task runs after the whole batch and the earlier tasks.
     */
    private void settleLoop() throws Exception {
        try (EventFd probe = EventFd.create()) {
            CompletableFuture<Void> done = new CompletableFuture<>();
            AutoCloseable registration = loop.register(probe.fd(), Posix.EPOLLIN, events -> {
                probe.drain();
                loop.execute(() -> done.complete(null));
            });
            probe.signal();
            done.get(10, TimeUnit.SECONDS);
            registration.close();
        }
    }

    private void assertNoDeviceCalls() throws Exception {
        settleLoop();
        assertNull(device.calls.poll(), "device was called");
    }

    // --- snapshots ---

    @Test
    void restoredTransportActivatesItsDeviceWithTheQueuesWhereTheSnapshotLeftThem() throws Exception {
        DeviceContext context = activate(ACCEPTED | VirtioFeatures.RING_EVENT_IDX);
        loop.call(() -> {
            context.queues().get(0).restoreIndices(new Virtqueue.Indices(7, 5, 4)); // as if chains had been used
            return null;
        });
        context.interrupt().trigger(InterruptTrigger.CONFIG);
        write(QUEUE_SEL, 1);
        byte[] state = loop.call(transport::saveState);

        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        MmioTransport restored = new MmioTransport(other, memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            restore(restored, state, new byte[0]);
            DeviceContext c = other.awaitActivation();
            assertEquals(ACCEPTED | VirtioFeatures.RING_EVENT_IDX, c.driverFeatures());
            Virtqueue q0 = c.queues().get(0);
            assertEquals(new QueueLayout(QUEUE0_MAX, DESC0, AVAIL0, USED0), q0.layout());
            assertEquals(new Virtqueue.Indices(7, 5, 4), loop.call(q0::indices));
            assertTrue(q0.eventIdx());
            assertFalse(c.queues().get(1).ready());
            assertEquals(RUNNING, (int) restored.read(STATUS, 4));
            assertEquals(InterruptTrigger.CONFIG, (int) restored.read(INTERRUPT_STATUS, 4));
            assertEquals(read(CONFIG_GENERATION), (int) restored.read(CONFIG_GENERATION, 4));
            restored.write(QUEUE_SEL, 4, 0);
            assertEquals(1, (int) restored.read(QUEUE_READY, 4));
            assertEquals("activate", other.awaitCall());
            assertEquals("notify 0", other.awaitCall(), "restored queues are notified once, for buffers made available meanwhile");
        } finally {
            restored.detach();
        }
    }

    /** Restores {@code t} on the loop, as the core does before the vCPUs run. */
    private void restore(MmioTransport t, byte[] state, byte[] deviceState) {
        loop.call(() -> {
            t.restoreState(state, deviceState);
            return null;
        });
    }

    @Test
    void restoredActiveDeviceGetsItsStateOnTheLoopBeforeRestoreReturns() throws Exception {
        activate(ACCEPTED);
        byte[] state = loop.call(transport::saveState);
        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        MmioTransport restored = new MmioTransport(other, memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            restore(restored, state, new byte[] {1, 2, 3});
            assertEquals("activate", other.calls.poll(), "activated before restoreState returned");
            assertArrayEquals(new byte[] {1, 2, 3}, other.restoredStates.poll(), "state given before restoreState returned");
            assertEquals(List.of(true), other.restoredOnLoop);
            assertEquals("notify 0", other.awaitCall(), "the queue notification is left to the loop");
        } finally {
            restored.detach();
        }
    }

    @Test
    void stateTheActiveDeviceRefusesFailsTheRestoreAtOnceAndSchedulesNothing() throws Exception {
        activate(ACCEPTED);
        byte[] state = loop.call(transport::saveState);
        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        other.restoreFailure = new IllegalArgumentException("fake: saved state asks for 9 pages");
        MmioTransport restored = new MmioTransport(other, memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> restore(restored, state, new byte[] {9}));
            assertEquals("fake: saved state asks for 9 pages", e.getMessage());
            assertEquals("activate", other.calls.poll());
            settleLoop();
            assertNull(other.calls.poll(), "no notification after a refused state");
            assertEquals(0, (int) restored.read(INTERRUPT_STATUS, 4), "no DEVICE_NEEDS_RESET interrupt: the restore failed instead");
        } finally {
            restored.detach();
        }
    }

    @Test
    void stateTheInactiveDeviceRefusesFailsTheRestoreAtOnce() throws Exception {
        negotiate(ACCEPTED);
        byte[] state = loop.call(transport::saveState);
        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        other.restoreFailure = new IllegalArgumentException("fake: state of an active device given to an inactive one");
        MmioTransport restored = new MmioTransport(other, memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> restore(restored, state, new byte[] {1}));
            assertEquals("fake: state of an active device given to an inactive one", e.getMessage());
            assertEquals(List.of(true), other.restoredOnLoop);
            settleLoop();
            assertNull(other.calls.poll(), "an inactive device is not activated");
        } finally {
            restored.detach();
        }
    }

    @Test
    void activationFailureFailsTheRestoreAtOnce() throws Exception {
        activate(ACCEPTED);
        byte[] state = loop.call(transport::saveState);
        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        other.activationFailure = new IllegalStateException("fake: backend gone");
        MmioTransport restored = new MmioTransport(other, memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            assertEquals("fake: backend gone", assertThrows(IllegalStateException.class, () -> restore(restored, state, new byte[0])).getMessage());
            assertTrue(other.restoredStates.isEmpty());
        } finally {
            restored.detach();
        }
    }

    @Test
    void restoreOffTheLoopIsRefused() throws Exception {
        byte[] state = loop.call(transport::saveState);
        MmioTransport restored = new MmioTransport(new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX), memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            assertThrows(IllegalStateException.class, () -> restored.restoreState(state, new byte[0]));
        } finally {
            restored.detach();
        }
    }

    @Test
    void inactiveTransportRestoresItsRegistersWithoutActivating() throws Exception {
        negotiate(ACCEPTED);
        configureQueue(1, 4, DESC1, AVAIL1, USED1);
        byte[] state = loop.call(transport::saveState);
        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        MmioTransport restored = new MmioTransport(other, memory, BASE, GSI);
        restored.attach(new FakeHypervisorVm(), loop);
        try {
            restore(restored, state, new byte[0]);
            assertEquals(NEGOTIATED, (int) restored.read(STATUS, 4));
            restored.write(QUEUE_SEL, 4, 1);
            assertEquals(1, (int) restored.read(QUEUE_READY, 4));
            settleLoop();
            assertNull(other.calls.poll(), "an inactive device is not activated");
        } finally {
            restored.detach();
        }
    }

    @Test
    void stateOfAnotherDeviceShapeIsRefusedWithOneLine() throws Exception {
        byte[] state = loop.call(transport::saveState);
        MmioTransport other = new MmioTransport(new FakeVirtioDevice(QUEUE0_MAX), memory, BASE, GSI);
        other.attach(new FakeHypervisorVm(), loop);
        try {
            IllegalArgumentException e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> restore(other, state, new byte[0]));
            assertEquals("virtio device " + FakeVirtioDevice.TYPE + " has 1 queues; its saved transport has 2", e.getMessage());
            org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> restore(other, java.util.Arrays.copyOf(state, 10), new byte[0]));
        } finally {
            other.detach();
        }
    }

    // --- identification and features ---

    @Test
    void identificationRegistersReadMagicVersionDeviceIdAndVendor() {
        assertEquals(0x74726976, read(MAGIC_VALUE), "\"virt\" little-endian");
        assertEquals(2, read(VERSION));
        assertEquals(FakeVirtioDevice.TYPE, read(DEVICE_ID));
        assertEquals(0x4e55524b, read(VENDOR_ID));
    }

    @Test
    void deviceFeaturesAreReadAsTwoWordsAndIncludeTheTransportsFeatures() {
        write(DEVICE_FEATURES_SEL, 0);
        assertEquals(1 | 1 << 5 | 1 << 28 | 1 << 29, read(DEVICE_FEATURES),
                "device bits 0 and 5, INDIRECT_DESC (28), EVENT_IDX (29)");
        write(DEVICE_FEATURES_SEL, 1);
        assertEquals(1 | 1 << 8, read(DEVICE_FEATURES), "VERSION_1 (32) and device bit 40");
        write(DEVICE_FEATURES_SEL, 2);
        assertEquals(0, read(DEVICE_FEATURES), "no features beyond bit 63");
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2, 8})
    void registerAccessesThatAreNot32BitsWideAreIgnored(int size) {
        assertEquals(0, transport.read(MAGIC_VALUE, size));
        assertEquals(0, transport.read(VERSION, size));
        transport.write(STATUS, size, ACKNOWLEDGE);
        assertEquals(0, read(STATUS));
        write(STATUS, ACKNOWLEDGE);
        transport.write(STATUS, size, ACKNOWLEDGE | DRIVER);
        assertEquals(ACKNOWLEDGE, read(STATUS));
    }

    // --- status state machine ---

    @Test
    void statusFollowsEachStepOfDriverInitialisation() throws InterruptedException {
        write(STATUS, ACKNOWLEDGE);
        assertEquals(ACKNOWLEDGE, read(STATUS));
        write(STATUS, ACKNOWLEDGE | DRIVER);
        assertEquals(ACKNOWLEDGE | DRIVER, read(STATUS));
        writeDriverFeatures(ACCEPTED);
        write(STATUS, NEGOTIATED);
        assertEquals(NEGOTIATED, read(STATUS));
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        write(STATUS, RUNNING);
        assertEquals(RUNNING, read(STATUS));
        device.awaitActivation();
    }

    /** {@code steps} valid steps are taken first (0: none, 1: ACKNOWLEDGE, ... 4: DRIVER_OK). */
    private void reach(int steps) throws InterruptedException {
        int[] sequence = {ACKNOWLEDGE, ACKNOWLEDGE | DRIVER, NEGOTIATED, RUNNING};
        for (int i = 0; i < steps; i++) {
            if (sequence[i] == NEGOTIATED) {
                writeDriverFeatures(ACCEPTED);
            }
            if (sequence[i] == RUNNING) {
                configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
            }
            write(STATUS, sequence[i]);
        }
        if (steps == 4) {
            device.awaitActivation();
        }
    }

    @ParameterizedTest(name = "after {0} steps, writing 0x{1}")
    @CsvSource({
        // DRIVER_OK first, or any skipped step
        "0, 4", "0, 3", "0, 8", "0, f", "0, 2",
        "1, 9", "1, b", "1, 2", "1, 5",
        "2, 7", "2, f",
        // clearing bits without a reset
        "2, 1", "3, 3", "3, 9", "4, b", "4, 7",
        // writing the same status again is not a step either
        "1, 1",
    })
    void invalidStatusWritesLeaveStatusUnchanged(int steps, String requestedHex) throws InterruptedException {
        reach(steps);
        int before = read(STATUS);
        write(STATUS, Integer.parseInt(requestedHex, 16));
        assertEquals(before, read(STATUS));
    }

    @ParameterizedTest
    @ValueSource(ints = {0, 1, 2, 3})
    void failedMayBeSetAtAnyStepAndOnlyResetLeavesIt(int steps) throws InterruptedException {
        reach(steps);
        int before = read(STATUS);
        write(STATUS, before | FAILED);
        assertEquals(before | FAILED, read(STATUS));
        write(STATUS, ACKNOWLEDGE);
        assertEquals(before | FAILED, read(STATUS));
        write(STATUS, 0);
        assertEquals(0, read(STATUS));
    }

    @Test
    void featuresOkIsRefusedWhenTheDriverAcceptsAFeatureNotOffered() {
        negotiate(ACCEPTED | 1L << 6);
        assertEquals(ACKNOWLEDGE | DRIVER, read(STATUS));
    }

    @Test
    void featuresOkIsRefusedWithoutVersion1() {
        negotiate(1L | VirtioFeatures.RING_EVENT_IDX);
        assertEquals(ACKNOWLEDGE | DRIVER, read(STATUS));
    }

    @Test
    void driverFeaturesWrittenBeforeDriverStatusAreIgnored() {
        write(STATUS, ACKNOWLEDGE);
        writeDriverFeatures(ACCEPTED);
        write(STATUS, ACKNOWLEDGE | DRIVER);
        write(STATUS, NEGOTIATED);
        assertEquals(ACKNOWLEDGE | DRIVER, read(STATUS), "VERSION_1 written too early did not count");
    }

    // --- queue configuration ---

    @Test
    void queueNumMaxReportsEachQueuesLimitAndZeroForAQueueThatDoesNotExist() {
        write(QUEUE_SEL, 0);
        assertEquals(QUEUE0_MAX, read(QUEUE_NUM_MAX));
        write(QUEUE_SEL, 1);
        assertEquals(QUEUE1_MAX, read(QUEUE_NUM_MAX));
        write(QUEUE_SEL, 2);
        assertEquals(0, read(QUEUE_NUM_MAX));
    }

    @Test
    void queueRegistersAreIgnoredBeforeFeaturesOk() throws InterruptedException {
        write(STATUS, ACKNOWLEDGE);
        write(STATUS, ACKNOWLEDGE | DRIVER);
        writeDriverFeatures(ACCEPTED);
        configureQueue(1, 4, DESC1, AVAIL1, USED1);
        assertEquals(0, read(QUEUE_READY));

        write(STATUS, NEGOTIATED);
        assertEquals(0, read(QUEUE_READY));
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        write(STATUS, RUNNING);
        Virtqueue q1 = device.awaitActivation().queues().get(1);
        assertFalse(q1.ready());
        assertEquals(0, q1.size());
    }

    @Test
    void queueRegistersAreIgnoredAfterDriverOk() throws InterruptedException {
        DeviceContext context = activate(ACCEPTED);
        configureQueue(1, 4, DESC1, AVAIL1, USED1);
        write(QUEUE_SEL, 0);
        write(QUEUE_NUM, 2);
        write(QUEUE_DESC_LOW, 0x8000);
        write(QUEUE_READY, 0);

        Virtqueue q0 = context.queues().get(0);
        assertTrue(q0.ready());
        assertEquals(1, read(QUEUE_READY));
        assertEquals(QUEUE0_MAX, q0.size());
        assertEquals(DESC0, q0.layout().descTable());
        Virtqueue q1 = context.queues().get(1);
        assertFalse(q1.ready());
    }

    @Test
    void driverOkActivatesTheDeviceOnTheLoopWithItsQueuesAndTheAcceptedFeatures() throws Exception {
        long accepted = ACCEPTED | 1L << 40 | VirtioFeatures.RING_EVENT_IDX;
        negotiate(accepted);
        configureQueue(1, 4, DESC1 + 0x100000000L, AVAIL1, USED1);
        configureQueue(1, 4, DESC1, AVAIL1, USED1); // reconfiguring before DRIVER_OK replaces both halves
        write(STATUS, RUNNING);

        DeviceContext context = device.awaitActivation();
        assertEquals(List.of(true), device.activatedOnLoop);
        assertEquals(accepted, context.driverFeatures());
        assertSame(memory, context.memory());
        assertSame(loop, context.eventLoop());
        assertEquals(2, context.queues().size());
        Virtqueue q0 = context.queues().get(0);
        assertFalse(q0.ready());
        Virtqueue q1 = context.queues().get(1);
        assertTrue(q1.ready());
        assertEquals(new QueueLayout(4, DESC1, AVAIL1, USED1), q1.layout());
        assertTrue(q1.eventIdx());

        assertEquals("activate", device.awaitCall());
        assertEquals("notify 1", device.awaitCall(), "activation notifies only the ready queue");
        assertNoDeviceCalls();
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void queuesUseEventIdxExactlyWhenTheDriverAcceptedIt(boolean eventIdx) throws InterruptedException {
        DeviceContext context = activate(ACCEPTED | (eventIdx ? VirtioFeatures.RING_EVENT_IDX : 0));
        assertEquals(eventIdx, context.hasFeature(VirtioFeatures.RING_EVENT_IDX));

        // With EVENT_IDX the device asks for notifications through avail_event (after the used ring),
        // without it through the used ring's flags.
        long availEvent = USED0 + 4 + 8L * QUEUE0_MAX;
        memory.setShort(USED0, (short) 0x5555);
        memory.setShort(availEvent, (short) 0x5555);
        context.queues().get(0).enableNotification(memory, true);
        assertEquals(eventIdx ? 0x5555 : 0, memory.getShort(USED0));
        assertEquals(eventIdx ? 0 : 0x5555, memory.getShort(availEvent));
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({
        "size not a power of 2,  12, 1000,     2000, 3000",
        "size above the maximum, 32, 1000,     2000, 3000",
        "size zero,              0,  1000,     2000, 3000",
        "descriptors misaligned, 16, 1008,     2000, 3000",
        "avail ring misaligned,  16, 1000,     2001, 3000",
        "used ring misaligned,   16, 1000,     2000, 3002",
        "descriptors past RAM,   16, ff80,     2000, 3000",
        "used ring past RAM,     16, 1000,     2000, ff80",
        "avail ring above 4 GiB, 16, 1000, 100002000, 3000",
    })
    void driverOkWithAMisconfiguredReadyQueueSetsNeedsResetInsteadOfActivating(String problem, int size,
            String desc, String avail, String used) throws Exception {
        negotiate(ACCEPTED);
        configureQueue(0, size, Long.parseLong(desc, 16), Long.parseLong(avail, 16), Long.parseLong(used, 16));
        int generation = read(CONFIG_GENERATION);
        write(STATUS, RUNNING);

        assertEquals(NEGOTIATED | DEVICE_NEEDS_RESET, read(STATUS), problem);
        assertEquals(InterruptTrigger.CONFIG, read(INTERRUPT_STATUS));
        assertTrue(vm.irqFd().drain() > 0, "interrupt raised");
        assertNotEquals(generation, read(CONFIG_GENERATION));
        assertNoDeviceCalls();
    }

    @Test
    void aMisconfiguredQueueThatIsNotReadyDoesNotPreventActivation() throws InterruptedException {
        negotiate(ACCEPTED);
        write(QUEUE_SEL, 1);
        write(QUEUE_NUM, 12);
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        write(STATUS, RUNNING);
        assertEquals(RUNNING, read(STATUS));
        device.awaitActivation();
    }

    @Test
    void deviceThatFailsToActivateNeedsResetAndGetsNoKicks() throws Exception {
        device.activationFailure = new IllegalStateException("no backend");
        negotiate(ACCEPTED);
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        write(STATUS, RUNNING);
        assertEquals("activate", device.awaitCall());
        settleLoop();
        assertEquals(RUNNING | DEVICE_NEEDS_RESET, read(STATUS));
        assertEquals(InterruptTrigger.CONFIG, read(INTERRUPT_STATUS));

        vm.queueNotifier(0).signal();
        assertNoDeviceCalls();
    }

    // --- notifications ---

    @Test
    void queueKickOnTheIoEventFdReachesTheDeviceOnlyWhileActive() throws Exception {
        EventNotifier kick = vm.queueNotifier(0);
        negotiate(ACCEPTED);
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        kick.signal();
        assertNoDeviceCalls();

        write(STATUS, RUNNING);
        device.awaitActivation();
        assertEquals("activate", device.awaitCall());
        assertEquals("notify 0", device.awaitCall());
        kick.signal();
        assertEquals("notify 0", device.awaitCall());
        vm.queueNotifier(1).signal(); // queue 1 was never made ready
        assertNoDeviceCalls();

        write(STATUS, 0);
        assertEquals("reset", device.awaitCall());
        kick.signal();
        assertNoDeviceCalls();
    }

    @Test
    void queueKickRacingDriverOkReachesTheDeviceOnlyAfterItsActivation() throws Exception {
        negotiate(ACCEPTED);
        configureQueue(0, QUEUE0_MAX, DESC0, AVAIL0, USED0);
        try (EventFd driverOk = EventFd.create()) {
            // The "vCPU" sets DRIVER_OK and the guest kicks right after; both are pending when the loop wakes.
            AutoCloseable registration = loop.register(driverOk.fd(), Posix.EPOLLIN, events -> {
                driverOk.drain();
                write(STATUS, RUNNING);
            });
            CountDownLatch release = new CountDownLatch(1);
            loop.execute(() -> {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            driverOk.signal();
            vm.queueNotifier(0).signal();
            release.countDown();

            assertEquals("activate", device.awaitCall(), "the first call a device gets is activate");
            assertEquals("notify 0", device.awaitCall());
            settleLoop();
            for (String call = device.calls.poll(); call != null; call = device.calls.poll()) {
                assertEquals("notify 0", call);
            }
            registration.close();
        }
    }

    @Test
    void queueNotifyRegisterWriteAlsoReachesTheDevice() throws Exception {
        activate(ACCEPTED);
        write(QUEUE_NOTIFY, 0);
        assertEquals("notify 0", device.awaitCall());
        write(QUEUE_NOTIFY, 7); // no such queue
        write(QUEUE_NOTIFY, 1); // not ready
        assertNoDeviceCalls();
    }

    // --- reset ---

    @Test
    void resetCallsTheDeviceBeforeReturningAndZeroesTheRegisters() throws Exception {
        DeviceContext context = activate(ACCEPTED | VirtioFeatures.RING_EVENT_IDX);
        context.interrupt().trigger(InterruptTrigger.QUEUE);
        context.needsReset("test");
        write(QUEUE_SEL, 1);
        write(DEVICE_FEATURES_SEL, 1);
        write(DRIVER_FEATURES_SEL, 1);
        assertEquals(RUNNING | DEVICE_NEEDS_RESET, read(STATUS));

        write(STATUS, 0);
        assertEquals("reset", device.calls.poll(), "device reset ran before the status write returned");
        assertEquals(0, read(STATUS));
        assertEquals(0, read(INTERRUPT_STATUS));
        assertEquals(QUEUE0_MAX, read(QUEUE_NUM_MAX), "queue select back to 0");
        assertEquals(0, read(QUEUE_READY));
        assertEquals(1 | 1 << 5 | 1 << 28 | 1 << 29, read(DEVICE_FEATURES), "device features select back to 0");

        // Driver features and their select are zeroed: writing only the low word now lacks VERSION_1.
        write(STATUS, ACKNOWLEDGE);
        write(STATUS, ACKNOWLEDGE | DRIVER);
        write(DRIVER_FEATURES, 1);
        write(STATUS, NEGOTIATED);
        assertEquals(ACKNOWLEDGE | DRIVER, read(STATUS));
        assertNoDeviceCalls();
    }

    @Test
    void resetReturnsQueuesToTheirInitialConfiguration() throws InterruptedException {
        activate(ACCEPTED);
        write(STATUS, 0);
        write(QUEUE_SEL, 0);
        assertEquals(0, read(QUEUE_READY));
        assertEquals(QUEUE0_MAX, read(QUEUE_NUM_MAX));

        negotiate(ACCEPTED);
        configureQueue(1, 4, DESC1, AVAIL1, USED1);
        write(STATUS, RUNNING);
        DeviceContext second = device.awaitActivation();
        assertFalse(second.queues().get(0).ready());
        assertTrue(second.queues().get(1).ready());
    }

    @Test
    void resetOfADeviceNeverActivatedDoesNotCallIt() throws Exception {
        negotiate(ACCEPTED);
        write(STATUS, 0);
        assertEquals(0, read(STATUS));
        assertNoDeviceCalls();
    }

    // --- interrupts and configuration space ---

    @Test
    void interruptStatusBitsAreSetByTheDeviceAndClearedByInterruptAck() throws InterruptedException {
        DeviceContext context = activate(ACCEPTED);
        EventNotifier irq = vm.irqFd();
        irq.drain();

        context.interrupt().trigger(InterruptTrigger.QUEUE);
        assertEquals(InterruptTrigger.QUEUE, read(INTERRUPT_STATUS));
        assertTrue(irq.drain() > 0, "irqfd signalled");
        context.interrupt().trigger(InterruptTrigger.CONFIG);
        assertEquals(InterruptTrigger.QUEUE | InterruptTrigger.CONFIG, read(INTERRUPT_STATUS));

        write(INTERRUPT_ACK, InterruptTrigger.QUEUE);
        assertEquals(InterruptTrigger.CONFIG, read(INTERRUPT_STATUS));
        write(INTERRUPT_ACK, InterruptTrigger.CONFIG);
        assertEquals(0, read(INTERRUPT_STATUS));
    }

    @Test
    void configGenerationChangesWithAConfigInterruptOnly() throws InterruptedException {
        DeviceContext context = activate(ACCEPTED);
        int generation = read(CONFIG_GENERATION);
        context.interrupt().trigger(InterruptTrigger.QUEUE);
        assertEquals(generation, read(CONFIG_GENERATION));
        context.interrupt().trigger(InterruptTrigger.CONFIG);
        assertNotEquals(generation, read(CONFIG_GENERATION));
    }

    @Test
    void needsResetFromTheDeviceSetsTheStatusBitAndRaisesAConfigInterrupt() throws InterruptedException {
        DeviceContext context = activate(ACCEPTED);
        context.needsReset("backend gone");
        assertEquals(RUNNING | DEVICE_NEEDS_RESET, read(STATUS));
        assertEquals(InterruptTrigger.CONFIG, read(INTERRUPT_STATUS));
        assertTrue(vm.irqFd().drain() > 0);
    }

    @Test
    void configSpaceIsReadLittleEndianAtEveryWidth() {
        assertEquals(0x11, transport.read(CONFIG, 1));
        assertEquals(0x44, transport.read(CONFIG + 3, 1));
        assertEquals(0x3322, transport.read(CONFIG + 1, 2));
        assertEquals(0x88776655L, transport.read(CONFIG + 4, 4));
        assertEquals(0x8877665544332211L, transport.read(CONFIG, 8));
    }

    @ParameterizedTest
    @CsvSource({"8, 1", "7, 2", "5, 4", "1, 8", "4096, 4"})
    void configAccessesBeyondTheConfigSpaceReadZeroAndWriteNothing(int offset, int size) {
        assertEquals(0, transport.read(CONFIG + offset, size));
        transport.write(CONFIG + offset, size, -1L);
        assertTrue(device.configWrites.isEmpty());
    }

    @Test
    void configWritesReachTheDeviceAtTheirOffsetAndWidth() {
        transport.write(CONFIG + 2, 2, 0xbeef);
        transport.write(CONFIG + 4, 4, 0x01020304);
        transport.write(CONFIG + 7, 1, 0xab);
        assertEquals(List.of("2:efbe", "4:04030201", "7:ab"), device.configWrites);
        assertEquals(0xbeef2211L, transport.read(CONFIG, 4));
        assertEquals(0xab020304L, transport.read(CONFIG + 4, 4));
    }

    // --- wiring ---

    @Test
    void attachRegistersOneIoEventFdPerQueueAndOneIrqFd() {
        assertEquals(2, vm.registeredIoEvents.size());
        for (int i = 0; i < 2; i++) {
            FakeHypervisorVm.IoEvent e = vm.registeredIoEvents.get(i);
            assertEquals(new IoEventAddress.Mmio(BASE + QUEUE_NOTIFY, 4, OptionalLong.of(i)), e.address());
        }
        assertNotEquals(vm.registeredIoEvents.get(0).notifier().handle(), vm.registeredIoEvents.get(1).notifier().handle());
        assertEquals(1, vm.registeredIrqFds.size());
        assertEquals(GSI, vm.registeredIrqFds.getFirst().gsi());
        assertTrue(vm.unregisteredIoEvents.isEmpty());
        assertTrue(vm.unregisteredIrqFds.isEmpty());
    }

    @Test
    void detachUnregistersExactlyWhatAttachRegisteredOnce() {
        transport.detach();
        transport.detach();
        assertEquals(vm.registeredIoEvents, vm.unregisteredIoEvents);
        assertEquals(vm.registeredIrqFds, vm.unregisteredIrqFds);
    }

    @Test
    void aBackendWithoutNotifiersGetsKicksAsExitsAndInterruptsAsLinePulses() throws Exception {
        FakeHypervisorVm plain = new FakeHypervisorVm(false);
        FakeVirtioDevice other = new FakeVirtioDevice(QUEUE0_MAX, QUEUE1_MAX);
        MmioTransport t = new MmioTransport(other, memory, BASE, GSI);
        t.attach(plain, loop);
        try {
            t.write(STATUS, 4, ACKNOWLEDGE);
            t.write(STATUS, 4, ACKNOWLEDGE | DRIVER);
            t.write(DRIVER_FEATURES_SEL, 4, 0);
            t.write(DRIVER_FEATURES, 4, (int) ACCEPTED);
            t.write(DRIVER_FEATURES_SEL, 4, 1);
            t.write(DRIVER_FEATURES, 4, (int) (ACCEPTED >>> 32));
            t.write(STATUS, 4, NEGOTIATED);
            t.write(QUEUE_SEL, 4, 0);
            t.write(QUEUE_NUM, 4, QUEUE0_MAX);
            t.write(QUEUE_DESC_LOW, 4, DESC0);
            t.write(QUEUE_DRIVER_LOW, 4, AVAIL0);
            t.write(QUEUE_DEVICE_LOW, 4, USED0);
            t.write(QUEUE_READY, 4, 1);
            t.write(STATUS, 4, RUNNING);
            DeviceContext context = other.awaitActivation();
            assertEquals("activate", other.awaitCall());
            assertEquals("notify 0", other.awaitCall());

            t.write(QUEUE_NOTIFY, 4, 0); // the vCPU exit path
            assertEquals("notify 0", other.awaitCall());

            context.interrupt().trigger(InterruptTrigger.QUEUE);
            assertEquals(List.of(GSI + " high", GSI + " low"), plain.irqLine);
            assertEquals(InterruptTrigger.QUEUE, t.read(INTERRUPT_STATUS, 4));
        } finally {
            t.detach();
        }
        assertTrue(plain.registeredIoEvents.isEmpty());
        assertTrue(plain.unregisteredIoEvents.isEmpty(), "nothing to unregister");
    }
}
