package org.krun.hv.kvm.internal;

import java.lang.System.Logger.Level;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.krun.spi.hypervisor.Vcpu;
import org.krun.spi.hypervisor.VcpuExit;
import org.krun.spi.hypervisor.X86BootState;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;

/**
 * One KVM vCPU: its fd, its mapped struct kvm_run, and the state krun gives it at creation (CPUID, MSRs,
 * FPU, LAPIC LINT0/LINT1).
 *
 * <p>Kicking: the vCPU thread blocks {@link #KICK_SIGNAL} and KVM_SET_SIGNAL_MASK unblocks it only inside
 * KVM_RUN, with the process-wide disposition set to ignore. A kick sent at any moment is then either
 * pending when KVM_RUN starts or interrupts it (KVM_RUN returns EINTR); never lost, never delivered to a
 * handler.
 */
final class KvmVcpu implements Vcpu {
    private static final System.Logger LOG = System.getLogger(KvmVcpu.class.getName());

    /** A real-time signal, unused by the JVM and glibc. */
    static final int KICK_SIGNAL = 40;
    static final long KICK_SIGSET = Posix.sigset(KICK_SIGNAL);

    // MSR indices (asm/msr-index.h)
    private static final int MSR_IA32_TSC = 0x10;
    private static final int MSR_IA32_SYSENTER_CS = 0x174;
    private static final int MSR_IA32_SYSENTER_ESP = 0x175;
    private static final int MSR_IA32_SYSENTER_EIP = 0x176;
    private static final int MSR_IA32_MISC_ENABLE = 0x1a0;
    private static final int MSR_MTRR_DEF_TYPE = 0x2ff;
    private static final int MSR_STAR = 0xc0000081;
    private static final int MSR_LSTAR = 0xc0000082;
    private static final int MSR_CSTAR = 0xc0000083;
    private static final int MSR_SYSCALL_MASK = 0xc0000084;
    private static final int MSR_KERNEL_GS_BASE = 0xc0000102;

    private static final long MISC_ENABLE_FAST_STRING = 1;
    /** MTRRs enabled, default type write-back. */
    private static final long MTRR_DEF_TYPE_WB_ENABLED = (1 << 11) | 6;

    private static final int APIC_LVT_LINT0 = 0x350;
    private static final int APIC_LVT_LINT1 = 0x360;
    private static final int APIC_MODE_NMI = 0x4;
    private static final int APIC_MODE_EXTINT = 0x7;

    private final Kvm kvm;
    private final int index;
    private final int fd;
    private final KvmRun run;
    private final MemorySegment runMapping;
    private volatile int tid;
    private volatile boolean kicked;
    private boolean closed;

    /** Remaining elements of a string I/O exit (rep ins/outs) not yet handed to the core. */
    private int ioIndex;
    private int ioCount;
    /** What the pending read exit needs: 0 none, 1 I/O in at ioDataOffset, 2 MMIO read. */
    private int pendingRead;
    private long pendingReadOffset;
    /**
     * The last KVM_RUN ended in an I/O or MMIO exit: KVM finishes the instruction (stores an IN's value,
     * advances RIP) only on the next KVM_RUN, so saving state first needs that entry (KVM API: KVM_RUN,
     * "the corresponding operations are complete only after userspace has re-entered the kernel").
     */
    private boolean exitNeedsCompletion;

    KvmVcpu(Kvm kvm, KvmVm vm, int index, int count) {
        this.kvm = kvm;
        this.index = index;
        this.fd = Posix.check("KVM_CREATE_VCPU", Posix.ioctl(vm.fd(), KvmIoctls.KVM_CREATE_VCPU, index));
        MemorySegment mapping = null;
        try {
            mapping = Posix.mmap("mmap kvm_run", kvm.vcpuMmapSize(), Posix.PROT_READ | Posix.PROT_WRITE,
                    Posix.MAP_SHARED, fd, 0);
            this.runMapping = mapping;
            this.run = new KvmRun(mapping);
            setCpuid(kvm, count);
            setMsrs();
            setFpu();
            setLapicLint();
        } catch (RuntimeException e) {
            if (mapping != null) {
                Posix.munmap(mapping);
            }
            Posix.close(fd);
            throw e;
        }
    }

    @Override
    public int index() {
        return index;
    }

    private void setCpuid(Kvm kvm, int count) {
        boolean tscDeadline = kvm.checkExtension(KvmIoctls.KVM_CAP_TSC_DEADLINE_TIMER) > 0;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment table = CpuidTemplate.write(a, kvm.cpuid().forVcpu(index, count, kvm.pvm(), tscDeadline));
            Posix.check("KVM_SET_CPUID2", Posix.ioctl(fd, KvmIoctls.KVM_SET_CPUID2, table));
        }
    }

    private void setMsrs() {
        long[][] msrs = {
            {MSR_IA32_SYSENTER_CS, 0}, {MSR_IA32_SYSENTER_ESP, 0}, {MSR_IA32_SYSENTER_EIP, 0},
            {MSR_STAR, 0}, {MSR_CSTAR, 0}, {MSR_KERNEL_GS_BASE, 0}, {MSR_SYSCALL_MASK, 0}, {MSR_LSTAR, 0},
            {MSR_IA32_TSC, 0}, {MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING},
            {MSR_MTRR_DEF_TYPE, MTRR_DEF_TYPE_WB_ENABLED},
        };
        try (Arena a = Arena.ofConfined()) {
            long entry = KvmStructs.MSR_ENTRY.byteSize();
            MemorySegment s = a.allocate(KvmStructs.MSRS.byteSize() + msrs.length * entry);
            s.set(JAVA_INT, 0, msrs.length);
            for (int i = 0; i < msrs.length; i++) {
                long e = KvmStructs.MSRS.byteSize() + i * entry;
                s.set(JAVA_INT, e, (int) msrs[i][0]);
                s.set(JAVA_LONG, e + 8, msrs[i][1]);
            }
            int set = Posix.check("KVM_SET_MSRS", Posix.ioctl(fd, KvmIoctls.KVM_SET_MSRS, s));
            if (set != msrs.length) {
                // KVM stops at the first MSR it refuses; the rest are optional for booting Linux.
                LOG.log(Level.DEBUG, () -> "vcpu " + index + ": KVM accepted " + set + " of " + msrs.length + " MSRs (refused 0x" + Long.toHexString(msrs[set][0]) + ")");
            }
        }
    }

    private void setFpu() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(KvmStructs.FPU);
            s.set(JAVA_SHORT, 128, (short) 0x37f); // fcw: default x87 control word
            s.set(JAVA_INT, 408, 0x1f80); // mxcsr: all SSE exceptions masked
            Posix.check("KVM_SET_FPU", Posix.ioctl(fd, KvmIoctls.KVM_SET_FPU, s));
        }
    }

    /** LINT0 as ExtINT (the PIC), LINT1 as NMI, as a PC's BIOS leaves them. */
    private void setLapicLint() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(KvmStructs.LAPIC_STATE);
            Posix.check("KVM_GET_LAPIC", Posix.ioctl(fd, KvmIoctls.KVM_GET_LAPIC, s));
            setLvtMode(s, APIC_LVT_LINT0, APIC_MODE_EXTINT);
            setLvtMode(s, APIC_LVT_LINT1, APIC_MODE_NMI);
            Posix.check("KVM_SET_LAPIC", Posix.ioctl(fd, KvmIoctls.KVM_SET_LAPIC, s));
        }
    }

    private static void setLvtMode(MemorySegment lapic, int reg, int mode) {
        int v = lapic.get(JAVA_INT, reg);
        lapic.set(JAVA_INT, reg, (v & ~0x700) | (mode << 8));
    }

    @Override
    public void setBootState(X86BootState b) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment sregs = a.allocate(KvmStructs.SREGS);
            Posix.check("KVM_GET_SREGS", Posix.ioctl(fd, KvmIoctls.KVM_GET_SREGS, sregs));
            long seg = KvmStructs.SEGMENT.byteSize();
            // cs ds es fs gs ss tr ldt
            writeSegment(sregs, 0, b.code());
            for (int i = 1; i <= 5; i++) {
                writeSegment(sregs, i * seg, b.data());
            }
            writeSegment(sregs, 6 * seg, b.tss());
            long gdt = 8 * seg;
            sregs.set(JAVA_LONG, gdt, b.gdt().base());
            sregs.set(JAVA_SHORT, gdt + 8, (short) b.gdt().limit());
            long idt = gdt + KvmStructs.DTABLE.byteSize();
            sregs.set(JAVA_LONG, idt, b.idt().base());
            sregs.set(JAVA_SHORT, idt + 8, (short) b.idt().limit());
            long cr = idt + KvmStructs.DTABLE.byteSize();
            sregs.set(JAVA_LONG, cr, b.cr0());
            sregs.set(JAVA_LONG, cr + 16, b.cr3());
            sregs.set(JAVA_LONG, cr + 24, b.cr4());
            sregs.set(JAVA_LONG, cr + 40, b.efer());
            Posix.check("KVM_SET_SREGS", Posix.ioctl(fd, KvmIoctls.KVM_SET_SREGS, sregs));

            MemorySegment regs = a.allocate(KvmStructs.REGS);
            // rax rbx rcx rdx rsi rdi rsp rbp r8..r15 rip rflags
            regs.set(JAVA_LONG, 4 * 8, b.rsi());
            regs.set(JAVA_LONG, 6 * 8, b.rsp());
            regs.set(JAVA_LONG, 7 * 8, b.rbp());
            regs.set(JAVA_LONG, 16 * 8, b.rip());
            regs.set(JAVA_LONG, 17 * 8, b.rflags());
            Posix.check("KVM_SET_REGS", Posix.ioctl(fd, KvmIoctls.KVM_SET_REGS, regs));
        }
    }

    private static void writeSegment(MemorySegment sregs, long at, X86BootState.Segment s) {
        sregs.set(JAVA_LONG, at, s.base());
        sregs.set(JAVA_INT, at + 8, s.limit());
        sregs.set(JAVA_SHORT, at + 12, (short) s.selector());
        sregs.set(JAVA_BYTE, at + 14, (byte) s.type());
        sregs.set(JAVA_BYTE, at + 15, (byte) (s.present() ? 1 : 0));
        sregs.set(JAVA_BYTE, at + 16, (byte) s.dpl());
        sregs.set(JAVA_BYTE, at + 17, (byte) (s.db() ? 1 : 0));
        sregs.set(JAVA_BYTE, at + 18, (byte) (s.s() ? 1 : 0));
        sregs.set(JAVA_BYTE, at + 19, (byte) (s.l() ? 1 : 0));
        sregs.set(JAVA_BYTE, at + 20, (byte) (s.g() ? 1 : 0));
        sregs.set(JAVA_BYTE, at + 21, (byte) 0);
        sregs.set(JAVA_BYTE, at + 22, (byte) 0);
    }

    @Override
    public void attachThread() {
        tid = Posix.gettid();
        Posix.threadSignalMask(Posix.SIG_BLOCK, KICK_SIGSET);
        try (Arena a = Arena.ofConfined()) {
            // Nothing blocked inside KVM_RUN (the kick signal included).
            MemorySegment mask = a.allocate(KvmStructs.SIGNAL_MASK);
            mask.set(JAVA_INT, 0, 8);
            Posix.check("KVM_SET_SIGNAL_MASK", Posix.ioctl(fd, KvmIoctls.KVM_SET_SIGNAL_MASK, mask));
        }
    }

    @Override
    public void kick() {
        kicked = true;
        int t = tid;
        if (t != 0) {
            Posix.tgkill(t, KICK_SIGNAL);
        }
    }

    @Override
    public VcpuExit run() {
        if (ioIndex < ioCount) {
            return nextStringIo();
        }
        if (kicked) {
            kicked = false;
            Posix.takePendingSignal(KICK_SIGSET);
            return VcpuExit.INTERRUPTED;
        }
        int r = Posix.ioctl(fd, KvmIoctls.KVM_RUN, 0L);
        exitNeedsCompletion = false;
        if (r < 0) {
            if (r == -Errno.EINTR || r == -Errno.EAGAIN) {
                kicked = false;
                Posix.takePendingSignal(KICK_SIGSET);
                return VcpuExit.INTERRUPTED;
            }
            throw new PosixException("KVM_RUN", -r);
        }
        int reason = run.exitReason();
        return switch (reason) {
            case KvmRun.EXIT_IO -> {
                exitNeedsCompletion = true;
                ioIndex = 0;
                ioCount = Math.max(run.ioCount(), 1);
                yield nextStringIo();
            }
            case KvmRun.EXIT_MMIO -> {
                exitNeedsCompletion = true;
                long address = run.mmioAddress();
                int len = run.mmioLength();
                if (run.mmioIsWrite()) {
                    yield new VcpuExit.MmioWrite(address, len, run.mmioData());
                }
                pendingRead = 2;
                yield new VcpuExit.MmioRead(address, len);
            }
            case KvmRun.EXIT_HLT -> VcpuExit.HALTED;
            case KvmRun.EXIT_INTR -> VcpuExit.INTERRUPTED;
            case KvmRun.EXIT_IRQ_WINDOW_OPEN -> VcpuExit.INTERRUPTED;
            case KvmRun.EXIT_SHUTDOWN -> new VcpuExit.Shutdown("triple fault");
            case KvmRun.EXIT_SYSTEM_EVENT -> switch (run.systemEventType()) {
                case KvmRun.SYSTEM_EVENT_RESET -> new VcpuExit.Shutdown("reset");
                case KvmRun.SYSTEM_EVENT_SHUTDOWN -> new VcpuExit.Shutdown("power off");
                default -> new VcpuExit.Failed("system event " + run.systemEventType());
            };
            case KvmRun.EXIT_INTERNAL_ERROR -> new VcpuExit.Failed(
                    "KVM internal error, suberror " + run.internalSuberror() + " [" + run.internalData() + "]");
            case KvmRun.EXIT_FAIL_ENTRY -> new VcpuExit.Failed(
                    "VM entry failed, hardware reason 0x" + Long.toHexString(run.failEntryReason()));
            default -> new VcpuExit.Failed("unexpected KVM exit reason " + reason);
        };
    }

    private VcpuExit nextStringIo() {
        int size = run.ioSize();
        long offset = run.ioDataOffset() + (long) ioIndex * size;
        ioIndex++;
        if (run.ioDirection() == KvmRun.IO_DIRECTION_OUT) {
            return new VcpuExit.IoOut(run.ioPort(), size, run.readData(offset, size));
        }
        pendingRead = 1;
        pendingReadOffset = offset;
        return new VcpuExit.IoIn(run.ioPort(), size);
    }

    @Override
    public void completeRead(long value) {
        switch (pendingRead) {
            case 1 -> run.writeData(pendingReadOffset, run.ioSize(), value);
            case 2 -> run.setMmioData(value);
            default -> throw new IllegalStateException("no read exit pending on vcpu " + index);
        }
        pendingRead = 0;
    }

    // ---- snapshots: sections of the vCPU state blob (KvmStateBlob), one KVM structure each

    static final int TAG_INDEX = 1;
    static final int TAG_MP_STATE = 2;
    static final int TAG_REGS = 3;
    static final int TAG_SREGS = 4;
    static final int TAG_XSAVE = 5;
    static final int TAG_FPU = 6;
    static final int TAG_XCRS = 7;
    static final int TAG_LAPIC = 8;
    static final int TAG_MSRS = 9;
    static final int TAG_EVENTS = 10;

    /** MSRs worth saving that KVM_GET_MSR_INDEX_LIST may leave out: PAT and the MTRR default type. */
    private static final int[] EXTRA_MSRS = {0x277, MSR_MTRR_DEF_TYPE};
    private static final int MAX_MSRS = 4096;

    /**
     * Saves registers, special registers, FPU/XSAVE and XCRs, MSRs, the local APIC, pending events and
     * the run state. KVM_GET_MP_STATE comes first: it lets the local APIC take INIT/SIPI it has latched,
     * which changes other state (KVM API: KVM_GET_MP_STATE; Firecracker saves in the same order).
     */
    @Override
    public synchronized byte[] saveState() {
        if (ioIndex < ioCount) {
            throw new IllegalStateException("vcpu " + index + " is in the middle of a string I/O exit");
        }
        completePendingExit();
        try (Arena a = Arena.ofConfined()) {
            KvmStateBlob.Writer w = new KvmStateBlob.Writer(KvmStateBlob.VCPU_MAGIC);
            w.put(TAG_INDEX, ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(index).array());
            if (kvm.checkExtension(KvmIoctls.KVM_CAP_MP_STATE) > 0) {
                w.put(TAG_MP_STATE, get(a, "KVM_GET_MP_STATE", KvmIoctls.KVM_GET_MP_STATE, KvmStructs.MP_STATE.byteSize()));
            }
            w.put(TAG_REGS, get(a, "KVM_GET_REGS", KvmIoctls.KVM_GET_REGS, KvmStructs.REGS.byteSize()));
            w.put(TAG_SREGS, get(a, "KVM_GET_SREGS", KvmIoctls.KVM_GET_SREGS, KvmStructs.SREGS.byteSize()));
            int xsave = kvm.xsaveSize();
            MemorySegment fpuState = xsave <= 0 ? null : tryGet(a, "KVM_GET_XSAVE",
                    xsave > KvmStructs.XSAVE.byteSize() ? KvmIoctls.KVM_GET_XSAVE2 : KvmIoctls.KVM_GET_XSAVE, xsave);
            if (fpuState != null) {
                w.put(TAG_XSAVE, fpuState);
            } else {
                w.put(TAG_FPU, get(a, "KVM_GET_FPU", KvmIoctls.KVM_GET_FPU, KvmStructs.FPU.byteSize()));
            }
            if (kvm.checkExtension(KvmIoctls.KVM_CAP_XCRS) > 0) {
                MemorySegment xcrs = tryGet(a, "KVM_GET_XCRS", KvmIoctls.KVM_GET_XCRS, KvmStructs.XCRS.byteSize());
                if (xcrs != null) {
                    w.put(TAG_XCRS, xcrs);
                }
            }
            w.put(TAG_LAPIC, get(a, "KVM_GET_LAPIC", KvmIoctls.KVM_GET_LAPIC, KvmStructs.LAPIC_STATE.byteSize()));
            w.put(TAG_MSRS, getMsrs(a, kvm.savableMsrs(this::readableMsrs)));
            if (kvm.checkExtension(KvmIoctls.KVM_CAP_VCPU_EVENTS) > 0) {
                w.put(TAG_EVENTS, get(a, "KVM_GET_VCPU_EVENTS", KvmIoctls.KVM_GET_VCPU_EVENTS, KvmStructs.VCPU_EVENTS.byteSize()));
            }
            return w.toBytes();
        }
    }

    /**
     * Restores in the order KVM needs: special registers (CR0/CR4/EFER and the APIC base) before the
     * general registers; FPU/XSAVE and XCRs; the local APIC after the APIC base; MSRs after the local APIC
     * (the TSC deadline only sticks once the APIC timer is in TSC-deadline mode); pending events after
     * everything they refer to; the run state last.
     */
    @Override
    public synchronized void restoreState(byte[] state) {
        Map<Integer, byte[]> s = KvmStateBlob.read(state, KvmStateBlob.VCPU_MAGIC, "vCPU");
        int savedIndex = ByteBuffer.wrap(KvmStateBlob.require(s, TAG_INDEX, 4, "vCPU")).order(ByteOrder.LITTLE_ENDIAN).getInt();
        if (savedIndex != index) {
            throw new IllegalArgumentException("vCPU state of vCPU " + savedIndex + " given to vCPU " + index);
        }
        try (Arena a = Arena.ofConfined()) {
            set(a, "KVM_SET_SREGS", KvmIoctls.KVM_SET_SREGS, KvmStateBlob.require(s, TAG_SREGS, KvmStructs.SREGS.byteSize(), "vCPU"));
            set(a, "KVM_SET_REGS", KvmIoctls.KVM_SET_REGS, KvmStateBlob.require(s, TAG_REGS, KvmStructs.REGS.byteSize(), "vCPU"));
            if (s.containsKey(TAG_XSAVE)) {
                int size = kvm.xsaveSize();
                byte[] xsave = s.get(TAG_XSAVE);
                if (xsave.length != size) {
                    throw new IllegalArgumentException("the vCPU's XSAVE area has " + xsave.length + " bytes; this host's has " + size);
                }
                set(a, "KVM_SET_XSAVE", KvmIoctls.KVM_SET_XSAVE, xsave);
            } else {
                set(a, "KVM_SET_FPU", KvmIoctls.KVM_SET_FPU, KvmStateBlob.require(s, TAG_FPU, KvmStructs.FPU.byteSize(), "vCPU"));
            }
            if (s.containsKey(TAG_XCRS)) {
                set(a, "KVM_SET_XCRS", KvmIoctls.KVM_SET_XCRS, KvmStateBlob.require(s, TAG_XCRS, KvmStructs.XCRS.byteSize(), "vCPU"));
            }
            set(a, "KVM_SET_LAPIC", KvmIoctls.KVM_SET_LAPIC, KvmStateBlob.require(s, TAG_LAPIC, KvmStructs.LAPIC_STATE.byteSize(), "vCPU"));
            setMsrs(a, s.get(TAG_MSRS));
            if (s.containsKey(TAG_EVENTS)) {
                set(a, "KVM_SET_VCPU_EVENTS", KvmIoctls.KVM_SET_VCPU_EVENTS,
                        KvmStateBlob.require(s, TAG_EVENTS, KvmStructs.VCPU_EVENTS.byteSize(), "vCPU"));
            }
            if (s.containsKey(TAG_MP_STATE)) {
                set(a, "KVM_SET_MP_STATE", KvmIoctls.KVM_SET_MP_STATE,
                        KvmStateBlob.require(s, TAG_MP_STATE, KvmStructs.MP_STATE.byteSize(), "vCPU"));
            }
        }
    }

    /** Re-enters KVM_RUN with immediate_exit set: KVM completes the pending exit and returns EINTR at once. */
    private void completePendingExit() {
        if (!exitNeedsCompletion) {
            return;
        }
        run.setImmediateExit(true);
        try {
            int r = Posix.ioctl(fd, KvmIoctls.KVM_RUN, 0L);
            if (r < 0 && r != -Errno.EINTR && r != -Errno.EAGAIN) {
                throw new PosixException("KVM_RUN (completing an exit before saving vcpu " + index + ")", -r);
            }
        } finally {
            run.setImmediateExit(false);
        }
        exitNeedsCompletion = false;
    }

    private MemorySegment get(Arena a, String name, long request, long size) {
        MemorySegment s = a.allocate(size, 8);
        Posix.check(name, Posix.ioctl(fd, request, s));
        return s;
    }

    /** An optional part of the state: null (and a debug line) when this host's KVM refuses it. */
    private MemorySegment tryGet(Arena a, String name, long request, long size) {
        MemorySegment s = a.allocate(size, 8);
        int r = Posix.ioctl(fd, request, s);
        if (r < 0) {
            LOG.log(Level.DEBUG, () -> "vcpu " + index + ": " + name + " refused (" + Errno.name(-r) + "); not saved");
            return null;
        }
        return s;
    }

    private void set(Arena a, String name, long request, byte[] data) {
        MemorySegment s = a.allocate(data.length, 8);
        MemorySegment.copy(data, 0, s, JAVA_BYTE, 0, data.length);
        Posix.check(name, Posix.ioctl(fd, request, s));
    }

    /** Of {@code candidates} and {@link #EXTRA_MSRS}, those KVM_GET_MSRS reads on this vCPU, one by one. */
    private int[] readableMsrs(int[] candidates) {
        Set<Integer> all = new LinkedHashSet<>();
        Arrays.stream(candidates).forEach(all::add);
        Arrays.stream(EXTRA_MSRS).forEach(all::add);
        List<Integer> readable = new ArrayList<>();
        try (Arena a = Arena.ofConfined()) {
            MemorySegment one = a.allocate(KvmStructs.MSRS.byteSize() + KvmStructs.MSR_ENTRY.byteSize());
            for (int msr : all) {
                one.set(JAVA_INT, 0, 1);
                one.set(JAVA_INT, 8, msr);
                if (Posix.ioctl(fd, KvmIoctls.KVM_GET_MSRS, one) == 1) {
                    readable.add(msr);
                }
            }
        }
        LOG.log(Level.DEBUG, () -> "KVM saves " + readable.size() + " of " + all.size() + " MSRs");
        return readable.stream().mapToInt(Integer::intValue).limit(MAX_MSRS).toArray();
    }

    /** struct kvm_msrs with the values of {@code msrs}, as saved: nmsrs, pad, then the entries. */
    private MemorySegment getMsrs(Arena a, int[] msrs) {
        long entry = KvmStructs.MSR_ENTRY.byteSize();
        MemorySegment s = a.allocate(KvmStructs.MSRS.byteSize() + msrs.length * entry, 8);
        s.set(JAVA_INT, 0, msrs.length);
        for (int i = 0; i < msrs.length; i++) {
            s.set(JAVA_INT, KvmStructs.MSRS.byteSize() + i * entry, msrs[i]);
        }
        int got = Posix.check("KVM_GET_MSRS", Posix.ioctl(fd, KvmIoctls.KVM_GET_MSRS, s));
        if (got != msrs.length) {
            throw new PosixException("KVM_GET_MSRS (read " + got + " of " + msrs.length + ", stopped at 0x"
                    + Integer.toHexString(msrs[got]) + ")", Errno.EINVAL);
        }
        return s;
    }

    /** KVM_SET_MSRS stops at the first MSR it refuses: report it and go on with the rest. */
    private void setMsrs(Arena a, byte[] saved) {
        long header = KvmStructs.MSRS.byteSize();
        long entry = KvmStructs.MSR_ENTRY.byteSize();
        if (saved == null || saved.length < header) {
            throw new IllegalArgumentException("vCPU state lacks its MSRs");
        }
        int n = ByteBuffer.wrap(saved).order(ByteOrder.LITTLE_ENDIAN).getInt();
        if (n < 0 || n > MAX_MSRS || saved.length != header + n * entry) {
            throw new IllegalArgumentException("vCPU state's MSR section is corrupt (" + n + " MSRs in " + saved.length + " bytes)");
        }
        MemorySegment s = a.allocate(saved.length, 8);
        MemorySegment.copy(saved, 0, s, JAVA_BYTE, 0, saved.length);
        int done = 0;
        while (done < n) {
            MemorySegment rest = a.allocate(header + (n - done) * entry, 8);
            rest.set(JAVA_INT, 0, n - done);
            MemorySegment.copy(s, header + done * entry, rest, header, (n - done) * entry);
            int set = Posix.check("KVM_SET_MSRS", Posix.ioctl(fd, KvmIoctls.KVM_SET_MSRS, rest));
            done += set;
            if (done < n) {
                int refused = s.get(JAVA_INT, header + done * entry);
                LOG.log(Level.WARNING, "vcpu " + index + ": KVM refused to restore MSR 0x" + Integer.toHexString(refused));
                done++;
            }
        }
    }

    /** For tests: the general registers (rax .. rflags). */
    long[] registers() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment regs = a.allocate(KvmStructs.REGS);
            Posix.check("KVM_GET_REGS", Posix.ioctl(fd, KvmIoctls.KVM_GET_REGS, regs));
            return regs.toArray(JAVA_LONG);
        }
    }

    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        Posix.munmap(runMapping);
        Posix.close(fd);
    }
}
