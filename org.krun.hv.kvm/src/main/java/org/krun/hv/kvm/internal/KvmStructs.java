package org.krun.hv.kvm.internal;

import static java.lang.foreign.MemoryLayout.sequenceLayout;
import static java.lang.foreign.MemoryLayout.structLayout;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.StructLayout;

/** Layouts of the linux/kvm.h and asm/kvm.h (x86) structures krun passes to KVM. */
final class KvmStructs {

    /** linux/kvm.h struct kvm_userspace_memory_region. */
    static final StructLayout USERSPACE_MEMORY_REGION = structLayout(
            JAVA_INT.withName("slot"), JAVA_INT.withName("flags"),
            JAVA_LONG.withName("guest_phys_addr"), JAVA_LONG.withName("memory_size"),
            JAVA_LONG.withName("userspace_addr"));

    /** asm/kvm.h struct kvm_regs: rax rbx rcx rdx rsi rdi rsp rbp r8-r15 rip rflags. */
    static final StructLayout REGS = structLayout(sequenceLayout(18, JAVA_LONG).withName("regs"));

    /** asm/kvm.h struct kvm_segment. */
    static final StructLayout SEGMENT = structLayout(
            JAVA_LONG.withName("base"), JAVA_INT.withName("limit"), JAVA_SHORT.withName("selector"),
            JAVA_BYTE.withName("type"), JAVA_BYTE.withName("present"), JAVA_BYTE.withName("dpl"),
            JAVA_BYTE.withName("db"), JAVA_BYTE.withName("s"), JAVA_BYTE.withName("l"),
            JAVA_BYTE.withName("g"), JAVA_BYTE.withName("avl"), JAVA_BYTE.withName("unusable"),
            JAVA_BYTE.withName("padding"));

    /** asm/kvm.h struct kvm_dtable. */
    static final StructLayout DTABLE = structLayout(
            JAVA_LONG.withName("base"), JAVA_SHORT.withName("limit"), sequenceLayout(3, JAVA_SHORT).withName("padding"));

    /** asm/kvm.h struct kvm_sregs. */
    static final StructLayout SREGS = structLayout(
            SEGMENT.withName("cs"), SEGMENT.withName("ds"), SEGMENT.withName("es"), SEGMENT.withName("fs"),
            SEGMENT.withName("gs"), SEGMENT.withName("ss"), SEGMENT.withName("tr"), SEGMENT.withName("ldt"),
            DTABLE.withName("gdt"), DTABLE.withName("idt"),
            JAVA_LONG.withName("cr0"), JAVA_LONG.withName("cr2"), JAVA_LONG.withName("cr3"),
            JAVA_LONG.withName("cr4"), JAVA_LONG.withName("cr8"), JAVA_LONG.withName("efer"),
            JAVA_LONG.withName("apic_base"), sequenceLayout(4, JAVA_LONG).withName("interrupt_bitmap"));

    /** asm/kvm.h struct kvm_fpu. */
    static final StructLayout FPU = structLayout(
            sequenceLayout(128, JAVA_BYTE).withName("fpr"), JAVA_SHORT.withName("fcw"), JAVA_SHORT.withName("fsw"),
            JAVA_BYTE.withName("ftwx"), JAVA_BYTE.withName("pad1"), JAVA_SHORT.withName("last_opcode"),
            JAVA_LONG.withName("last_ip"), JAVA_LONG.withName("last_dp"),
            sequenceLayout(256, JAVA_BYTE).withName("xmm"), JAVA_INT.withName("mxcsr"), JAVA_INT.withName("pad2"));

    /** asm/kvm.h struct kvm_msrs header (entries follow). */
    static final StructLayout MSRS = structLayout(JAVA_INT.withName("nmsrs"), JAVA_INT.withName("pad"));

    /** asm/kvm.h struct kvm_msr_entry. */
    static final StructLayout MSR_ENTRY = structLayout(
            JAVA_INT.withName("index"), JAVA_INT.withName("reserved"), JAVA_LONG.withName("data"));

    /** asm/kvm.h struct kvm_cpuid2 header (entries follow). */
    static final StructLayout CPUID2 = structLayout(JAVA_INT.withName("nent"), JAVA_INT.withName("padding"));

    /** asm/kvm.h struct kvm_cpuid_entry2. */
    static final StructLayout CPUID_ENTRY2 = structLayout(
            JAVA_INT.withName("function"), JAVA_INT.withName("index"), JAVA_INT.withName("flags"),
            JAVA_INT.withName("eax"), JAVA_INT.withName("ebx"), JAVA_INT.withName("ecx"), JAVA_INT.withName("edx"),
            sequenceLayout(3, JAVA_INT).withName("padding"));

    /** asm/kvm.h struct kvm_lapic_state. */
    static final StructLayout LAPIC_STATE = structLayout(sequenceLayout(1024, JAVA_BYTE).withName("regs"));

    /** asm/kvm.h struct kvm_pit_config. */
    static final StructLayout PIT_CONFIG = structLayout(
            JAVA_INT.withName("flags"), sequenceLayout(15, JAVA_INT).withName("pad"));

    /** linux/kvm.h struct kvm_irq_level. */
    static final StructLayout IRQ_LEVEL = structLayout(JAVA_INT.withName("irq"), JAVA_INT.withName("level"));

    /** linux/kvm.h struct kvm_irqfd. */
    static final StructLayout IRQFD = structLayout(
            JAVA_INT.withName("fd"), JAVA_INT.withName("gsi"), JAVA_INT.withName("flags"),
            JAVA_INT.withName("resamplefd"), sequenceLayout(16, JAVA_BYTE).withName("pad"));

    /** linux/kvm.h struct kvm_ioeventfd. */
    static final StructLayout IOEVENTFD = structLayout(
            JAVA_LONG.withName("datamatch"), JAVA_LONG.withName("addr"), JAVA_INT.withName("len"),
            JAVA_INT.withName("fd"), JAVA_INT.withName("flags"), sequenceLayout(36, JAVA_BYTE).withName("pad"));

    /** linux/kvm.h struct kvm_signal_mask with the kernel's 8-byte sigset after len. */
    static final StructLayout SIGNAL_MASK = structLayout(JAVA_INT.withName("len"),
            sequenceLayout(8, JAVA_BYTE).withName("sigset"));

    /** linux/kvm.h struct kvm_msr_list header (u32 indices follow). */
    static final StructLayout MSR_LIST = structLayout(JAVA_INT.withName("nmsrs"));

    /** linux/kvm.h struct kvm_mp_state. */
    static final StructLayout MP_STATE = structLayout(JAVA_INT.withName("mp_state"));

    /** asm/kvm.h struct kvm_xsave (the 4 KiB legacy size; KVM_CAP_XSAVE2 may ask for more). */
    static final StructLayout XSAVE = structLayout(sequenceLayout(1024, JAVA_INT).withName("region"));

    /** asm/kvm.h struct kvm_xcrs: nr_xcrs, flags, 16 x struct kvm_xcr {xcr, reserved, value}, padding. */
    static final StructLayout XCRS = structLayout(JAVA_INT.withName("nr_xcrs"), JAVA_INT.withName("flags"),
            sequenceLayout(16 * 16, JAVA_BYTE).withName("xcrs"), sequenceLayout(16, JAVA_LONG).withName("padding"));

    /** asm/kvm.h struct kvm_vcpu_events (exception, interrupt, nmi, sipi_vector, flags, smi, payload). */
    static final StructLayout VCPU_EVENTS = structLayout(sequenceLayout(64, JAVA_BYTE).withName("events"));

    /** linux/kvm.h struct kvm_irqchip: chip_id, pad, a 512-byte union (PIC state or IOAPIC state). */
    static final StructLayout IRQCHIP = structLayout(JAVA_INT.withName("chip_id"), JAVA_INT.withName("pad"),
            sequenceLayout(512, JAVA_BYTE).withName("chip"));

    /** asm/kvm.h struct kvm_pit_state2: 3 x struct kvm_pit_channel_state (24 bytes), flags, reserved[9]. */
    static final StructLayout PIT_STATE2 = structLayout(sequenceLayout(72, JAVA_BYTE).withName("channels"),
            JAVA_INT.withName("flags"), sequenceLayout(9, JAVA_INT).withName("reserved"));

    /** linux/kvm.h struct kvm_clock_data. */
    static final StructLayout CLOCK_DATA = structLayout(JAVA_LONG.withName("clock"), JAVA_INT.withName("flags"),
            JAVA_INT.withName("pad0"), JAVA_LONG.withName("realtime"), JAVA_LONG.withName("host_tsc"),
            sequenceLayout(4, JAVA_INT).withName("pad"));

    private KvmStructs() {
    }
}
