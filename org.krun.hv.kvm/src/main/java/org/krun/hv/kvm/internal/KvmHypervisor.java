package org.krun.hv.kvm.internal;

import java.util.ArrayList;
import java.util.List;

import org.krun.api.VmConfigException;
import org.krun.spi.hypervisor.HostCapabilities;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.posix.Posix;

/** The KVM backend over one open /dev/kvm. */
public final class KvmHypervisor implements Hypervisor, AutoCloseable {

    /**
     * What a kvm-pvm host needs from the guest kernel (KVM-HOST.md): no XSAVE, and no POPCNT, SMAP or
     * fast-string feature bits that show through from the host but that its instruction emulator cannot
     * run (or runs 6-8x slower than rep stosq, for erms/fsrm); and no FSGSBASE, whose paranoid exception
     * entry (an NMI or a kernel-mode #DB on an SMP guest) finds its per-CPU base with LSL, another
     * instruction the emulator stops the guest on (seen as "KVM internal error, suberror 1" with
     * 48 0f 03 c0 at RIP on a 2-vCPU guest under load).
     */
    static final List<String> PVM_KERNEL_ARGS = List.of("noxsave", "nofsgsbase", "clearcpuid=popcnt,smap,erms,fsrm");

    /**
     * The guest keeps time with kvmclock on every KVM host, not the TSC its kernel would otherwise prefer:
     * kvmclock is the clock a restore sets back (KVM_SET_CLOCK to the snapshot's value), so a VM restored
     * from a template goes on from the template's moment, whatever the TSC did meanwhile. With the TSC, a
     * restored guest's clock jumped by the template's age, and its kernel caught up that gap one second at
     * a time (timekeeping_advance, second_overflow: 19,058 calls for a template made 5 h 20 min earlier,
     * 2.0 s of emulated kernel code on a kvm-pvm host, before the init read its configuration); kvm-pvm
     * cannot offset the TSC at all, and on other hosts the TSC's rate may differ from the template host's.
     * The vDSO reads kvmclock without a system call (10,000 clock_gettime calls: 0.26 ms, 0.25 ms with the TSC).
     */
    static final List<String> KERNEL_ARGS = List.of("clocksource=kvm-clock");

    private final Kvm kvm;

    KvmHypervisor(Kvm kvm) {
        this.kvm = kvm;
        Posix.ignoreSignal(KvmVcpu.KICK_SIGNAL);
    }

    public static KvmHypervisor open() {
        return new KvmHypervisor(Kvm.open());
    }

    @Override
    public String name() {
        return "kvm";
    }

    @Override
    public HostCapabilities capabilities() {
        String kind = kvm.pvm() ? "kvm-pvm (guest kernel code emulated, no hardware virtualisation)"
                : kvm.hardwareVirtualization() ? "hardware virtualisation" : "no vmx/svm flag seen";
        return new HostCapabilities("KVM API " + Kvm.API_VERSION + ", " + kind, kvm.hardwareVirtualization(),
                kvm.maxVcpus());
    }

    @Override
    public HypervisorVm createVm(int vcpuCount) {
        if (vcpuCount > kvm.maxVcpus()) {
            throw new VmConfigException("this host's KVM allows at most " + kvm.maxVcpus() + " vCPUs per VM");
        }
        return new KvmVm(kvm, vcpuCount);
    }

    @Override
    public List<String> guestKernelArgs() {
        if (!kvm.pvm()) {
            return KERNEL_ARGS;
        }
        List<String> args = new ArrayList<>(KERNEL_ARGS);
        args.addAll(PVM_KERNEL_ARGS);
        return List.copyOf(args);
    }

    @Override
    public boolean supportsSnapshots() {
        return true;
    }

    @Override
    public String hostCpuSignature() {
        return kvm.cpuSignature();
    }

    @Override
    public void close() {
        kvm.close();
    }
}
