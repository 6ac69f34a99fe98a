package org.krun.vmm.internal.virtio;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.hypervisor.Notifier;
import org.krun.spi.hypervisor.Vcpu;
import org.krun.vmm.internal.event.EventNotifier;

/**
 * Records the ioeventfd and irqfd wiring a transport asks for, and the interrupt line pulses of a backend
 * without them ({@code acceptsNotifiers} false); everything else is out of scope.
 */
final class FakeHypervisorVm implements HypervisorVm {

    record IoEvent(IoEventAddress address, Notifier notifier) {
    }

    record IrqFd(Notifier notifier, int gsi) {
    }

    private final boolean acceptsNotifiers;
    final List<IoEvent> registeredIoEvents = new ArrayList<>();
    final List<IoEvent> unregisteredIoEvents = new ArrayList<>();
    final List<IrqFd> registeredIrqFds = new ArrayList<>();
    final List<IrqFd> unregisteredIrqFds = new ArrayList<>();
    final List<String> irqLine = new ArrayList<>();

    FakeHypervisorVm() {
        this(true);
    }

    /** A backend that takes the core's notifiers (as KVM), or one that has nothing like them. */
    FakeHypervisorVm(boolean acceptsNotifiers) {
        this.acceptsNotifiers = acceptsNotifiers;
    }

    /** The notifier the transport gave for queue {@code index}'s notifications (what KVM would signal). */
    synchronized EventNotifier queueNotifier(int index) {
        return (EventNotifier) registeredIoEvents.stream()
                .filter(e -> e.address().datamatch().orElse(-1) == index)
                .findFirst().orElseThrow().notifier();
    }

    /** The notifier the transport signals to raise its interrupt. */
    synchronized EventNotifier irqFd() {
        return (EventNotifier) registeredIrqFds.getFirst().notifier();
    }

    @Override
    public synchronized boolean registerIoEvent(IoEventAddress address, Notifier notifier) {
        if (acceptsNotifiers) {
            registeredIoEvents.add(new IoEvent(address, notifier));
        }
        return acceptsNotifiers;
    }

    @Override
    public synchronized void unregisterIoEvent(IoEventAddress address, Notifier notifier) {
        unregisteredIoEvents.add(new IoEvent(address, notifier));
    }

    @Override
    public synchronized boolean registerInterrupt(Notifier notifier, int gsi) {
        if (acceptsNotifiers) {
            registeredIrqFds.add(new IrqFd(notifier, gsi));
        }
        return acceptsNotifiers;
    }

    @Override
    public synchronized void unregisterInterrupt(Notifier notifier, int gsi) {
        unregisteredIrqFds.add(new IrqFd(notifier, gsi));
    }

    /** Memory slots mapped now: slot to {guest address, size, host address}. */
    final Map<Integer, long[]> slots = new TreeMap<>();
    /** What {@link #memorySlots()} says: 0 for a backend that cannot map while the VM runs. */
    volatile int memorySlots;
    /** Slots whose unmapping fails, as a hypervisor might. */
    final java.util.Set<Integer> failingUnmaps = new java.util.HashSet<>();

    @Override
    public synchronized void mapMemory(int slot, long guestAddress, MemorySegment host) {
        if (slot < 0 || slot >= memorySlots || slots.containsKey(slot)) {
            throw new IllegalArgumentException("slot " + slot + " is taken or out of range");
        }
        slots.put(slot, new long[] {guestAddress, host.byteSize(), host.address()});
    }

    @Override
    public int memorySlots() {
        return memorySlots;
    }

    @Override
    public synchronized void unmapMemory(int slot) {
        if (failingUnmaps.contains(slot)) {
            throw new IllegalStateException("slot " + slot + " cannot be removed");
        }
        if (slots.remove(slot) == null) {
            throw new IllegalArgumentException("slot " + slot + " is not mapped");
        }
    }

    @Override
    public void createInterruptControllers() {
        throw new UnsupportedOperationException();
    }

    @Override
    public Vcpu createVcpu(int index) {
        throw new UnsupportedOperationException();
    }

    @Override
    public synchronized void setIrqLine(int gsi, boolean level) {
        if (acceptsNotifiers) {
            throw new UnsupportedOperationException("the transport raises interrupts through its irqfd");
        }
        irqLine.add(gsi + (level ? " high" : " low"));
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException();
    }
}
