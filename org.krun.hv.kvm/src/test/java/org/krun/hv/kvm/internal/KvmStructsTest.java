package org.krun.hv.kvm.internal;

import static java.lang.foreign.MemoryLayout.PathElement.groupElement;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.lang.foreign.StructLayout;

import org.junit.jupiter.api.Test;

/** Struct sizes and key offsets pinned to sizeof/offsetof from linux/kvm.h on x86_64. */
class KvmStructsTest {

    private static long offset(StructLayout layout, String field) {
        return layout.byteOffset(groupElement(field));
    }

    @Test
    void structSizesMatchLinuxKvmH() {
        assertEquals(32, KvmStructs.USERSPACE_MEMORY_REGION.byteSize());
        assertEquals(144, KvmStructs.REGS.byteSize());
        assertEquals(24, KvmStructs.SEGMENT.byteSize());
        assertEquals(16, KvmStructs.DTABLE.byteSize());
        assertEquals(312, KvmStructs.SREGS.byteSize());
        assertEquals(416, KvmStructs.FPU.byteSize());
        assertEquals(8, KvmStructs.MSRS.byteSize());
        assertEquals(16, KvmStructs.MSR_ENTRY.byteSize());
        assertEquals(8, KvmStructs.CPUID2.byteSize());
        assertEquals(40, KvmStructs.CPUID_ENTRY2.byteSize());
        assertEquals(1024, KvmStructs.LAPIC_STATE.byteSize());
        assertEquals(64, KvmStructs.PIT_CONFIG.byteSize());
        assertEquals(8, KvmStructs.IRQ_LEVEL.byteSize());
        assertEquals(32, KvmStructs.IRQFD.byteSize());
        assertEquals(64, KvmStructs.IOEVENTFD.byteSize());
    }

    @Test
    void fieldOffsetsMatchLinuxKvmH() {
        assertEquals(8, offset(KvmStructs.USERSPACE_MEMORY_REGION, "guest_phys_addr"));
        assertEquals(24, offset(KvmStructs.USERSPACE_MEMORY_REGION, "userspace_addr"));
        assertEquals(12, offset(KvmStructs.SEGMENT, "selector"));
        assertEquals(14, offset(KvmStructs.SEGMENT, "type"));
        assertEquals(22, offset(KvmStructs.SEGMENT, "unusable"));
        assertEquals(192, offset(KvmStructs.SREGS, "gdt"));
        assertEquals(224, offset(KvmStructs.SREGS, "cr0"));
        assertEquals(272, offset(KvmStructs.SREGS, "apic_base"));
        assertEquals(136, offset(KvmStructs.FPU, "last_ip"));
        assertEquals(152, offset(KvmStructs.FPU, "xmm"));
        assertEquals(408, offset(KvmStructs.FPU, "mxcsr"));
        assertEquals(16, offset(KvmStructs.IOEVENTFD, "len"));
        assertEquals(20, offset(KvmStructs.IOEVENTFD, "fd"));
        assertEquals(24, offset(KvmStructs.IOEVENTFD, "flags"));
        assertEquals(8, offset(KvmStructs.IRQFD, "flags"));
        assertEquals(12, offset(KvmStructs.IRQFD, "resamplefd"));
        assertEquals(12, offset(KvmStructs.CPUID_ENTRY2, "eax"));
        assertEquals(24, offset(KvmStructs.CPUID_ENTRY2, "edx"));
    }
}
