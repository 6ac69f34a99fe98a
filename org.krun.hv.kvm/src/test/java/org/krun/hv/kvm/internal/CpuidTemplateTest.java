package org.krun.hv.kvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import org.junit.jupiter.api.Test;

/** {@link CpuidTemplate#forVcpu} on a synthetic KVM_GET_SUPPORTED_CPUID table. */
class CpuidTemplateTest {

    private static final int SIGNIFICANT = CpuidTemplate.KVM_CPUID_FLAG_SIGNIFCANT_INDEX;
    private static final int ECX_HYPERVISOR = 1 << 31;
    private static final int ECX_TSC_DEADLINE = 1 << 24;
    private static final int EDX_HTT = 1 << 28;

    /** Leaf 1 EBX as the host reports it: initial APIC id 0xaa, 0xbb logical CPUs, CLFLUSH 8, brand 0xdd. */
    private static final int HOST_LEAF1_EBX = 0xaabb08dd;

    private static final CpuidTemplate HOST = new CpuidTemplate(List.of(
            new CpuidEntry(0x0, 0, 0, 0x1f, 0x756e6547, 0x6c65746e, 0x49656e69),
            new CpuidEntry(0x1, 0, 0, 0x000906ea, HOST_LEAF1_EBX, 0x7ffafbff, 0x1fabfbff),
            new CpuidEntry(0x4, 0, SIGNIFICANT, 0x1c004121, 0x01c0003f, 0x3f, 0), // L1d
            new CpuidEntry(0x4, 1, SIGNIFICANT, 0x1c004143, 0x03c0003f, 0x3ff, 0), // L2
            new CpuidEntry(0x4, 2, SIGNIFICANT, 0x1c03c163, 0x03c0003f, 0x2fff, 6), // L3
            new CpuidEntry(0x4, 3, SIGNIFICANT, 0, 0, 0, 0), // no more caches
            new CpuidEntry(0xa, 0, 0, 0x07300404, 0, 0, 0x603),
            new CpuidEntry(0xb, 0, SIGNIFICANT, 1, 2, 0x100, 0xaa),
            new CpuidEntry(0xb, 1, SIGNIFICANT, 4, 12, 0x201, 0xaa),
            new CpuidEntry(0xb, 2, SIGNIFICANT, 0, 0, 2, 0xaa),
            new CpuidEntry(0x1f, 0, SIGNIFICANT, 1, 2, 0x100, 0xaa),
            new CpuidEntry(0x1f, 1, SIGNIFICANT, 4, 12, 0x201, 0xaa),
            new CpuidEntry(0x40000000, 0, 0, 0x40000001, 0x4b4d564b, 0x564b4d56, 0x4d),
            new CpuidEntry(0x40000001, 0, 0, 0x01ffffff, 0, 0, 0),
            new CpuidEntry(0x80000001, 0, 0, 0, 0, 0x121, 0x2c100800)));

    private static CpuidEntry leaf(List<CpuidEntry> table, int function, int index) {
        return table.stream().filter(e -> e.function() == function && e.index() == index).findFirst().orElseThrow();
    }

    @Test
    void leaf1CarriesApicIdAndLogicalCount() {
        List<CpuidEntry> t = HOST.forVcpu(5, 6, false, false);
        int ebx = leaf(t, 1, 0).ebx();

        assertEquals(5, ebx >>> 24);
        assertEquals(6, (ebx >>> 16) & 0xff);
        assertEquals(8, (ebx >>> 8) & 0xff); // CLFLUSH line size in 8-byte units
        assertEquals(0xdd, ebx & 0xff); // brand index kept
    }

    @Test
    void leaf1SetsHypervisorBit() {
        int ecx = leaf(HOST.forVcpu(0, 1, false, false), 1, 0).ecx();

        assertNotEquals(0, ecx & ECX_HYPERVISOR);
        assertEquals(0x7ffafbff & ~ECX_TSC_DEADLINE, ecx & ~ECX_HYPERVISOR); // other features untouched
    }

    @Test
    void leaf1TscDeadlineFollowsTheHost() {
        assertNotEquals(0, leaf(HOST.forVcpu(0, 1, false, true), 1, 0).ecx() & ECX_TSC_DEADLINE);
        assertEquals(0, leaf(HOST.forVcpu(0, 1, false, false), 1, 0).ecx() & ECX_TSC_DEADLINE);
    }

    @Test
    void leaf1HttOnlyWithMoreThanOneCpu() {
        assertEquals(0, leaf(HOST.forVcpu(0, 1, false, false), 1, 0).edx() & EDX_HTT);
        assertNotEquals(0, leaf(HOST.forVcpu(0, 2, false, false), 1, 0).edx() & EDX_HTT);
        assertEquals(0x1fabfbff & ~EDX_HTT, leaf(HOST.forVcpu(0, 1, false, false), 1, 0).edx());
    }

    @Test
    void leafAIsZeroed() {
        CpuidEntry pmu = leaf(HOST.forVcpu(0, 4, false, false), 0xa, 0);

        assertEquals(new CpuidEntry(0xa, 0, 0, 0, 0, 0, 0), pmu);
    }

    @Test
    void leafBCarriesApicIdInEveryLevel() {
        List<CpuidEntry> t = HOST.forVcpu(3, 4, false, false);
        for (int level = 0; level < 3; level++) {
            assertEquals(3, leaf(t, 0xb, level).edx(), "subleaf " + level);
        }
        assertEquals(3, leaf(t, 0x1f, 0).edx());
        assertEquals(3, leaf(t, 0x1f, 1).edx());
    }

    @Test
    void leafBSmtLevelHasOneThreadPerCore() {
        CpuidEntry smt = leaf(HOST.forVcpu(1, 4, false, false), 0xb, 0);

        assertEquals(0, smt.eax() & 0x1f);
        assertEquals(1, smt.ebx() & 0xffff);
        assertEquals(1, (smt.ecx() >>> 8) & 0xff); // level type SMT
        assertEquals(0, smt.ecx() & 0xff);
    }

    @Test
    void leafBCoreLevelShiftCoversTheCpuCount() {
        int[][] countAndShift = {{1, 0}, {2, 1}, {3, 2}, {4, 2}, {5, 3}, {8, 3}, {9, 4}, {64, 6}};
        for (int[] cs : countAndShift) {
            CpuidEntry core = leaf(HOST.forVcpu(0, cs[0], false, false), 0xb, 1);
            assertEquals(cs[1], core.eax() & 0x1f, "shift for " + cs[0] + " cpus");
            assertEquals(cs[0], core.ebx() & 0xffff, "logical processors for " + cs[0] + " cpus");
            assertEquals(2, (core.ecx() >>> 8) & 0xff); // level type core
            assertEquals(1, core.ecx() & 0xff);
        }
    }

    @Test
    void leafBLevelsPastCoreAreInvalid() {
        CpuidEntry past = leaf(HOST.forVcpu(0, 4, false, false), 0xb, 2);

        assertEquals(0, past.eax());
        assertEquals(0, past.ebx());
        assertEquals(2, past.ecx()); // level number kept, type 0 (invalid)
    }

    @Test
    void leaf4SharesOnlyTheLastLevelCacheAcrossCores() {
        List<CpuidEntry> t = HOST.forVcpu(0, 4, false, false);
        CpuidEntry l1 = leaf(t, 4, 0);
        CpuidEntry l3 = leaf(t, 4, 2);

        assertEquals(0, (l1.eax() >>> 14) & 0xfff);
        assertEquals(3, (l3.eax() >>> 14) & 0xfff);
        assertEquals(3, l1.eax() >>> 26); // cores per package - 1
        assertEquals(3, l3.eax() >>> 26);
        assertEquals(0x121, l1.eax() & 0x3fff); // type, level, self-initializing kept
        assertEquals(new CpuidEntry(4, 3, SIGNIFICANT, 0, 0, 0, 0), leaf(t, 4, 3));
    }

    @Test
    void kvmFeaturesLoseHypercallFeaturesOnlyOnPvm() {
        int normal = leaf(HOST.forVcpu(0, 2, false, false), 0x40000001, 0).eax();
        int pvm = leaf(HOST.forVcpu(0, 2, true, false), 0x40000001, 0).eax();

        assertEquals(0x01ffffff, normal);
        assertEquals(0x01ffffff & ~CpuidTemplate.PVM_WITHHELD_KVM_FEATURES, pvm);
        assertNotEquals(normal, pvm);
    }

    @Test
    void otherLeavesPassThroughUnchangedAndInOrder() {
        List<CpuidEntry> t = HOST.forVcpu(2, 4, true, true);

        assertEquals(HOST.entries().size(), t.size());
        for (int i = 0; i < t.size(); i++) {
            assertEquals(HOST.entries().get(i).function(), t.get(i).function());
            assertEquals(HOST.entries().get(i).index(), t.get(i).index());
            assertEquals(HOST.entries().get(i).flags(), t.get(i).flags());
        }
        assertEquals(HOST.entries().get(0), t.get(0));
        assertEquals(leaf(HOST.entries(), 0x40000000, 0), leaf(t, 0x40000000, 0));
        assertEquals(leaf(HOST.entries(), 0x80000001, 0), leaf(t, 0x80000001, 0));
    }

    @Test
    void tableRoundTripsThroughStructKvmCpuid2() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment s = CpuidTemplate.write(arena, HOST.entries());

            assertEquals(8 + 40L * HOST.entries().size(), s.byteSize());
            assertEquals(HOST.entries(), CpuidTemplate.read(s));
        }
    }

    @Test
    void apicIdsDifferPerVcpu() {
        for (int cpu = 0; cpu < 8; cpu++) {
            List<CpuidEntry> t = HOST.forVcpu(cpu, 8, false, false);
            assertEquals(cpu, leaf(t, 1, 0).ebx() >>> 24);
            assertEquals(cpu, leaf(t, 0xb, 1).edx());
        }
    }
}
