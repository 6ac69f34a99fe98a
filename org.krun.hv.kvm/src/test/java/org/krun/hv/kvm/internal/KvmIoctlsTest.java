package org.krun.hv.kvm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

/**
 * The ioctl numbers krun computes from its layouts, pinned to the values linux/kvm.h gives on x86_64
 * (printed once from the header with a C program; the test needs no compiler or /dev/kvm).
 */
class KvmIoctlsTest {

    @Test
    void systemIoctlsMatchLinuxKvmH() {
        assertEquals(0xae00L, KvmIoctls.KVM_GET_API_VERSION);
        assertEquals(0xae01L, KvmIoctls.KVM_CREATE_VM);
        assertEquals(0xae03L, KvmIoctls.KVM_CHECK_EXTENSION);
        assertEquals(0xae04L, KvmIoctls.KVM_GET_VCPU_MMAP_SIZE);
        assertEquals(0xc008ae05L, KvmIoctls.KVM_GET_SUPPORTED_CPUID);
    }

    @Test
    void vmIoctlsMatchLinuxKvmH() {
        assertEquals(0xae41L, KvmIoctls.KVM_CREATE_VCPU);
        assertEquals(0x4020ae46L, KvmIoctls.KVM_SET_USER_MEMORY_REGION);
        assertEquals(0xae47L, KvmIoctls.KVM_SET_TSS_ADDR);
        assertEquals(0x4008ae48L, KvmIoctls.KVM_SET_IDENTITY_MAP_ADDR);
        assertEquals(0xae60L, KvmIoctls.KVM_CREATE_IRQCHIP);
        assertEquals(0x4008ae61L, KvmIoctls.KVM_IRQ_LINE);
        assertEquals(0x4020ae76L, KvmIoctls.KVM_IRQFD);
        assertEquals(0x4040ae77L, KvmIoctls.KVM_CREATE_PIT2);
        assertEquals(0x4040ae79L, KvmIoctls.KVM_IOEVENTFD);
    }

    @Test
    void vcpuIoctlsMatchLinuxKvmH() {
        assertEquals(0xae80L, KvmIoctls.KVM_RUN);
        assertEquals(0x8090ae81L, KvmIoctls.KVM_GET_REGS);
        assertEquals(0x4090ae82L, KvmIoctls.KVM_SET_REGS);
        assertEquals(0x8138ae83L, KvmIoctls.KVM_GET_SREGS);
        assertEquals(0x4138ae84L, KvmIoctls.KVM_SET_SREGS);
        assertEquals(0x4008ae89L, KvmIoctls.KVM_SET_MSRS);
        assertEquals(0x4004ae8bL, KvmIoctls.KVM_SET_SIGNAL_MASK);
        assertEquals(0x81a0ae8cL, KvmIoctls.KVM_GET_FPU);
        assertEquals(0x41a0ae8dL, KvmIoctls.KVM_SET_FPU);
        assertEquals(0x8400ae8eL, KvmIoctls.KVM_GET_LAPIC);
        assertEquals(0x4400ae8fL, KvmIoctls.KVM_SET_LAPIC);
        assertEquals(0x4008ae90L, KvmIoctls.KVM_SET_CPUID2);
    }

    @Test
    void capabilityAndFlagValuesMatchLinuxKvmH() {
        assertEquals(0, KvmIoctls.KVM_CAP_IRQCHIP);
        assertEquals(3, KvmIoctls.KVM_CAP_USER_MEMORY);
        assertEquals(4, KvmIoctls.KVM_CAP_SET_TSS_ADDR);
        assertEquals(7, KvmIoctls.KVM_CAP_EXT_CPUID);
        assertEquals(9, KvmIoctls.KVM_CAP_NR_VCPUS);
        assertEquals(32, KvmIoctls.KVM_CAP_IRQFD);
        assertEquals(33, KvmIoctls.KVM_CAP_PIT2);
        assertEquals(36, KvmIoctls.KVM_CAP_IOEVENTFD);
        assertEquals(66, KvmIoctls.KVM_CAP_MAX_VCPUS);
        assertEquals(72, KvmIoctls.KVM_CAP_TSC_DEADLINE_TIMER);
        assertEquals(136, KvmIoctls.KVM_CAP_IMMEDIATE_EXIT);
        assertEquals(1, KvmIoctls.KVM_PIT_SPEAKER_DUMMY);
        assertEquals(1, KvmIoctls.KVM_IOEVENTFD_FLAG_DATAMATCH);
        assertEquals(2, KvmIoctls.KVM_IOEVENTFD_FLAG_PIO);
        assertEquals(4, KvmIoctls.KVM_IOEVENTFD_FLAG_DEASSIGN);
        assertEquals(1, KvmIoctls.KVM_IRQFD_FLAG_DEASSIGN);
    }

    @Test
    void iocPacksDirectionSizeTypeAndNumber() {
        assertEquals(0xffffee01L, Ioctl.iowr(0xee, 0x01, 0x3fff)); // every field at its widest
        assertEquals(0x800c5402L, Ioctl.ior('T', 0x02, 12));
        assertEquals(0x00005401L, Ioctl.io('T', 0x01));
    }

    @Test
    void iocRefusesSizesThatDoNotFitFourteenBits() {
        assertThrows(IllegalArgumentException.class, () -> Ioctl.iow(KvmIoctls.KVMIO, 0, 1 << 14));
        assertThrows(IllegalArgumentException.class, () -> Ioctl.iow(KvmIoctls.KVMIO, 0, -1));
    }

    /** The values linux/kvm.h gives (a C program printing them on this host's headers). */
    @Test
    void snapshotIoctlsMatchLinuxKvmH() {
        assertEquals(0xc004ae02L, KvmIoctls.KVM_GET_MSR_INDEX_LIST);
        assertEquals(0xc008ae88L, KvmIoctls.KVM_GET_MSRS);
        assertEquals(0x4008ae89L, KvmIoctls.KVM_SET_MSRS);
        assertEquals(0x8004ae98L, KvmIoctls.KVM_GET_MP_STATE);
        assertEquals(0x4004ae99L, KvmIoctls.KVM_SET_MP_STATE);
        assertEquals(0xc208ae62L, KvmIoctls.KVM_GET_IRQCHIP);
        assertEquals(0x8208ae63L, KvmIoctls.KVM_SET_IRQCHIP);
        assertEquals(0x8030ae7cL, KvmIoctls.KVM_GET_CLOCK);
        assertEquals(0x4030ae7bL, KvmIoctls.KVM_SET_CLOCK);
        assertEquals(0x8070ae9fL, KvmIoctls.KVM_GET_PIT2);
        assertEquals(0x4070aea0L, KvmIoctls.KVM_SET_PIT2);
        assertEquals(0x8040ae9fL, KvmIoctls.KVM_GET_VCPU_EVENTS);
        assertEquals(0x4040aea0L, KvmIoctls.KVM_SET_VCPU_EVENTS);
        assertEquals(0x9000aea4L, KvmIoctls.KVM_GET_XSAVE);
        assertEquals(0x5000aea5L, KvmIoctls.KVM_SET_XSAVE);
        assertEquals(0x9000aecfL, KvmIoctls.KVM_GET_XSAVE2);
        assertEquals(0x8188aea6L, KvmIoctls.KVM_GET_XCRS);
        assertEquals(0x4188aea7L, KvmIoctls.KVM_SET_XCRS);
    }
}
