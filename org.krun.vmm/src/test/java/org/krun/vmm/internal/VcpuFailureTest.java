package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Supplier;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.device.console.internal.ConsoleFactory;
import org.krun.spi.hypervisor.HostCapabilities;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.IoEventAddress;
import org.krun.spi.hypervisor.Notifier;
import org.krun.spi.hypervisor.Vcpu;
import org.krun.spi.hypervisor.VcpuExit;
import org.krun.spi.hypervisor.X86BootState;

/**
 * What the core does with a vCPU that fails or halts, under a scripted backend (no KVM needed): a failure
 * of any kind ends that VM with a reason, and a halted vCPU sleeps instead of spinning.
 */
class VcpuFailureTest {

    /** A backend whose vCPUs answer run() with {@code exits}. */
    private static Hypervisor backend(Supplier<VcpuExit> exits, AtomicLong runs) {
        return new Hypervisor() {
            @Override
            public String name() {
                return "scripted";
            }

            @Override
            public HostCapabilities capabilities() {
                return new HostCapabilities("scripted", false, 4);
            }

            @Override
            public HypervisorVm createVm(int vcpuCount) {
                return new HypervisorVm() {
                    @Override
                    public void mapMemory(int slot, long guestAddress, MemorySegment host) {
                    }

                    @Override
                    public void createInterruptControllers() {
                    }

                    @Override
                    public Vcpu createVcpu(int index) {
                        return new Vcpu() {
                            private volatile boolean kicked;

                            @Override
                            public int index() {
                                return index;
                            }

                            @Override
                            public void setBootState(X86BootState state) {
                            }

                            @Override
                            public VcpuExit run() {
                                runs.incrementAndGet();
                                if (kicked) {
                                    kicked = false;
                                    return VcpuExit.INTERRUPTED;
                                }
                                return exits.get();
                            }

                            @Override
                            public void completeRead(long value) {
                            }

                            @Override
                            public void kick() {
                                kicked = true;
                            }

                            @Override
                            public void attachThread() {
                            }

                            @Override
                            public void close() {
                            }
                        };
                    }

                    @Override
                    public boolean registerIoEvent(IoEventAddress address, Notifier notifier) {
                        return false;
                    }

                    @Override
                    public void unregisterIoEvent(IoEventAddress address, Notifier notifier) {
                    }

                    @Override
                    public boolean registerInterrupt(Notifier notifier, int gsi) {
                        return false;
                    }

                    @Override
                    public void unregisterInterrupt(Notifier notifier, int gsi) {
                    }

                    @Override
                    public void setIrqLine(int gsi, boolean level) {
                    }

                    @Override
                    public void close() {
                    }
                };
            }
        };
    }

    private static VirtualMachine vm(Hypervisor backend) {
        KrunService krun = new KrunService();
        krun.addHypervisor(backend);
        krun.addDeviceFactory(new ConsoleFactory());
        return krun.create(VmConfig.builder().kernel(FastGuests.elf("portio.elf")).command("fast-guest").memoryMib(64)
                .console(ConsoleSpec.discard()).defaultDevices(false).build());
    }

    @Test
    void anErrorInAVcpuThreadEndsThatVmWithItsReason() throws Exception {
        AtomicLong runs = new AtomicLong();
        try (VirtualMachine vm = vm(backend(() -> {
            throw new StackOverflowError("scripted");
        }, runs))) {
            vm.start();
            VmExit exit = vm.waitFor(Duration.ofSeconds(30));
            assertEquals(VmExit.Reason.FAILED, exit.reason(), exit.toString());
            assertTrue(exit.detail().contains("vCPU 0") && exit.detail().contains("scripted"), exit.toString());
        }
    }

    @Test
    void aHaltedVcpuSleepsInsteadOfSpinning() throws Exception {
        AtomicLong runs = new AtomicLong();
        try (VirtualMachine vm = vm(backend(() -> VcpuExit.HALTED, runs))) {
            vm.start();
            Thread.sleep(500);
            long inHalfASecond = runs.get();
            vm.kill();
            VmExit exit = vm.waitFor(Duration.ofSeconds(30));
            assertEquals(VmExit.Reason.KILLED, exit.reason(), exit.toString());
            // A spinning vCPU thread returns to run() millions of times in half a second; one that sleeps
            // between halts (1 ms) at most a few hundred.
            assertTrue(inHalfASecond < 5_000, inHalfASecond + " halts in half a second: the vCPU thread spins");
        }
    }
}
