package org.krun.hv.kvm.internal;

import static org.krun.hv.kvm.internal.KvmStructs.CLOCK_DATA;
import static org.krun.hv.kvm.internal.KvmStructs.CPUID2;
import static org.krun.hv.kvm.internal.KvmStructs.FPU;
import static org.krun.hv.kvm.internal.KvmStructs.IOEVENTFD;
import static org.krun.hv.kvm.internal.KvmStructs.IRQCHIP;
import static org.krun.hv.kvm.internal.KvmStructs.IRQFD;
import static org.krun.hv.kvm.internal.KvmStructs.IRQ_LEVEL;
import static org.krun.hv.kvm.internal.KvmStructs.LAPIC_STATE;
import static org.krun.hv.kvm.internal.KvmStructs.MP_STATE;
import static org.krun.hv.kvm.internal.KvmStructs.MSRS;
import static org.krun.hv.kvm.internal.KvmStructs.MSR_LIST;
import static org.krun.hv.kvm.internal.KvmStructs.PIT_CONFIG;
import static org.krun.hv.kvm.internal.KvmStructs.PIT_STATE2;
import static org.krun.hv.kvm.internal.KvmStructs.REGS;
import static org.krun.hv.kvm.internal.KvmStructs.SREGS;
import static org.krun.hv.kvm.internal.KvmStructs.USERSPACE_MEMORY_REGION;
import static org.krun.hv.kvm.internal.KvmStructs.VCPU_EVENTS;
import static org.krun.hv.kvm.internal.KvmStructs.XCRS;
import static org.krun.hv.kvm.internal.KvmStructs.XSAVE;

/** KVM ioctl numbers (linux/kvm.h), computed from the structure layouts. */
final class KvmIoctls {
    static final int KVMIO = 0xAE;

    // system ioctls (/dev/kvm)
    static final long KVM_GET_API_VERSION = Ioctl.io(KVMIO, 0x00);
    static final long KVM_CREATE_VM = Ioctl.io(KVMIO, 0x01);
    static final long KVM_CHECK_EXTENSION = Ioctl.io(KVMIO, 0x03);
    static final long KVM_GET_VCPU_MMAP_SIZE = Ioctl.io(KVMIO, 0x04);
    static final long KVM_GET_MSR_INDEX_LIST = Ioctl.iowr(KVMIO, 0x02, MSR_LIST.byteSize());
    static final long KVM_GET_SUPPORTED_CPUID = Ioctl.iowr(KVMIO, 0x05, CPUID2.byteSize());

    // VM ioctls
    static final long KVM_CREATE_VCPU = Ioctl.io(KVMIO, 0x41);
    static final long KVM_SET_USER_MEMORY_REGION = Ioctl.iow(KVMIO, 0x46, USERSPACE_MEMORY_REGION.byteSize());
    static final long KVM_SET_TSS_ADDR = Ioctl.io(KVMIO, 0x47);
    static final long KVM_SET_IDENTITY_MAP_ADDR = Ioctl.iow(KVMIO, 0x48, 8);
    static final long KVM_CREATE_IRQCHIP = Ioctl.io(KVMIO, 0x60);
    static final long KVM_IRQ_LINE = Ioctl.iow(KVMIO, 0x61, IRQ_LEVEL.byteSize());
    static final long KVM_IRQFD = Ioctl.iow(KVMIO, 0x76, IRQFD.byteSize());
    static final long KVM_CREATE_PIT2 = Ioctl.iow(KVMIO, 0x77, PIT_CONFIG.byteSize());
    static final long KVM_GET_IRQCHIP = Ioctl.iowr(KVMIO, 0x62, IRQCHIP.byteSize());
    /** Really _IOR in linux/kvm.h, though userspace writes it. */
    static final long KVM_SET_IRQCHIP = Ioctl.ior(KVMIO, 0x63, IRQCHIP.byteSize());
    static final long KVM_SET_CLOCK = Ioctl.iow(KVMIO, 0x7b, CLOCK_DATA.byteSize());
    static final long KVM_GET_CLOCK = Ioctl.ior(KVMIO, 0x7c, CLOCK_DATA.byteSize());
    static final long KVM_GET_PIT2 = Ioctl.ior(KVMIO, 0x9f, PIT_STATE2.byteSize());
    static final long KVM_SET_PIT2 = Ioctl.iow(KVMIO, 0xa0, PIT_STATE2.byteSize());
    static final long KVM_IOEVENTFD = Ioctl.iow(KVMIO, 0x79, IOEVENTFD.byteSize());

    // vCPU ioctls
    static final long KVM_RUN = Ioctl.io(KVMIO, 0x80);
    static final long KVM_GET_REGS = Ioctl.ior(KVMIO, 0x81, REGS.byteSize());
    static final long KVM_SET_REGS = Ioctl.iow(KVMIO, 0x82, REGS.byteSize());
    static final long KVM_GET_SREGS = Ioctl.ior(KVMIO, 0x83, SREGS.byteSize());
    static final long KVM_SET_SREGS = Ioctl.iow(KVMIO, 0x84, SREGS.byteSize());
    static final long KVM_GET_MSRS = Ioctl.iowr(KVMIO, 0x88, MSRS.byteSize());
    static final long KVM_SET_MSRS = Ioctl.iow(KVMIO, 0x89, MSRS.byteSize());
    static final long KVM_SET_SIGNAL_MASK = Ioctl.iow(KVMIO, 0x8b, 4);
    static final long KVM_GET_FPU = Ioctl.ior(KVMIO, 0x8c, FPU.byteSize());
    static final long KVM_SET_FPU = Ioctl.iow(KVMIO, 0x8d, FPU.byteSize());
    static final long KVM_GET_LAPIC = Ioctl.ior(KVMIO, 0x8e, LAPIC_STATE.byteSize());
    static final long KVM_SET_LAPIC = Ioctl.iow(KVMIO, 0x8f, LAPIC_STATE.byteSize());
    static final long KVM_SET_CPUID2 = Ioctl.iow(KVMIO, 0x90, CPUID2.byteSize());
    static final long KVM_GET_MP_STATE = Ioctl.ior(KVMIO, 0x98, MP_STATE.byteSize());
    static final long KVM_SET_MP_STATE = Ioctl.iow(KVMIO, 0x99, MP_STATE.byteSize());
    static final long KVM_GET_VCPU_EVENTS = Ioctl.ior(KVMIO, 0x9f, VCPU_EVENTS.byteSize());
    static final long KVM_SET_VCPU_EVENTS = Ioctl.iow(KVMIO, 0xa0, VCPU_EVENTS.byteSize());
    static final long KVM_GET_XSAVE = Ioctl.ior(KVMIO, 0xa4, XSAVE.byteSize());
    static final long KVM_SET_XSAVE = Ioctl.iow(KVMIO, 0xa5, XSAVE.byteSize());
    static final long KVM_GET_XCRS = Ioctl.ior(KVMIO, 0xa6, XCRS.byteSize());
    static final long KVM_SET_XCRS = Ioctl.iow(KVMIO, 0xa7, XCRS.byteSize());
    /** The size in the number is struct kvm_xsave's; the buffer is KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2) bytes. */
    static final long KVM_GET_XSAVE2 = Ioctl.ior(KVMIO, 0xcf, XSAVE.byteSize());

    // capabilities (KVM_CHECK_EXTENSION)
    static final int KVM_CAP_IRQCHIP = 0;
    static final int KVM_CAP_USER_MEMORY = 3;
    static final int KVM_CAP_SET_TSS_ADDR = 4;
    static final int KVM_CAP_EXT_CPUID = 7;
    static final int KVM_CAP_NR_VCPUS = 9;
    static final int KVM_CAP_NR_MEMSLOTS = 10;
    static final int KVM_CAP_PIT2 = 33;
    static final int KVM_CAP_IOEVENTFD = 36;
    static final int KVM_CAP_IRQFD = 32;
    static final int KVM_CAP_MAX_VCPUS = 66;
    static final int KVM_CAP_TSC_DEADLINE_TIMER = 72;
    static final int KVM_CAP_IMMEDIATE_EXIT = 136;
    static final int KVM_CAP_MP_STATE = 14;
    static final int KVM_CAP_ADJUST_CLOCK = 39;
    static final int KVM_CAP_VCPU_EVENTS = 41;
    static final int KVM_CAP_XSAVE = 55;
    static final int KVM_CAP_XCRS = 56;
    static final int KVM_CAP_XSAVE2 = 208;

    // flags
    static final int KVM_PIT_SPEAKER_DUMMY = 1;
    static final int KVM_IOEVENTFD_FLAG_DATAMATCH = 1;
    static final int KVM_IOEVENTFD_FLAG_PIO = 1 << 1;
    static final int KVM_IOEVENTFD_FLAG_DEASSIGN = 1 << 2;
    static final int KVM_IRQFD_FLAG_DEASSIGN = 1;
    static final int KVM_IRQCHIP_PIC_MASTER = 0;
    static final int KVM_IRQCHIP_PIC_SLAVE = 1;
    static final int KVM_IRQCHIP_IOAPIC = 2;

    private KvmIoctls() {
    }
}
