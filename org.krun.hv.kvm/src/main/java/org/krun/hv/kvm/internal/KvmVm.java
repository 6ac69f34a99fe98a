package org.krun.hv.kvm.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Map;

import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.hypervisor.Notifier;
import org.krun.spi.hypervisor.Vcpu;
import org.krun.posix.Posix;

/** One KVM VM fd and the vCPUs created from it. */
final class KvmVm implements HypervisorVm {

    /** Where KVM puts the three pages of the (unused on 64-bit) TSS: just below the top of 4 GiB. */
    static final long TSS_ADDRESS = 0xfffbd000L;
    static final long IDENTITY_MAP_ADDRESS = 0xfffbc000L;

    private final Kvm kvm;
    private final int fd;
    private final int vcpuCount;
    private final List<KvmVcpu> vcpus = new ArrayList<>();
    /** KVM_CAP_NR_MEMSLOTS, at least the two guest RAM takes. */
    private final int memorySlots;
    private final BitSet mappedSlots = new BitSet();
    private boolean closed;

    KvmVm(Kvm kvm, int vcpuCount) {
        this.kvm = kvm;
        this.vcpuCount = vcpuCount;
        this.fd = kvm.createVm();
        this.memorySlots = Math.max(2, kvm.checkExtension(KvmIoctls.KVM_CAP_NR_MEMSLOTS));
        try {
            Posix.check("KVM_SET_TSS_ADDR", Posix.ioctl(fd, KvmIoctls.KVM_SET_TSS_ADDR, TSS_ADDRESS));
            try (Arena a = Arena.ofConfined()) {
                MemorySegment addr = a.allocateFrom(JAVA_LONG, IDENTITY_MAP_ADDRESS);
                Posix.check("KVM_SET_IDENTITY_MAP_ADDR", Posix.ioctl(fd, KvmIoctls.KVM_SET_IDENTITY_MAP_ADDR, addr));
            }
        } catch (RuntimeException e) {
            Posix.close(fd);
            throw e;
        }
    }

    int fd() {
        return fd;
    }

    @Override
    public void mapMemory(int slot, long guestAddress, MemorySegment host) {
        if (slot < 0 || slot >= memorySlots || host.byteSize() == 0) {
            throw new IllegalArgumentException("KVM_SET_USER_MEMORY_REGION: slot " + slot + " of " + memorySlots
                    + " with " + host.byteSize() + " bytes");
        }
        setUserMemoryRegion(slot, guestAddress, host.byteSize(), host.address());
        synchronized (this) {
            mappedSlots.set(slot);
        }
    }

    /** KVM's slot count (KVM_CAP_NR_MEMSLOTS); every slot can be added and removed while vCPUs run. */
    @Override
    public int memorySlots() {
        return memorySlots;
    }

    /** KVM API: KVM_SET_USER_MEMORY_REGION with memory_size 0 deletes the slot. */
    @Override
    public void unmapMemory(int slot) {
        synchronized (this) {
            if (slot < 0 || slot >= memorySlots || !mappedSlots.get(slot)) {
                throw new IllegalArgumentException("KVM_SET_USER_MEMORY_REGION: slot " + slot + " is not mapped");
            }
        }
        setUserMemoryRegion(slot, 0, 0, 0);
        synchronized (this) {
            mappedSlots.clear(slot);
        }
    }

    /** The slots mapped now (tests). */
    synchronized int mappedSlots() {
        return mappedSlots.cardinality();
    }

    /** KVM API: KVM_SET_USER_MEMORY_REGION (linux/kvm.h struct kvm_userspace_memory_region). */
    private void setUserMemoryRegion(int slot, long guestAddress, long size, long hostAddress) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment region = a.allocate(KvmStructs.USERSPACE_MEMORY_REGION);
            region.set(JAVA_INT, 0, slot);
            region.set(JAVA_INT, 4, 0);
            region.set(JAVA_LONG, 8, guestAddress);
            region.set(JAVA_LONG, 16, size);
            region.set(JAVA_LONG, 24, hostAddress);
            Posix.check("KVM_SET_USER_MEMORY_REGION", Posix.ioctl(fd, KvmIoctls.KVM_SET_USER_MEMORY_REGION, region));
        }
    }

    @Override
    public void createInterruptControllers() {
        Posix.check("KVM_CREATE_IRQCHIP", Posix.ioctl(fd, KvmIoctls.KVM_CREATE_IRQCHIP, 0L));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment config = a.allocate(KvmStructs.PIT_CONFIG);
            config.set(JAVA_INT, 0, KvmIoctls.KVM_PIT_SPEAKER_DUMMY);
            Posix.check("KVM_CREATE_PIT2", Posix.ioctl(fd, KvmIoctls.KVM_CREATE_PIT2, config));
        }
    }

    @Override
    public synchronized Vcpu createVcpu(int index) {
        KvmVcpu vcpu = new KvmVcpu(kvm, this, index, vcpuCount);
        vcpus.add(vcpu);
        return vcpu;
    }

    /** The eventfd behind {@code notifier}, or -1 when it is not one (KVM knows no other primitive). */
    private static int eventFd(Notifier notifier) {
        Notifier.Handle h = notifier.handle();
        return Notifier.Handle.EVENTFD.equals(h.kind()) ? (int) h.value() : -1;
    }

    @Override
    public boolean registerIoEvent(IoEventAddress address, Notifier notifier) {
        int efd = eventFd(notifier);
        if (efd < 0) {
            return false;
        }
        ioeventfd(address, efd, 0);
        return true;
    }

    @Override
    public void unregisterIoEvent(IoEventAddress address, Notifier notifier) {
        int efd = eventFd(notifier);
        if (efd >= 0) {
            ioeventfd(address, efd, KvmIoctls.KVM_IOEVENTFD_FLAG_DEASSIGN);
        }
    }

    /** KVM API: KVM_IOEVENTFD. */
    private void ioeventfd(IoEventAddress address, int eventFd, int extraFlags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(KvmStructs.IOEVENTFD);
            int flags = extraFlags;
            if (address.datamatch().isPresent()) {
                flags |= KvmIoctls.KVM_IOEVENTFD_FLAG_DATAMATCH;
                s.set(JAVA_LONG, 0, address.datamatch().getAsLong());
            }
            if (address instanceof IoEventAddress.Pio) {
                flags |= KvmIoctls.KVM_IOEVENTFD_FLAG_PIO;
            }
            s.set(JAVA_LONG, 8, address.address());
            s.set(JAVA_INT, 16, address.length());
            s.set(JAVA_INT, 20, eventFd);
            s.set(JAVA_INT, 24, flags);
            Posix.check("KVM_IOEVENTFD", Posix.ioctl(fd, KvmIoctls.KVM_IOEVENTFD, s));
        }
    }

    @Override
    public boolean registerInterrupt(Notifier notifier, int gsi) {
        int efd = eventFd(notifier);
        if (efd < 0) {
            return false;
        }
        irqfd(efd, gsi, 0);
        return true;
    }

    @Override
    public void unregisterInterrupt(Notifier notifier, int gsi) {
        int efd = eventFd(notifier);
        if (efd >= 0) {
            irqfd(efd, gsi, KvmIoctls.KVM_IRQFD_FLAG_DEASSIGN);
        }
    }

    /** KVM API: KVM_IRQFD. */
    private void irqfd(int eventFd, int gsi, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(KvmStructs.IRQFD);
            s.set(JAVA_INT, 0, eventFd);
            s.set(JAVA_INT, 4, gsi);
            s.set(JAVA_INT, 8, flags);
            Posix.check("KVM_IRQFD", Posix.ioctl(fd, KvmIoctls.KVM_IRQFD, s));
        }
    }

    @Override
    public void setIrqLine(int gsi, boolean level) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(KvmStructs.IRQ_LEVEL);
            s.set(JAVA_INT, 0, gsi);
            s.set(JAVA_INT, 4, level ? 1 : 0);
            Posix.check("KVM_IRQ_LINE", Posix.ioctl(fd, KvmIoctls.KVM_IRQ_LINE, s));
        }
    }

    // ---- snapshots: sections of the VM state blob (KvmStateBlob)

    static final int TAG_PIC_MASTER = 1;
    static final int TAG_PIC_SLAVE = 2;
    static final int TAG_IOAPIC = 3;
    static final int TAG_PIT = 4;
    static final int TAG_CLOCK = 5;

    /** The in-kernel PICs and IOAPIC (KVM_GET_IRQCHIP, one chip at a time), the PIT and kvmclock. */
    @Override
    public byte[] saveState() {
        try (Arena a = Arena.ofConfined()) {
            KvmStateBlob.Writer w = new KvmStateBlob.Writer(KvmStateBlob.VM_MAGIC);
            w.put(TAG_PIC_MASTER, irqchip(a, KvmIoctls.KVM_IRQCHIP_PIC_MASTER));
            w.put(TAG_PIC_SLAVE, irqchip(a, KvmIoctls.KVM_IRQCHIP_PIC_SLAVE));
            w.put(TAG_IOAPIC, irqchip(a, KvmIoctls.KVM_IRQCHIP_IOAPIC));
            MemorySegment pit = a.allocate(KvmStructs.PIT_STATE2);
            Posix.check("KVM_GET_PIT2", Posix.ioctl(fd, KvmIoctls.KVM_GET_PIT2, pit));
            w.put(TAG_PIT, pit);
            if (kvm.checkExtension(KvmIoctls.KVM_CAP_ADJUST_CLOCK) > 0) {
                MemorySegment clock = a.allocate(KvmStructs.CLOCK_DATA);
                Posix.check("KVM_GET_CLOCK", Posix.ioctl(fd, KvmIoctls.KVM_GET_CLOCK, clock));
                w.put(TAG_CLOCK, clock);
            }
            return w.toBytes();
        }
    }

    /**
     * Restores the PIT, the guest clock and the interrupt controllers, in Firecracker's order, before any
     * vCPU runs. The clock goes back to the saved kvmclock value without KVM_CLOCK_REALTIME: the guest's
     * monotonic time continues from where it was paused (the guest's wall time is the guest's business,
     * set after restore by whoever needs it).
     */
    @Override
    public void restoreState(byte[] state) {
        Map<Integer, byte[]> s = KvmStateBlob.read(state, KvmStateBlob.VM_MAGIC, "VM");
        try (Arena a = Arena.ofConfined()) {
            set(a, "KVM_SET_PIT2", KvmIoctls.KVM_SET_PIT2, KvmStateBlob.require(s, TAG_PIT, KvmStructs.PIT_STATE2.byteSize(), "VM"));
            if (s.containsKey(TAG_CLOCK)) {
                MemorySegment clock = a.allocate(KvmStructs.CLOCK_DATA);
                clock.set(JAVA_LONG, 0, ByteBuffer.wrap(KvmStateBlob.require(s, TAG_CLOCK, KvmStructs.CLOCK_DATA.byteSize(), "VM"))
                        .order(ByteOrder.LITTLE_ENDIAN).getLong());
                Posix.check("KVM_SET_CLOCK", Posix.ioctl(fd, KvmIoctls.KVM_SET_CLOCK, clock));
            }
            int[][] chips = {{TAG_PIC_MASTER, KvmIoctls.KVM_IRQCHIP_PIC_MASTER}, {TAG_PIC_SLAVE, KvmIoctls.KVM_IRQCHIP_PIC_SLAVE},
                {TAG_IOAPIC, KvmIoctls.KVM_IRQCHIP_IOAPIC}};
            for (int[] chip : chips) {
                byte[] data = KvmStateBlob.require(s, chip[0], KvmStructs.IRQCHIP.byteSize(), "VM");
                if (ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).getInt() != chip[1]) {
                    throw new IllegalArgumentException("VM state has the wrong interrupt controller in section " + chip[0]);
                }
                set(a, "KVM_SET_IRQCHIP", KvmIoctls.KVM_SET_IRQCHIP, data);
            }
        }
    }

    private MemorySegment irqchip(Arena a, int chipId) {
        MemorySegment chip = a.allocate(KvmStructs.IRQCHIP);
        chip.set(JAVA_INT, 0, chipId);
        Posix.check("KVM_GET_IRQCHIP", Posix.ioctl(fd, KvmIoctls.KVM_GET_IRQCHIP, chip));
        return chip;
    }

    private void set(Arena a, String name, long request, byte[] data) {
        MemorySegment s = a.allocate(data.length, 8);
        MemorySegment.copy(data, 0, s, JAVA_BYTE, 0, data.length);
        Posix.check(name, Posix.ioctl(fd, request, s));
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        for (KvmVcpu v : vcpus) {
            v.close();
        }
        vcpus.clear();
        Posix.close(fd);
    }
}
