package org.krun.vmm.internal.virtio;

import java.lang.System.Logger.Level;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalLong;
import java.util.concurrent.CancellationException;
import java.util.concurrent.atomic.AtomicInteger;

import org.krun.posix.Posix;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.RateLimitedLog;
import org.krun.spi.virtio.SharedMemory;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;
import org.krun.vmm.internal.boot.SharedMemoryWindow;
import org.krun.vmm.internal.bus.BusDevice;
import org.krun.vmm.internal.memory.MemorySlots;
import org.krun.vmm.internal.event.EpollEventLoop;
import org.krun.vmm.internal.event.EventNotifier;

/**
 * The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2), for one device. Owns the registers, feature
 * negotiation, queue configuration and the status state machine; activates the device on DRIVER_OK and
 * resets it on a zero status write. Queue notifications arrive through one ioeventfd per queue and
 * interrupts leave through one irqfd, so neither costs a vCPU exit in the VMM (a backend without them
 * gets the QueueNotify write as an exit, and the interrupt as a line pulse).
 *
 * <p>The queue registers stay here ({@link QueueRegisters}); at DRIVER_OK the device receives
 * {@link Virtqueue}s made from them, which it cannot move or resize.
 *
 * <p>Threads: registers are accessed from vCPU threads (under this object's lock); device activation,
 * reset and notifications run on the VM's event loop.
 */
public final class MmioTransport implements BusDevice {
    private static final System.Logger LOG = System.getLogger(MmioTransport.class.getName());
    /** What the driver gets wrong, reported at most once per interval per device. */
    private final RateLimitedLog guestErrors = new RateLimitedLog(m -> LOG.log(Level.WARNING, m), Duration.ofSeconds(10));

    static final int MAGIC_VALUE = 0x000;
    static final int VERSION = 0x004;
    static final int DEVICE_ID = 0x008;
    static final int VENDOR_ID = 0x00c;
    static final int DEVICE_FEATURES = 0x010;
    static final int DEVICE_FEATURES_SEL = 0x014;
    static final int DRIVER_FEATURES = 0x020;
    static final int DRIVER_FEATURES_SEL = 0x024;
    static final int QUEUE_SEL = 0x030;
    static final int QUEUE_NUM_MAX = 0x034;
    static final int QUEUE_NUM = 0x038;
    static final int QUEUE_READY = 0x044;
    static final int QUEUE_NOTIFY = 0x050;
    static final int INTERRUPT_STATUS = 0x060;
    static final int INTERRUPT_ACK = 0x064;
    static final int STATUS = 0x070;
    static final int QUEUE_DESC_LOW = 0x080;
    static final int QUEUE_DESC_HIGH = 0x084;
    static final int QUEUE_DRIVER_LOW = 0x090;
    static final int QUEUE_DRIVER_HIGH = 0x094;
    static final int QUEUE_DEVICE_LOW = 0x0a0;
    static final int QUEUE_DEVICE_HIGH = 0x0a4;
    static final int SHM_SEL = 0x0ac;
    static final int SHM_LEN_LOW = 0x0b0;
    static final int SHM_LEN_HIGH = 0x0b4;
    static final int SHM_BASE_LOW = 0x0b8;
    static final int SHM_BASE_HIGH = 0x0bc;
    static final int CONFIG_GENERATION = 0x0fc;
    static final int CONFIG = 0x100;

    static final int MAGIC = 0x74726976; // "virt"
    static final int MMIO_VERSION = 2;
    static final int VENDOR = 0x4e55524b; // "KRUN"

    /** What the transport and its queues support for every device. */
    static final long TRANSPORT_FEATURES = VirtioFeatures.VERSION_1 | VirtioFeatures.RING_EVENT_IDX
            | VirtioFeatures.RING_INDIRECT_DESC;

    private final VirtioDevice device;
    private final GuestMemory memory;
    private final long base;
    private final int gsi;
    private final QueueRegisters[] queueRegisters;
    /** The device's shared memory regions as placed (virtio 1.2 §4.2.2 SHMSel and the registers after it). */
    private final List<PlacedSharedMemory> sharedMemory;
    /** The queues of the current activation, one per index; set at DRIVER_OK, cleared by reset. */
    private volatile Virtqueue[] queues;
    private final long offeredFeatures;
    private final AtomicInteger interruptStatus = new AtomicInteger();

    private int status;
    private int deviceFeaturesSel;
    private int driverFeaturesSel;
    private long driverFeatures;
    private int queueSel;
    private int shmSel;
    private final AtomicInteger configGeneration = new AtomicInteger();
    /** DEVICE_NEEDS_RESET as the device set it, from any thread; cleared by reset. */
    private volatile boolean needsReset;
    /** Written under the lock, read by the loop without it (the loop never takes this object's lock). */
    private volatile boolean active;
    /**
     * Loop-confined: device.activate has run and device.reset has not since. A kick dispatched in the same
     * loop iteration as DRIVER_OK (before the activation task) must not reach a device not yet activated.
     */
    private boolean deviceActive;

    private EpollEventLoop loop;
    private HypervisorVm vm;
    private EventNotifier irq;
    /** Whether the hypervisor raises the line from {@link #irq} itself (irqfd); otherwise it is pulsed. */
    private boolean irqByHypervisor;
    private final List<EventNotifier> notifiers = new ArrayList<>();
    private final List<AutoCloseable> registrations = new ArrayList<>();

    public MmioTransport(VirtioDevice device, GuestMemory memory, long base, int gsi) {
        this(device, memory, base, gsi, null, null);
    }

    /**
     * A transport whose device's shared memory regions ({@link VirtioDevice#sharedMemoryRegions()}) are placed
     * through {@code window}, their mappings taking {@code slots}; without either the device gets none.
     */
    public MmioTransport(VirtioDevice device, GuestMemory memory, long base, int gsi,
            SharedMemoryWindow window, MemorySlots slots) {
        this.device = device;
        this.memory = memory;
        this.base = base;
        this.gsi = gsi;
        this.queueRegisters = new QueueRegisters[device.queueCount()];
        for (int i = 0; i < queueRegisters.length; i++) {
            queueRegisters[i] = new QueueRegisters(device.queueMaxSize(i));
        }
        this.offeredFeatures = device.deviceFeatures() | TRANSPORT_FEATURES;
        List<PlacedSharedMemory> shm = new ArrayList<>();
        if (window != null && slots != null && slots.available()) {
            for (SharedMemoryRegion r : device.sharedMemoryRegions()) {
                if (shm.stream().anyMatch(p -> p.id() == r.id())) {
                    throw new IllegalArgumentException("virtio device " + device.deviceType() + " asks twice for shared memory region " + r.id());
                }
                shm.add(new PlacedSharedMemory(r, window.place(r.size()), slots));
            }
        }
        this.sharedMemory = List.copyOf(shm);
    }

    /** The device's shared memory regions as placed (none when the hypervisor cannot map while running). */
    public List<? extends SharedMemory> sharedMemory() {
        return sharedMemory;
    }

    private PlacedSharedMemory selectedSharedMemory() {
        for (PlacedSharedMemory r : sharedMemory) {
            if (r.id() == shmSel) {
                return r;
            }
        }
        return null;
    }

    /** SHMLen and SHMBase of the selected region, or all ones for a region that does not exist (§4.2.2). */
    private long sharedMemoryRegister(int offset) {
        PlacedSharedMemory r = selectedSharedMemory();
        if (r == null) {
            return 0xffffffffL;
        }
        long v = offset == SHM_LEN_LOW || offset == SHM_LEN_HIGH ? r.size() : r.guestAddress();
        return offset == SHM_LEN_LOW || offset == SHM_BASE_LOW ? v & 0xffffffffL : v >>> 32;
    }

    public VirtioDevice device() {
        return device;
    }

    public long base() {
        return base;
    }

    public int gsi() {
        return gsi;
    }

    /**
     * Wires the transport to the hypervisor and the loop: an ioeventfd per queue on QueueNotify (datamatch
     * = queue index, KVM API: KVM_IOEVENTFD) and an irqfd for the device's interrupt line, where the
     * backend offers them.
     */
    public void attach(HypervisorVm vm, EpollEventLoop loop) {
        this.vm = vm;
        this.loop = loop;
        irq = new EventNotifier();
        irqByHypervisor = vm.registerInterrupt(irq, gsi);
        for (int i = 0; i < queueRegisters.length; i++) {
            int index = i;
            EventNotifier n = new EventNotifier();
            if (!vm.registerIoEvent(notifyAddress(i), n)) {
                n.close(); // the QueueNotify write comes as an exit instead
                continue;
            }
            notifiers.add(n);
            registrations.add(loop.register(n.fd(), Posix.EPOLLIN, ev -> {
                n.drain();
                notifyQueue(index);
            }));
        }
    }

    private IoEventAddress notifyAddress(int queue) {
        return new IoEventAddress.Mmio(base + QUEUE_NOTIFY, 4, OptionalLong.of(queue));
    }

    /** Undoes {@link #attach} and removes every shared memory mapping; the hypervisor VM must still be open. Idempotent. */
    public void detach() {
        unmapSharedMemory();
        for (AutoCloseable r : registrations) {
            try {
                r.close();
            } catch (Exception e) {
                LOG.log(Level.DEBUG, "unregistering queue notifier", e);
            }
        }
        registrations.clear();
        for (EventNotifier n : notifiers) {
            try {
                vm.unregisterIoEvent(notifyAddress(notifiers.indexOf(n)), n);
            } catch (RuntimeException e) {
                LOG.log(Level.DEBUG, "unregistering ioeventfd", e);
            }
            n.close();
        }
        notifiers.clear();
        if (irq != null) {
            if (irqByHypervisor) {
                try {
                    vm.unregisterInterrupt(irq, gsi);
                } catch (RuntimeException e) {
                    LOG.log(Level.DEBUG, "unregistering irqfd", e);
                }
            }
            irq.close();
            irq = null;
        }
    }

    /** Runs on the loop: a queue kick, delivered only while the device is active. */
    private void notifyQueue(int index) {
        Virtqueue[] q = queues;
        if (deviceActive && q != null && index >= 0 && index < q.length && q[index].ready()) {
            device.queueNotify(index);
        }
    }

    /**
     * Runs every ready queue's notification once (at activation, and to drain queues when the VM stops). On
     * the loop.
     */
    public void notifyAllQueues() {
        for (int i = 0; i < queueRegisters.length; i++) {
            notifyQueue(i);
        }
    }

    @Override
    public synchronized long read(long offset, int size) {
        if (offset >= CONFIG) {
            return readConfig((int) (offset - CONFIG), size);
        }
        if (size != 4) {
            return 0; // virtio 1.2 §4.2.2.2: registers are read 32 bits at a time
        }
        return switch ((int) offset) {
            case MAGIC_VALUE -> MAGIC;
            case VERSION -> MMIO_VERSION;
            case DEVICE_ID -> device.deviceType();
            case VENDOR_ID -> VENDOR;
            case DEVICE_FEATURES -> deviceFeaturesSel == 0 ? offeredFeatures & 0xffffffffL
                    : deviceFeaturesSel == 1 ? offeredFeatures >>> 32 : 0;
            case QUEUE_NUM_MAX -> selectedQueue() == null ? 0 : selectedQueue().maxSize;
            case QUEUE_READY -> selectedQueue() != null && selectedQueue().ready ? 1 : 0;
            case INTERRUPT_STATUS -> interruptStatus.get();
            case STATUS -> status | (needsReset ? DeviceStatus.DEVICE_NEEDS_RESET : 0);
            case SHM_LEN_LOW, SHM_LEN_HIGH, SHM_BASE_LOW, SHM_BASE_HIGH -> sharedMemoryRegister((int) offset);
            case CONFIG_GENERATION -> configGeneration.get();
            default -> 0;
        } & 0xffffffffL;
    }

    @Override
    public synchronized void write(long offset, int size, long value) {
        if (offset >= CONFIG) {
            writeConfig((int) (offset - CONFIG), size, value);
            return;
        }
        if (size != 4) {
            return;
        }
        int v = (int) value;
        switch ((int) offset) {
            case DEVICE_FEATURES_SEL -> deviceFeaturesSel = v;
            case DRIVER_FEATURES_SEL -> driverFeaturesSel = v;
            case DRIVER_FEATURES -> {
                if (canNegotiate()) {
                    if (driverFeaturesSel == 0) {
                        driverFeatures = (driverFeatures & 0xffffffff00000000L) | (v & 0xffffffffL);
                    } else if (driverFeaturesSel == 1) {
                        driverFeatures = (driverFeatures & 0xffffffffL) | ((long) v << 32);
                    }
                }
            }
            case QUEUE_SEL -> queueSel = v;
            case QUEUE_NUM -> {
                if (canConfigureQueues() && selectedQueue() != null) {
                    selectedQueue().size = v;
                }
            }
            case QUEUE_READY -> {
                if (canConfigureQueues() && selectedQueue() != null) {
                    selectedQueue().ready = v == 1;
                }
            }
            case QUEUE_DESC_LOW -> setQueueAddress(v, false, q -> q.descTable, (q, a) -> q.descTable = a);
            case QUEUE_DESC_HIGH -> setQueueAddress(v, true, q -> q.descTable, (q, a) -> q.descTable = a);
            case QUEUE_DRIVER_LOW -> setQueueAddress(v, false, q -> q.availRing, (q, a) -> q.availRing = a);
            case QUEUE_DRIVER_HIGH -> setQueueAddress(v, true, q -> q.availRing, (q, a) -> q.availRing = a);
            case QUEUE_DEVICE_LOW -> setQueueAddress(v, false, q -> q.usedRing, (q, a) -> q.usedRing = a);
            case QUEUE_DEVICE_HIGH -> setQueueAddress(v, true, q -> q.usedRing, (q, a) -> q.usedRing = a);
            case QUEUE_NOTIFY -> {
                // Normally answered by the ioeventfd; this path serves hypervisors without one.
                if (v >= 0 && v < queueRegisters.length && loop != null) {
                    loop.execute(() -> notifyQueue(v));
                }
            }
            case INTERRUPT_ACK -> interruptStatus.getAndUpdate(s -> s & ~v);
            case STATUS -> writeStatus(v & 0xff);
            case SHM_SEL -> shmSel = v;
            default -> LOG.log(Level.DEBUG, () -> "virtio-mmio write to read-only or unknown register 0x" + Long.toHexString(offset));
        }
    }

    private interface AddressGetter {
        long get(QueueRegisters q);
    }

    private interface AddressSetter {
        void set(QueueRegisters q, long address);
    }

    private void setQueueAddress(int v, boolean high, AddressGetter get, AddressSetter set) {
        QueueRegisters q = selectedQueue();
        if (q == null || !canConfigureQueues()) {
            return;
        }
        long old = get.get(q);
        long next = high ? (old & 0xffffffffL) | ((long) v << 32) : (old & 0xffffffff00000000L) | (v & 0xffffffffL);
        set.set(q, next);
    }

    private QueueRegisters selectedQueue() {
        return queueSel >= 0 && queueSel < queueRegisters.length ? queueRegisters[queueSel] : null;
    }

    private boolean canNegotiate() {
        return (status & DeviceStatus.DRIVER) != 0 && (status & DeviceStatus.FEATURES_OK) == 0;
    }

    private boolean canConfigureQueues() {
        return (status & DeviceStatus.FEATURES_OK) != 0 && (status & DeviceStatus.DRIVER_OK) == 0;
    }

    private void writeStatus(int requested) {
        requested &= ~DeviceStatus.DEVICE_NEEDS_RESET;
        switch (DeviceStatus.classify(status, requested)) {
            case RESET -> reset();
            case ACKNOWLEDGE, DRIVER, FAILED -> status = requested;
            case FEATURES_OK -> {
                // §3.1.1: the device refuses FEATURES_OK for features it did not offer, or without VERSION_1.
                boolean acceptable = (driverFeatures & ~offeredFeatures) == 0
                        && (driverFeatures & VirtioFeatures.VERSION_1) != 0;
                if (acceptable) {
                    status = requested;
                } else {
                    guestErrors.warn("virtio device " + device.deviceType() + ": driver features 0x"
                            + Long.toHexString(driverFeatures) + " refused");
                }
            }
            case DRIVER_OK -> activate(requested);
            case INVALID -> {
                int from = status;
                int to = requested;
                LOG.log(Level.DEBUG, () -> "virtio device " + device.deviceType() + ": invalid status transition 0x"
                        + Integer.toHexString(from) + " -> 0x" + Integer.toHexString(to));
            }
        }
    }

    private void activate(int requested) {
        boolean eventIdx = (driverFeatures & VirtioFeatures.RING_EVENT_IDX) != 0;
        Virtqueue[] activated = new Virtqueue[queueRegisters.length];
        for (int i = 0; i < queueRegisters.length; i++) {
            QueueRegisters r = queueRegisters[i];
            if (!r.ready) {
                activated[i] = Virtqueue.disabled();
                continue;
            }
            String problem = r.layout().problem(memory, r.maxSize);
            if (problem != null) {
                guestErrors.warn("virtio device " + device.deviceType() + ": queue " + i + ": " + problem);
                needsReset = true;
                interrupt(InterruptTrigger.CONFIG);
                return;
            }
            activated[i] = new Virtqueue(r.layout(), eventIdx);
        }
        queues = activated;
        status = requested;
        active = true;
        DeviceContext context = new Context(List.of(activated), driverFeatures);
        loop.execute(() -> {
            try {
                device.activate(context);
            } catch (RuntimeException e) {
                guestErrors.warn("virtio device " + device.deviceType() + " failed to activate: " + e);
                active = false;
                needsReset = true;
                interrupt(InterruptTrigger.CONFIG);
                return;
            }
            deviceActive = true;
            notifyAllQueues(); // kicks that raced with activation are not lost
        });
    }

    private void reset() {
        boolean wasActive = active;
        active = false;
        if (wasActive && loop != null) {
            try {
                loop.call(() -> {
                    deviceActive = false;
                    device.reset();
                    return null;
                });
            } catch (CancellationException e) {
                return; // the VM is stopping: nothing left to reset for
            }
        }
        queues = null;
        unmapSharedMemory(); // what the device left mapped goes with its activation
        for (QueueRegisters q : queueRegisters) {
            q.reset();
        }
        status = 0;
        needsReset = false;
        deviceFeaturesSel = 0;
        driverFeaturesSel = 0;
        driverFeatures = 0;
        queueSel = 0;
        shmSel = 0;
        interruptStatus.set(0);
    }

    // ---- snapshots

    static final int STATE_VERSION = 1;

    /**
     * The transport's registers and, while active, each queue's device indices (virtio 1.2 §4.2.2 and
     * §2.7), big-endian: version, status, needs-reset, feature selects, driver features, queue select,
     * config generation, interrupt status, active, then per queue its size, ready, three ring addresses
     * and, for a ready queue of an active device, its {@link Virtqueue.Indices}. Call on the VM's event
     * loop (the queues' indices are the loop's) while every vCPU is paused (the registers are theirs).
     */
    public synchronized byte[] saveState() {
        Virtqueue[] q = queues;
        boolean saveIndices = active && q != null;
        ByteBuffer b = ByteBuffer.allocate(64 + queueRegisters.length * 48);
        b.putInt(STATE_VERSION).putInt(status).put((byte) (needsReset ? 1 : 0)).putInt(deviceFeaturesSel)
                .putInt(driverFeaturesSel).putLong(driverFeatures).putInt(queueSel).putInt(configGeneration.get())
                .putInt(interruptStatus.get()).put((byte) (saveIndices ? 1 : 0)).putInt(queueRegisters.length);
        for (int i = 0; i < queueRegisters.length; i++) {
            QueueRegisters r = queueRegisters[i];
            b.putInt(r.size).put((byte) (r.ready ? 1 : 0)).putLong(r.descTable).putLong(r.availRing).putLong(r.usedRing);
            if (saveIndices && q[i].ready()) {
                Virtqueue.Indices x = q[i].indices();
                b.putInt(x.nextAvail()).putInt(x.nextUsed()).putInt(x.signalledUsed());
            }
        }
        byte[] out = new byte[b.position()];
        b.flip().get(out);
        return out;
    }

    /**
     * Puts a new transport (attached, its loop not yet running) where {@link #saveState()} found the old
     * one, and gives the device its state at once: activation with its queues at their saved indices when
     * it was active, then {@code deviceState} for a {@link SnapshottableDevice}. Call on the VM's event loop
     * before its vCPUs run ({@link EpollEventLoop#callBeforeRun}), so that a state the device refuses fails
     * the restore before anything runs. One notification per queue, for buffers the driver made available
     * meanwhile, is left to the loop.
     *
     * @throws IllegalArgumentException when {@code state} does not fit this transport's device, or the
     *         device refuses {@code deviceState} or cannot be activated (one line); the caller discards the VM
     */
    public void restoreState(byte[] state, byte[] deviceState) {
        if (!loop.inEventLoop()) {
            throw new IllegalStateException("virtio device " + device.deviceType() + " restored off its event loop");
        }
        Virtqueue[] restored = restoreRegisters(state);
        SnapshottableDevice snapshottable = device instanceof SnapshottableDevice d ? d : null;
        if (snapshottable == null && deviceState.length > 0) {
            throw new IllegalArgumentException("virtio device " + device.deviceType() + " cannot restore its saved state");
        }
        if (restored == null) {
            if (snapshottable != null) {
                snapshottable.restoreState(deviceState);
            }
            return;
        }
        // Active before activate, as at DRIVER_OK: the device may interrupt from activate on.
        queues = restored;
        active = true;
        device.activate(new Context(List.of(restored), driverFeatures));
        deviceActive = true;
        if (snapshottable != null) {
            snapshottable.restoreState(deviceState);
        }
        loop.execute(this::notifyAllQueues);
    }

    /**
     * Puts the device back to its reset state after {@link #restoreState} activated it and the VM's restore
     * then failed elsewhere, so that the device can serve a fresh boot. Call on the event loop before it runs.
     */
    public void resetDevice() {
        if (!loop.inEventLoop()) {
            throw new IllegalStateException("virtio device " + device.deviceType() + " reset off its event loop");
        }
        reset();
    }

    /** The registers from {@code state}; the queues to activate the device with, or null if it was not active. */
    private synchronized Virtqueue[] restoreRegisters(byte[] state) {
        ByteBuffer b = ByteBuffer.wrap(state);
        try {
            int version = b.getInt();
            if (version != STATE_VERSION) {
                throw new IllegalArgumentException("virtio-mmio state version " + version + " (this krun reads " + STATE_VERSION + ")");
            }
            status = b.getInt();
            needsReset = b.get() != 0;
            deviceFeaturesSel = b.getInt();
            driverFeaturesSel = b.getInt();
            driverFeatures = b.getLong();
            queueSel = b.getInt();
            configGeneration.set(b.getInt());
            interruptStatus.set(b.getInt());
            boolean restoreActive = b.get() != 0;
            int count = b.getInt();
            if (count != queueRegisters.length) {
                throw new IllegalArgumentException("virtio device " + device.deviceType() + " has " + queueRegisters.length
                        + " queues; its saved transport has " + count);
            }
            if ((driverFeatures & ~offeredFeatures) != 0) {
                throw new IllegalArgumentException("virtio device " + device.deviceType() + " does not offer the saved driver features 0x"
                        + Long.toHexString(driverFeatures));
            }
            boolean eventIdx = (driverFeatures & VirtioFeatures.RING_EVENT_IDX) != 0;
            Virtqueue[] restored = new Virtqueue[count];
            for (int i = 0; i < count; i++) {
                QueueRegisters r = queueRegisters[i];
                r.size = b.getInt();
                r.ready = b.get() != 0;
                r.descTable = b.getLong();
                r.availRing = b.getLong();
                r.usedRing = b.getLong();
                if (!restoreActive) {
                    continue;
                }
                if (!r.ready) {
                    restored[i] = Virtqueue.disabled();
                    continue;
                }
                String problem = r.layout().problem(memory, r.maxSize);
                if (problem != null) {
                    throw new IllegalArgumentException("virtio device " + device.deviceType() + " queue " + i + ": " + problem);
                }
                restored[i] = new Virtqueue(r.layout(), eventIdx);
                restored[i].restoreIndices(new Virtqueue.Indices(b.getInt(), b.getInt(), b.getInt()));
            }
            if (b.hasRemaining()) {
                throw new IllegalArgumentException("virtio-mmio state of device " + device.deviceType() + " has " + b.remaining() + " extra bytes");
            }
            return restoreActive ? restored : null;
        } catch (BufferUnderflowException e) {
            throw new IllegalArgumentException("virtio-mmio state of device " + device.deviceType() + " is truncated");
        }
    }

    private long readConfig(int offset, int size) {
        if (size < 1 || size > 8 || offset < 0 || offset + size > device.configSize()) {
            return 0;
        }
        byte[] data = new byte[size];
        device.readConfig(offset, data);
        long v = 0;
        for (int i = 0; i < size; i++) {
            v |= (data[i] & 0xffL) << (8 * i);
        }
        return v;
    }

    private void writeConfig(int offset, int size, long value) {
        if (size < 1 || size > 8 || offset < 0 || offset + size > device.configSize()) {
            return;
        }
        byte[] data = new byte[size];
        for (int i = 0; i < size; i++) {
            data[i] = (byte) (value >>> (8 * i));
        }
        device.writeConfig(offset, data);
    }

    private void unmapSharedMemory() {
        for (PlacedSharedMemory r : sharedMemory) {
            try {
                r.unmapAll();
            } catch (RuntimeException e) {
                LOG.log(Level.ERROR, "virtio device " + device.deviceType() + ": removing shared memory " + r.id() + "'s mappings failed: " + e);
            }
        }
    }

    private void interrupt(int reasons) {
        if ((reasons & InterruptTrigger.CONFIG) != 0) {
            configGeneration.incrementAndGet();
        }
        interruptStatus.getAndUpdate(s -> s | reasons);
        EventNotifier n = irq;
        if (n == null) {
            return;
        }
        if (irqByHypervisor) {
            n.signal();
        } else {
            vm.setIrqLine(gsi, true); // an edge, as the irqfd would make it
            vm.setIrqLine(gsi, false);
        }
    }

    /** What the device gets at activation. */
    private final class Context implements DeviceContext {
        private final List<Virtqueue> queueList;
        private final long features;

        Context(List<Virtqueue> queueList, long features) {
            this.queueList = queueList;
            this.features = features;
        }

        @Override
        public GuestMemory memory() {
            return memory;
        }

        @Override
        public long driverFeatures() {
            return features;
        }

        @Override
        public List<Virtqueue> queues() {
            return queueList;
        }

        @Override
        public InterruptTrigger interrupt() {
            return MmioTransport.this::interrupt;
        }

        @Override
        public EventLoop eventLoop() {
            return loop;
        }

        @Override
        public java.util.Optional<SharedMemory> sharedMemory(int id) {
            return sharedMemory.stream().filter(r -> r.id() == id).<SharedMemory>map(r -> r).findFirst();
        }

        @Override
        public void needsReset(String reason) {
            guestErrors.warn("virtio device " + device.deviceType() + " needs reset: " + reason);
            needsReset = true;
            MmioTransport.this.interrupt(InterruptTrigger.CONFIG);
        }
    }
}
