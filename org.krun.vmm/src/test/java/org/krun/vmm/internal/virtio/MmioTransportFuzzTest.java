package org.krun.vmm.internal.virtio;

import static org.krun.vmm.internal.virtio.DeviceStatus.ACKNOWLEDGE;
import static org.krun.vmm.internal.virtio.DeviceStatus.DEVICE_NEEDS_RESET;
import static org.krun.vmm.internal.virtio.DeviceStatus.DRIVER;
import static org.krun.vmm.internal.virtio.DeviceStatus.DRIVER_OK;
import static org.krun.vmm.internal.virtio.DeviceStatus.FAILED;
import static org.krun.vmm.internal.virtio.DeviceStatus.FEATURES_OK;
import static org.krun.vmm.internal.virtio.MmioTransport.*;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.posix.EventFd;
import org.krun.posix.Posix;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.QueueLayout;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;
import org.krun.vmm.internal.event.EpollEventLoop;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of the virtio-mmio transport (virtio 1.2 §4.2.2) under a hostile driver: any
 * sequence of register reads and writes of any width, configuration space accesses in and out of range,
 * queue kicks through the ioeventfd or the QueueNotify exit, activation and reset in any order, a device
 * that fails its activation, asks for a reset or interrupts at any time, on backends with and without
 * ioeventfd/irqfd. The transport runs on a real epoll loop, as in a VM.
 *
 * <p>Asserted after every step against a model of the register file written from the spec: every register
 * the driver reads (status with DEVICE_NEEDS_RESET, interrupt status, config generation, features, queue
 * registers, configuration space); the device is activated exactly when the driver's DRIVER_OK is valid
 * (features offered and VERSION_1, every ready queue's layout inside RAM and aligned), on the loop, once
 * per activation, with the queues and features negotiated; it hears kicks only while active and only for
 * ready queues; reset reaches it exactly once per activation before the write returns; configuration
 * accesses stay inside its space; interrupts leave as whole edges. Host bounds ({@link FuzzBounds}):
 * allocation over every thread, wall time, descriptors (ioeventfds and irqfds are closed at detach) and
 * threads.
 */
class MmioTransportFuzzTest {

    private static final long BASE = 0xd000_0000L;
    private static final int GSI = 5;
    private static final long RAM_SIZE = 0x10000;
    private static final int MAX_STEPS = 160;
    /** Queue addresses a driver might choose: good ones, misaligned, at the end of RAM, outside it. */
    private static final long[] ADDRESSES = {0x1000, 0x2000, 0x3000, 0x4000, 0x8000, 0x1002, 0x2001, 0x3006,
        RAM_SIZE - 16, RAM_SIZE - 2, RAM_SIZE, 0xffff_ffff_ffff_f000L, 1L << 40};
    private static final int[] REGISTERS = {MAGIC_VALUE, VERSION, DEVICE_ID, VENDOR_ID, DEVICE_FEATURES,
        DEVICE_FEATURES_SEL, DRIVER_FEATURES, DRIVER_FEATURES_SEL, QUEUE_SEL, QUEUE_NUM_MAX, QUEUE_NUM, QUEUE_READY,
        QUEUE_NOTIFY, INTERRUPT_STATUS, INTERRUPT_ACK, STATUS, QUEUE_DESC_LOW, QUEUE_DESC_HIGH, QUEUE_DRIVER_LOW,
        QUEUE_DRIVER_HIGH, QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, SHM_SEL, SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW,
        SHM_BASE_HIGH, CONFIG_GENERATION, CONFIG};

    private static final Arena ARENA = Arena.ofShared();
    private static final GuestMemory MEMORY = new GuestMemory(List.of(new GuestRegion(0, ARENA.allocate(RAM_SIZE, 4096))));
    private static final EpollEventLoop LOOP = new EpollEventLoop();
    private static final Thread LOOP_THREAD = Thread.ofPlatform().daemon().name("fuzz-device-loop").start(LOOP::run);
    /** Signalled after the fuzz thread's kicks: its handler runs after theirs (one epoll batch, FIFO). */
    private static final EventFd PROBE = EventFd.create();
    private static volatile CountDownLatch settled;

    static {
        FuzzBounds.quietLogs("org.krun.vmm.internal.virtio");
        LOOP.register(PROBE.fd(), Posix.EPOLLIN, events -> {
            PROBE.drain();
            LOOP.execute(() -> settled.countDown());
        });
    }

    private static final FuzzBounds BOUNDS = new FuzzBounds("virtio-mmio transport",
            FuzzBounds.Limits.defaults().withAllThreads().withAllocatedPerInput(8L << 20),
            input -> new Scenario(new FuzzInput(input)).run());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS) // a hang guard; libFuzzer's -timeout when fuzzing
    void anyRegisterSequenceKeepsTransportAndDeviceInStep(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** Waits until the loop has handled every kick and task the fuzz thread caused so far. */
    private static void settle() {
        CountDownLatch latch = new CountDownLatch(1);
        settled = latch;
        PROBE.signal();
        try {
            if (!latch.await(10, TimeUnit.SECONDS)) {
                throw new AssertionError("the device loop did not respond within 10 s");
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError("interrupted", e);
        }
    }

    /** A device that checks what the transport does to it and records it. */
    private static final class RecordingDevice implements VirtioDevice {
        final long features;
        final int[] maxSizes;
        final byte[] config;
        volatile boolean failActivation;
        volatile DeviceContext context;
        volatile int activations;
        volatile int resets;
        final int[] notifies;
        volatile String violation;

        RecordingDevice(long features, int[] maxSizes, int configSize) {
            this.features = features;
            this.maxSizes = maxSizes;
            this.config = new byte[configSize];
            for (int i = 0; i < configSize; i++) {
                config[i] = (byte) (0x11 * (i + 1));
            }
            this.notifies = new int[maxSizes.length];
        }

        private void violated(String what) {
            if (violation == null) {
                violation = what;
            }
        }

        @Override
        public int deviceType() {
            return FakeVirtioDevice.TYPE;
        }

        @Override
        public long deviceFeatures() {
            return features;
        }

        @Override
        public int queueCount() {
            return maxSizes.length;
        }

        @Override
        public int queueMaxSize(int index) {
            return maxSizes[index];
        }

        @Override
        public int configSize() {
            return config.length;
        }

        @Override
        public synchronized void readConfig(int offset, byte[] data) {
            if (offset < 0 || data.length < 1 || data.length > 8 || offset + data.length > config.length) {
                violated("config read of " + data.length + " bytes at " + offset + " (space of " + config.length + ")");
                return;
            }
            System.arraycopy(config, offset, data, 0, data.length);
        }

        @Override
        public synchronized void writeConfig(int offset, byte[] data) {
            if (offset < 0 || data.length < 1 || data.length > 8 || offset + data.length > config.length) {
                violated("config write of " + data.length + " bytes at " + offset + " (space of " + config.length + ")");
                return;
            }
            System.arraycopy(data, 0, config, offset, data.length);
        }

        @Override
        public void activate(DeviceContext c) {
            if (!LOOP.inEventLoop()) {
                violated("activated off the loop");
            }
            if (context != null) {
                violated("activated twice without a reset");
            }
            if (c.queues().size() != maxSizes.length) {
                violated("activated with " + c.queues().size() + " queues");
            }
            long offered = features | MmioTransport.TRANSPORT_FEATURES;
            if ((c.driverFeatures() & ~offered) != 0 || (c.driverFeatures() & VirtioFeatures.VERSION_1) == 0) {
                violated("activated with driver features 0x" + Long.toHexString(c.driverFeatures()));
            }
            for (int i = 0; i < c.queues().size(); i++) {
                Virtqueue q = c.queues().get(i);
                if (q.ready() && q.layout().problem(c.memory(), maxSizes[i]) != null) {
                    violated("queue " + i + " activated with a bad layout: " + q.layout().problem(c.memory(), maxSizes[i]));
                }
                if (q.ready() && q.eventIdx() != c.hasFeature(VirtioFeatures.RING_EVENT_IDX)) {
                    violated("queue " + i + " EVENT_IDX differs from the negotiated features");
                }
            }
            if (failActivation) {
                throw new IllegalStateException("the device refuses this activation");
            }
            context = c;
            activations++;
        }

        @Override
        public void queueNotify(int index) {
            DeviceContext c = context;
            if (!LOOP.inEventLoop()) {
                violated("kick delivered off the loop");
            }
            if (c == null) {
                violated("kick for queue " + index + " delivered to an inactive device");
                return;
            }
            if (index < 0 || index >= maxSizes.length || !c.queues().get(index).ready()) {
                violated("kick for queue " + index + ", which is not ready");
                return;
            }
            notifies[index]++;
        }

        @Override
        public void reset() {
            if (!LOOP.inEventLoop()) {
                violated("reset off the loop");
            }
            if (context == null) {
                violated("reset without an activation");
            }
            context = null;
            resets++;
        }
    }

    /** The register file as the spec defines it, driven by the same writes. */
    private static final class Model {
        int status;
        boolean needsReset;
        int interruptStatus;
        int configGeneration;
        int deviceFeaturesSel;
        int driverFeaturesSel;
        long driverFeatures;
        int queueSel;
        final int[] size;
        final boolean[] ready;
        final long[] desc;
        final long[] avail;
        final long[] used;
        final int[] max;
        /** DRIVER_OK accepted and the device not reset since (whatever its activation did). */
        boolean active;
        /** The device's activation succeeded: it is serving. */
        boolean serving;
        final int[] notifies;
        int resets;
        /** The device's configuration space as the driver's writes left it. */
        byte[] config;

        Model(int[] max) {
            this.max = max;
            size = new int[max.length];
            ready = new boolean[max.length];
            desc = new long[max.length];
            avail = new long[max.length];
            used = new long[max.length];
            notifies = new int[max.length];
            resetQueues();
        }

        void resetQueues() {
            for (int i = 0; i < max.length; i++) {
                size[i] = max[i];
                ready[i] = false;
                desc[i] = avail[i] = used[i] = 0;
            }
        }

        boolean selected() {
            return queueSel >= 0 && queueSel < max.length;
        }

        void interrupt(int reasons) {
            if ((reasons & InterruptTrigger.CONFIG) != 0) {
                configGeneration++;
            }
            interruptStatus |= reasons;
        }
    }

    private static final class Scenario {
        private final FuzzInput in;
        private final RecordingDevice device;
        private final FakeHypervisorVm vm;
        private final MmioTransport transport;
        private final Model model;
        private final long offered;
        private int lastGeneration;

        Scenario(FuzzInput in) {
            this.in = in;
            int queues = in.below(4);
            int[] max = new int[queues];
            for (int i = 0; i < queues; i++) {
                max[i] = in.pick(1, 2, 16, 256, 32768);
            }
            long features = in.pick(0L, 1L, 1L << 40 | 1L << 5, in.i64()) & ~MmioTransport.TRANSPORT_FEATURES;
            device = new RecordingDevice(features, max, in.pick(0, 1, 8, 12, 60));
            device.failActivation = in.u8() < 16;
            vm = new FakeHypervisorVm(in.bool());
            transport = new MmioTransport(device, MEMORY, BASE, GSI);
            model = new Model(max);
            model.config = device.config.clone();
            offered = features | MmioTransport.TRANSPORT_FEATURES;
        }

        void run() {
            transport.attach(vm, LOOP);
            try {
                for (int step = 0; step < MAX_STEPS && !in.exhausted(); step++) {
                    step();
                    if (device.violation != null) {
                        throw new AssertionError(device.violation);
                    }
                }
                settle();
                check();
                // The VM goes away: a last reset (the driver's or the VMM's) and the wiring undone.
                write(STATUS, 0);
                check();
            } finally {
                transport.detach();
            }
            if (device.context != null) {
                throw new AssertionError("the device is still active after reset");
            }
            if (vm.unregisteredIoEvents.size() != vm.registeredIoEvents.size()
                    || vm.unregisteredIrqFds.size() != vm.registeredIrqFds.size()) {
                throw new AssertionError("detach left ioeventfds or irqfds registered");
            }
            for (int i = 0; i + 1 < vm.irqLine.size(); i += 2) {
                if (!vm.irqLine.get(i).equals(GSI + " high") || !vm.irqLine.get(i + 1).equals(GSI + " low")) {
                    throw new AssertionError("interrupt line not pulsed as edges: " + vm.irqLine);
                }
            }
        }

        private void step() {
            switch (in.below(12)) {
                case 0, 1, 2 -> {
                    int offset = REGISTERS[in.below(REGISTERS.length)];
                    write(offset, value(offset));
                }
                case 3 -> driverInitialisation();
                case 4 -> {
                    int offset = REGISTERS[in.below(REGISTERS.length)];
                    read(offset, 4);
                }
                case 5 -> {
                    int offset = in.bool() ? CONFIG + in.below(72) : in.below(0x200);
                    int size = in.pick(1, 2, 3, 4, 8, 16);
                    if (in.bool()) {
                        read(offset, size);
                    } else {
                        writeSized(offset, size, in.i64());
                    }
                }
                case 6 -> kickThroughIoEventFd(in.below(4));
                case 7 -> {
                    // the device side: interrupts, or a failure the spec lets it report
                    DeviceContext c = device.context;
                    if (c != null) {
                        if (in.bool()) {
                            int reasons = 1 + in.below(3);
                            c.interrupt().trigger(reasons);
                            model.interrupt(reasons);
                        } else {
                            c.needsReset("fuzzed device failure");
                            model.needsReset = true;
                            model.interrupt(InterruptTrigger.CONFIG);
                        }
                    }
                }
                case 8 -> device.failActivation = in.bool();
                case 9 -> {
                    settle();
                    check();
                }
                default -> {
                    int offset = REGISTERS[in.below(REGISTERS.length)];
                    write(offset, in.i32());
                }
            }
        }

        /** A value worth writing to {@code offset}. */
        private int value(int offset) {
            return switch (offset) {
                case STATUS -> in.pick(0, ACKNOWLEDGE, ACKNOWLEDGE | DRIVER, ACKNOWLEDGE | DRIVER | FEATURES_OK,
                        ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK, model.status | FAILED,
                        model.status | DEVICE_NEEDS_RESET, in.u8());
                case QUEUE_SEL, DEVICE_FEATURES_SEL, DRIVER_FEATURES_SEL, QUEUE_NOTIFY -> in.pick(0, 1, 2, 3, -1, in.i32());
                case QUEUE_NUM -> in.pick(0, 1, 2, 16, 256, 32768, 65536, 3, in.i32());
                case QUEUE_READY -> in.pick(0, 1, 2);
                case DRIVER_FEATURES -> in.pick(0, 1, (int) (offered >>> 32), (int) offered, in.i32());
                case QUEUE_DESC_LOW, QUEUE_DRIVER_LOW, QUEUE_DEVICE_LOW -> (int) ADDRESSES[in.below(ADDRESSES.length)];
                case QUEUE_DESC_HIGH, QUEUE_DRIVER_HIGH, QUEUE_DEVICE_HIGH -> in.pick(0, 0, -1, 1);
                case INTERRUPT_ACK -> in.pick(1, 2, 3, -1);
                default -> in.i32();
            };
        }

        /** The steps a Linux driver takes, with fuzzed choices, up to a fuzzed point. */
        private void driverInitialisation() {
            int upTo = in.below(5);
            write(STATUS, 0);
            if (upTo >= 1) {
                write(STATUS, ACKNOWLEDGE);
                write(STATUS, ACKNOWLEDGE | DRIVER);
                long accept = in.bool() ? offered : offered & in.i64() | VirtioFeatures.VERSION_1;
                write(DRIVER_FEATURES_SEL, 0);
                write(DRIVER_FEATURES, (int) accept);
                write(DRIVER_FEATURES_SEL, 1);
                write(DRIVER_FEATURES, (int) (accept >>> 32));
            }
            if (upTo >= 2) {
                write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
            }
            if (upTo >= 3) {
                for (int i = 0; i < model.max.length; i++) {
                    if (in.bool()) {
                        continue;
                    }
                    write(QUEUE_SEL, i);
                    write(QUEUE_NUM, in.bool() ? Math.min(model.max[i], 256) : value(QUEUE_NUM));
                    long base = in.bool() ? 0x1000L * (1 + 4 * i) : ADDRESSES[in.below(ADDRESSES.length)];
                    write(QUEUE_DESC_LOW, (int) base);
                    write(QUEUE_DESC_HIGH, (int) (base >>> 32));
                    write(QUEUE_DRIVER_LOW, (int) (base + 0x1000));
                    write(QUEUE_DRIVER_HIGH, (int) ((base + 0x1000) >>> 32));
                    write(QUEUE_DEVICE_LOW, (int) (base + 0x2000));
                    write(QUEUE_DEVICE_HIGH, (int) ((base + 0x2000) >>> 32));
                    write(QUEUE_READY, 1);
                }
            }
            if (upTo >= 4) {
                write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
            }
        }

        private void kickThroughIoEventFd(int queue) {
            if (vm.registeredIoEvents.isEmpty() || queue >= model.max.length) {
                return;
            }
            vm.queueNotifier(queue).signal();
            settle();
            expectKick(queue);
            check();
        }

        private void expectKick(int queue) {
            if (model.serving && queue >= 0 && queue < model.max.length && model.ready[queue]) {
                model.notifies[queue]++;
            }
        }

        // ---- register access, applied to the transport and the model

        private void write(int offset, int value) {
            writeSized(offset, 4, value & 0xffffffffL);
        }

        private void writeSized(int offset, int size, long value) {
            transport.write(offset, size, value);
            if (offset >= CONFIG) {
                int at = offset - CONFIG;
                if (size >= 1 && size <= 8 && at + size <= model.config.length) {
                    for (int i = 0; i < size; i++) {
                        model.config[at + i] = (byte) (value >>> (8 * i)); // little-endian, as the guest stored it
                    }
                }
                return;
            }
            if (size != 4) {
                return;
            }
            int v = (int) value;
            Model m = model;
            switch (offset) {
                case DEVICE_FEATURES_SEL -> m.deviceFeaturesSel = v;
                case DRIVER_FEATURES_SEL -> m.driverFeaturesSel = v;
                case DRIVER_FEATURES -> {
                    if ((m.status & DRIVER) != 0 && (m.status & FEATURES_OK) == 0) {
                        if (m.driverFeaturesSel == 0) {
                            m.driverFeatures = m.driverFeatures & ~0xffffffffL | v & 0xffffffffL;
                        } else if (m.driverFeaturesSel == 1) {
                            m.driverFeatures = m.driverFeatures & 0xffffffffL | (long) v << 32;
                        }
                    }
                }
                case QUEUE_SEL -> m.queueSel = v;
                case QUEUE_NUM -> {
                    if (queuesWritable() && m.selected()) {
                        m.size[m.queueSel] = v;
                    }
                }
                case QUEUE_READY -> {
                    if (queuesWritable() && m.selected()) {
                        m.ready[m.queueSel] = v == 1;
                    }
                }
                case QUEUE_DESC_LOW, QUEUE_DESC_HIGH -> address(m.desc, offset == QUEUE_DESC_HIGH, v);
                case QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH -> address(m.avail, offset == QUEUE_DRIVER_HIGH, v);
                case QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH -> address(m.used, offset == QUEUE_DEVICE_HIGH, v);
                case QUEUE_NOTIFY -> {
                    settle();
                    expectKick(v);
                }
                case INTERRUPT_ACK -> m.interruptStatus &= ~v;
                case STATUS -> status(v & 0xff & ~DEVICE_NEEDS_RESET);
                default -> {
                }
            }
        }

        private boolean queuesWritable() {
            return (model.status & FEATURES_OK) != 0 && (model.status & DRIVER_OK) == 0;
        }

        private void address(long[] field, boolean high, int v) {
            if (queuesWritable() && model.selected()) {
                long old = field[model.queueSel];
                field[model.queueSel] = high ? old & 0xffffffffL | (long) v << 32 : old & ~0xffffffffL | v & 0xffffffffL;
            }
        }

        /** virtio 1.2 §2.1, §3.1.1: the status byte's steps, FAILED, and reset. */
        private void status(int requested) {
            Model m = model;
            int from = m.status;
            if (requested == 0) {
                // The transport's write returns only after the device's reset ran on the loop, and resets
                // the device only if it was activated.
                if (m.active) {
                    m.resets++;
                }
                if (device.resets != m.resets || device.context != null) {
                    throw new AssertionError("status 0 written: the device was reset " + device.resets + " times, the model says "
                            + m.resets + (device.context != null ? ", and it is still active" : ""));
                }
                m.status = 0;
                m.needsReset = false;
                m.interruptStatus = 0;
                m.deviceFeaturesSel = m.driverFeaturesSel = m.queueSel = 0;
                m.driverFeatures = 0;
                m.resetQueues();
                m.active = false;
                m.serving = false;
                return;
            }
            if ((requested & FAILED) != 0 && (requested & ~FAILED) == (from & ~FAILED)) {
                m.status = requested;
                return;
            }
            if ((from & FAILED) != 0) {
                return;
            }
            int acked = ACKNOWLEDGE | DRIVER;
            if (from == 0 && requested == ACKNOWLEDGE || from == ACKNOWLEDGE && requested == acked) {
                m.status = requested;
            } else if (from == acked && requested == (acked | FEATURES_OK)) {
                if ((m.driverFeatures & ~offered) == 0 && (m.driverFeatures & VirtioFeatures.VERSION_1) != 0) {
                    m.status = requested;
                }
            } else if (from == (acked | FEATURES_OK) && requested == (acked | FEATURES_OK | DRIVER_OK)) {
                driverOk(requested);
            }
        }

        private void driverOk(int requested) {
            Model m = model;
            for (int i = 0; i < m.max.length; i++) {
                if (m.ready[i] && layoutProblem(i) != null) {
                    m.needsReset = true;
                    m.interrupt(InterruptTrigger.CONFIG);
                    return;
                }
            }
            m.status = requested;
            m.active = true;
            boolean fails = device.failActivation;
            settle(); // activation runs on the loop
            if (fails) {
                m.active = false; // the transport gives up on it: nothing to reset
                m.needsReset = true;
                m.interrupt(InterruptTrigger.CONFIG);
            } else {
                m.serving = true;
                for (int i = 0; i < m.max.length; i++) {
                    if (m.ready[i]) {
                        m.notifies[i]++; // activation kicks every ready queue once
                    }
                }
            }
            check();
        }

        /** The rules of §2.7 and §4.2.2 for a queue's registers, from the spec, for queue {@code i}. */
        private String layoutProblem(int i) {
            Model m = model;
            int n = m.size[i];
            if (n <= 0 || n > m.max[i] || Integer.bitCount(n) != 1) {
                return "size";
            }
            if ((m.desc[i] & 15) != 0 || (m.avail[i] & 1) != 0 || (m.used[i] & 3) != 0) {
                return "alignment";
            }
            if (!inRam(m.desc[i], 16L * n) || !inRam(m.avail[i], 6 + 2L * n) || !inRam(m.used[i], 6 + 8L * n)) {
                return "outside RAM";
            }
            return null;
        }

        private static boolean inRam(long address, long length) {
            return address >= 0 && address <= RAM_SIZE - length;
        }

        private long read(int offset, int size) {
            long v = transport.read(offset, size);
            long want = expectedRead(offset, size);
            if (v != want) {
                throw new AssertionError("read of " + size + " bytes at 0x" + Integer.toHexString(offset) + ": 0x"
                        + Long.toHexString(v) + ", the spec says 0x" + Long.toHexString(want));
            }
            return v;
        }

        private long expectedRead(int offset, int size) {
            Model m = model;
            if (offset >= CONFIG) {
                int at = offset - CONFIG;
                if (size < 1 || size > 8 || at + size > m.config.length) {
                    return 0;
                }
                long v = 0;
                for (int i = 0; i < size; i++) {
                    v |= (m.config[at + i] & 0xffL) << (8 * i);
                }
                return v;
            }
            if (size != 4) {
                return 0;
            }
            return switch (offset) {
                case MAGIC_VALUE -> 0x74726976L;
                case VERSION -> 2;
                case DEVICE_ID -> FakeVirtioDevice.TYPE;
                case VENDOR_ID -> MmioTransport.VENDOR;
                case DEVICE_FEATURES -> m.deviceFeaturesSel == 0 ? offered & 0xffffffffL
                        : m.deviceFeaturesSel == 1 ? offered >>> 32 : 0;
                case QUEUE_NUM_MAX -> m.selected() ? m.max[m.queueSel] : 0;
                case QUEUE_READY -> m.selected() && m.ready[m.queueSel] ? 1 : 0;
                case INTERRUPT_STATUS -> m.interruptStatus;
                case STATUS -> m.status | (m.needsReset ? DEVICE_NEEDS_RESET : 0);
                case SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH -> 0xffffffffL;
                case CONFIG_GENERATION -> m.configGeneration & 0xffffffffL;
                default -> 0;
            };
        }

        /** Every register, and the device's state, against the model. */
        private void check() {
            Model m = model;
            for (int offset : new int[] {STATUS, INTERRUPT_STATUS, CONFIG_GENERATION, QUEUE_NUM_MAX, QUEUE_READY,
                DEVICE_FEATURES, MAGIC_VALUE}) {
                read(offset, 4);
            }
            int generation = (int) transport.read(CONFIG_GENERATION, 4);
            if (generation - lastGeneration < 0) {
                throw new AssertionError("config generation went back from " + lastGeneration + " to " + generation);
            }
            lastGeneration = generation;
            if ((device.context != null) != m.serving) {
                throw new AssertionError("device " + (device.context != null ? "active" : "inactive") + ", the model says "
                        + (m.serving ? "serving" : "not"));
            }
            if (!Arrays.equals(device.notifies, 0, m.max.length, m.notifies, 0, m.max.length)) {
                // settle() orders the probe after the kicks signalled before it, but epoll does not promise to
                // return two descriptors that became ready in that order in one batch (bench/fuzz found one kick
                // counted just after the check, in 7.8 million inputs: "kicked 52 times, the model says 52").
                // A kick handled late is still a kick; one lost or doubled stays wrong after a second round.
                settle();
            }
            for (int i = 0; i < m.max.length; i++) {
                if (device.notifies[i] != m.notifies[i]) {
                    throw new AssertionError("queue " + i + " kicked " + device.notifies[i] + " times, the model says "
                            + m.notifies[i]);
                }
            }
            DeviceContext c = device.context;
            if (c != null) {
                if (c.driverFeatures() != m.driverFeatures) {
                    throw new AssertionError("device features 0x" + Long.toHexString(c.driverFeatures()) + ", negotiated 0x"
                            + Long.toHexString(m.driverFeatures));
                }
                for (int i = 0; i < m.max.length; i++) {
                    Virtqueue q = c.queues().get(i);
                    QueueLayout want = new QueueLayout(m.size[i], m.desc[i], m.avail[i], m.used[i]);
                    if (q.ready() != m.ready[i] || q.ready() && !q.layout().equals(want)) {
                        throw new AssertionError("queue " + i + " is " + (q.ready() ? q.layout() : "disabled") + ", the driver set "
                                + (m.ready[i] ? want : "it disabled"));
                    }
                }
            }
            if (device.violation != null) {
                throw new AssertionError(device.violation);
            }
        }
    }
}
