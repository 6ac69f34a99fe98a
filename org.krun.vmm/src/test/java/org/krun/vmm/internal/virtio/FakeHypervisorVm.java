package org.krun.vmm.internal.virtio;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.hypervisor.Vcpu;
import org.krun.spi.posix.EventFd;

/** Records the ioeventfd and irqfd wiring a transport asks for; everything else is out of scope. */
final class FakeHypervisorVm implements HypervisorVm {

    record IoEvent(IoEventAddress address, EventFd fd) {
    }

    record IrqFd(EventFd fd, int gsi) {
    }

    final List<IoEvent> registeredIoEvents = new ArrayList<>();
    final List<IoEvent> unregisteredIoEvents = new ArrayList<>();
    final List<IrqFd> registeredIrqFds = new ArrayList<>();
    final List<IrqFd> unregisteredIrqFds = new ArrayList<>();

    /** The eventfd the transport gave for queue {@code index}'s notifications (what KVM would signal). */
    synchronized EventFd queueNotifier(int index) {
        return registeredIoEvents.stream()
                .filter(e -> e.address().datamatch().orElse(-1) == index)
                .findFirst().orElseThrow().fd();
    }

    /** The eventfd the transport signals to raise its interrupt. */
    synchronized EventFd irqFd() {
        return registeredIrqFds.getFirst().fd();
    }

    @Override
    public synchronized void registerIoEvent(IoEventAddress address, EventFd fd) {
        registeredIoEvents.add(new IoEvent(address, fd));
    }

    @Override
    public synchronized void unregisterIoEvent(IoEventAddress address, EventFd fd) {
        unregisteredIoEvents.add(new IoEvent(address, fd));
    }

    @Override
    public synchronized void registerIrqFd(EventFd fd, int gsi) {
        registeredIrqFds.add(new IrqFd(fd, gsi));
    }

    @Override
    public synchronized void unregisterIrqFd(EventFd fd, int gsi) {
        unregisteredIrqFds.add(new IrqFd(fd, gsi));
    }

    @Override
    public void mapMemory(int slot, long guestAddress, MemorySegment host) {
        throw new UnsupportedOperationException();
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
    public void setIrqLine(int gsi, boolean level) {
        throw new UnsupportedOperationException();
    }

    @Override
    public void close() {
        throw new UnsupportedOperationException();
    }
}
