package org.krun.hv.kvm.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;

/**
 * The CPUID KVM supports on this host (KVM_GET_SUPPORTED_CPUID), and the per-vCPU table krun derives
 * from it: APIC ids and a topology of one thread per core, all cores in one package.
 */
final class CpuidTemplate {

    static final int KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

    private static final int LEAF_FEATURES = 0x1;
    private static final int LEAF_CACHE = 0x4;
    private static final int LEAF_PMU = 0xa;
    private static final int LEAF_TOPOLOGY = 0xb;
    private static final int LEAF_TOPOLOGY_V2 = 0x1f;
    private static final int LEAF_KVM_FEATURES = 0x40000001;

    private static final int ECX_HYPERVISOR = 1 << 31;
    private static final int ECX_TSC_DEADLINE = 1 << 24;
    private static final int EDX_HTT = 1 << 28;

    /**
     * KVM paravirtual features (asm/kvm_para.h) that make the guest issue hypercalls or rely on async
     * page faults; kvm-pvm hangs on hypercalls (KVM-HOST.md), so these are withheld there.
     */
    static final int PVM_WITHHELD_KVM_FEATURES = (1 << 4) /* ASYNC_PF */ | (1 << 7) /* PV_UNHALT */
            | (1 << 10) /* ASYNC_PF_VMEXIT */ | (1 << 11) /* PV_SEND_IPI */ | (1 << 12) /* POLL_CONTROL */
            | (1 << 13) /* PV_SCHED_YIELD */ | (1 << 14) /* ASYNC_PF_INT */ | (1 << 16) /* HC_MAP_GPA_RANGE */
            | (1 << 17) /* MIGRATION_CONTROL */;

    private final List<CpuidEntry> entries;

    CpuidTemplate(List<CpuidEntry> entries) {
        this.entries = List.copyOf(entries);
    }

    static CpuidTemplate fromKvm(int kvmFd) {
        int capacity = 128;
        while (true) {
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment buf = arena.allocate(KvmStructs.CPUID2.byteSize() + capacity * KvmStructs.CPUID_ENTRY2.byteSize());
                buf.set(JAVA_INT, 0, capacity);
                int r = Posix.ioctl(kvmFd, KvmIoctls.KVM_GET_SUPPORTED_CPUID, buf);
                if (r == -Errno.E2BIG && capacity < 4096) {
                    capacity *= 2;
                    continue;
                }
                if (r < 0) {
                    throw new PosixException("KVM_GET_SUPPORTED_CPUID", -r);
                }
                return new CpuidTemplate(read(buf));
            }
        }
    }

    static List<CpuidEntry> read(MemorySegment cpuid2) {
        int n = cpuid2.get(JAVA_INT, 0);
        List<CpuidEntry> out = new ArrayList<>(n);
        long base = KvmStructs.CPUID2.byteSize();
        long size = KvmStructs.CPUID_ENTRY2.byteSize();
        for (int i = 0; i < n; i++) {
            long e = base + i * size;
            out.add(new CpuidEntry(cpuid2.get(JAVA_INT, e), cpuid2.get(JAVA_INT, e + 4), cpuid2.get(JAVA_INT, e + 8),
                    cpuid2.get(JAVA_INT, e + 12), cpuid2.get(JAVA_INT, e + 16), cpuid2.get(JAVA_INT, e + 20),
                    cpuid2.get(JAVA_INT, e + 24)));
        }
        return out;
    }

    /** Writes {@code entries} as a struct kvm_cpuid2 into a new segment of {@code arena}. */
    static MemorySegment write(Arena arena, List<CpuidEntry> entries) {
        long size = KvmStructs.CPUID_ENTRY2.byteSize();
        MemorySegment buf = arena.allocate(KvmStructs.CPUID2.byteSize() + entries.size() * size);
        buf.set(JAVA_INT, 0, entries.size());
        long base = KvmStructs.CPUID2.byteSize();
        for (int i = 0; i < entries.size(); i++) {
            CpuidEntry c = entries.get(i);
            long e = base + i * size;
            buf.set(JAVA_INT, e, c.function());
            buf.set(JAVA_INT, e + 4, c.index());
            buf.set(JAVA_INT, e + 8, c.flags());
            buf.set(JAVA_INT, e + 12, c.eax());
            buf.set(JAVA_INT, e + 16, c.ebx());
            buf.set(JAVA_INT, e + 20, c.ecx());
            buf.set(JAVA_INT, e + 24, c.edx());
        }
        return buf;
    }

    List<CpuidEntry> entries() {
        return entries;
    }

    /**
     * The table for vCPU {@code cpu} of {@code count}: its APIC id in leaves 1, 0xb and 0x1f, the number of
     * cores in leaves 1, 4, 0xb and 0x1f, the hypervisor bit set, no PMU, and on kvm-pvm hosts no
     * hypercall-based paravirtual features.
     */
    List<CpuidEntry> forVcpu(int cpu, int count, boolean pvm, boolean tscDeadline) {
        int coreBits = 32 - Integer.numberOfLeadingZeros(Math.max(count - 1, 0));
        List<CpuidEntry> out = new ArrayList<>(entries.size());
        for (CpuidEntry e : entries) {
            switch (e.function()) {
                case LEAF_FEATURES -> {
                    int ebx = (e.ebx() & 0xff) | (cpu << 24) | (count << 16) | (8 << 8); // CLFLUSH line: 8 x 8 bytes
                    int ecx = e.ecx() | ECX_HYPERVISOR;
                    ecx = tscDeadline ? ecx | ECX_TSC_DEADLINE : ecx & ~ECX_TSC_DEADLINE;
                    int edx = count > 1 ? e.edx() | EDX_HTT : e.edx() & ~EDX_HTT;
                    out.add(e.withRegs(e.eax(), ebx, ecx, edx));
                }
                case LEAF_CACHE -> {
                    if ((e.eax() & 0x1f) == 0) {
                        out.add(e); // no more caches
                        break;
                    }
                    int level = (e.eax() >>> 5) & 0x7;
                    int sharing = level >= 3 ? count - 1 : 0; // L3 shared by all cores, L1/L2 per core
                    int eax = (e.eax() & 0x3fff) | (sharing << 14) | ((count - 1) << 26);
                    out.add(e.withRegs(eax, e.ebx(), e.ecx(), e.edx()));
                }
                case LEAF_PMU -> out.add(e.withRegs(0, 0, 0, 0));
                case LEAF_TOPOLOGY, LEAF_TOPOLOGY_V2 -> {
                    int eax;
                    int ebx;
                    int ecx;
                    switch (e.index()) {
                        case 0 -> { // SMT level: one thread per core
                            eax = 0;
                            ebx = 1;
                            ecx = (1 << 8);
                        }
                        case 1 -> { // core level
                            eax = coreBits;
                            ebx = count;
                            ecx = 1 | (2 << 8);
                        }
                        default -> {
                            eax = 0;
                            ebx = 0;
                            ecx = e.index();
                        }
                    }
                    out.add(e.withRegs(eax, ebx, ecx, cpu));
                }
                case LEAF_KVM_FEATURES -> out.add(pvm ? e.withRegs(e.eax() & ~PVM_WITHHELD_KVM_FEATURES, e.ebx(), e.ecx(), e.edx()) : e);
                default -> out.add(e);
            }
        }
        return out;
    }
}
