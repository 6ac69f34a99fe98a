package org.krun.hv.kvm.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.krun.posix.Posix;

/**
 * The KVM backend's vCPU and VM state blobs against the real /dev/kvm: what is saved (and what this
 * host's KVM refuses), and that a state restored into a new VM saves back the same.
 */
class KvmSnapshotStateTest {
    private static final Path KVM = Path.of("/dev/kvm");
    /** MSRs issue 14 names: TSC, SYSENTER, STAR/LSTAR/CSTAR/SFMASK, KERNEL_GS_BASE, TSC_DEADLINE, MISC_ENABLE, PAT, kvmclock. */
    private static final Map<Integer, String> WANTED = Map.ofEntries(Map.entry(0x10, "TSC"), Map.entry(0x174, "SYSENTER_CS"),
            Map.entry(0x175, "SYSENTER_ESP"), Map.entry(0x176, "SYSENTER_EIP"), Map.entry(0xc0000081, "STAR"),
            Map.entry(0xc0000082, "LSTAR"), Map.entry(0xc0000083, "CSTAR"), Map.entry(0xc0000084, "SFMASK"),
            Map.entry(0xc0000102, "KERNEL_GS_BASE"), Map.entry(0x6e0, "TSC_DEADLINE"), Map.entry(0x1a0, "MISC_ENABLE"),
            Map.entry(0x277, "PAT"), Map.entry(0x4b564d00, "KVM_WALL_CLOCK_NEW"), Map.entry(0x4b564d01, "KVM_SYSTEM_TIME_NEW"));

    private static KvmHypervisor hv;
    private static Kvm kvm;

    @BeforeAll
    static void open() {
        Assumptions.assumeTrue(Files.isReadable(KVM) && Files.isWritable(KVM), "no usable /dev/kvm");
        kvm = Kvm.open();
        hv = new KvmHypervisor(kvm);
    }

    @AfterAll
    static void close() {
        if (hv != null) {
            hv.close();
        }
    }

    private static KvmVm vm(Arena arena) {
        KvmVm vm = (KvmVm) hv.createVm(1);
        vm.mapMemory(0, 0, arena.allocate(2 << 20, 4096));
        vm.createInterruptControllers();
        return vm;
    }

    @Test
    void vcpuAndVmStateRoundTripIntoANewVm() {
        try (Arena arena = Arena.ofConfined(); KvmVm first = vm(arena); KvmVm second = vm(arena)) {
            KvmVcpu a = (KvmVcpu) first.createVcpu(0);
            // Something not at reset values: registers and a syscall MSR.
            a.setBootState(new org.krun.spi.hypervisor.X86BootState(0x1234, 0x8ff0, 0x8ff0, 0x7000, 2,
                    new org.krun.spi.hypervisor.X86BootState.Segment(0, 0xfffff, 8, 0xb, true, 0, false, true, true, true),
                    new org.krun.spi.hypervisor.X86BootState.Segment(0, 0xfffff, 16, 3, true, 0, true, true, false, true),
                    new org.krun.spi.hypervisor.X86BootState.Segment(0, 0xfffff, 24, 0xb, true, 0, false, false, false, true),
                    new org.krun.spi.hypervisor.X86BootState.DescriptorTable(0x500, 31),
                    new org.krun.spi.hypervisor.X86BootState.DescriptorTable(0, 0), 0x80000011L, 0x9000, 0x20, 0x500));
            byte[] vcpuState = a.saveState();
            byte[] vmState = first.saveState();

            Map<Integer, byte[]> sections = KvmStateBlob.read(vcpuState, KvmStateBlob.VCPU_MAGIC, "vCPU");
            byte[] msrs = sections.get(KvmVcpu.TAG_MSRS);
            ByteBuffer m = ByteBuffer.wrap(msrs).order(ByteOrder.LITTLE_ENDIAN);
            int n = m.getInt(0);
            Set<Integer> saved = new TreeSet<>();
            for (int i = 0; i < n; i++) {
                saved.add(m.getInt(8 + 16 * i));
            }
            Set<String> missing = new TreeSet<>();
            WANTED.forEach((msr, name) -> {
                if (!saved.contains(msr)) {
                    missing.add(name);
                }
            });
            System.out.println("KvmSnapshotStateTest: " + (kvm.pvm() ? "kvm-pvm" : "kvm") + " saves " + n + " MSRs of "
                    + kvm.msrIndexList().length + " listed; sections " + new TreeSet<>(sections.keySet())
                    + " (5 XSAVE, 6 FPU, 7 XCRS, 10 events, 2 mp_state); XSAVE size " + kvm.xsaveSize()
                    + "; named MSRs not saved: " + missing + "; vCPU blob " + vcpuState.length + " bytes, VM blob " + vmState.length);
            assertTrue(saved.contains(0x10) && saved.contains(0xc0000082), "TSC and LSTAR are saved: " + saved);

            KvmVcpu b = (KvmVcpu) second.createVcpu(0);
            second.restoreState(vmState);
            b.restoreState(vcpuState);
            assertArrayEquals(a.registers(), b.registers());
            Map<Integer, byte[]> again = KvmStateBlob.read(b.saveState(), KvmStateBlob.VCPU_MAGIC, "vCPU");
            assertArrayEquals(sections.get(KvmVcpu.TAG_REGS), again.get(KvmVcpu.TAG_REGS));
            assertArrayEquals(sections.get(KvmVcpu.TAG_SREGS), again.get(KvmVcpu.TAG_SREGS));
            assertArrayEquals(sections.get(KvmVcpu.TAG_LAPIC), again.get(KvmVcpu.TAG_LAPIC));
        }
    }

    @Test
    void aBlobThatIsNotOneIsOneLine() {
        try (Arena arena = Arena.ofConfined(); KvmVm vm = vm(arena)) {
            KvmVcpu v = (KvmVcpu) vm.createVcpu(0);
            byte[] state = v.saveState();
            assertEquals("vCPU state is not a KVM vCPU state",
                    assertThrows(IllegalArgumentException.class, () -> v.restoreState(new byte[] {1, 2, 3})).getMessage());
            byte[] cut = java.util.Arrays.copyOf(state, state.length - 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> v.restoreState(cut));
            assertTrue(e.getMessage().startsWith("vCPU state is truncated"), e.getMessage());
            assertEquals("VM state is not a KVM VM state",
                    assertThrows(IllegalArgumentException.class, () -> vm.restoreState(state)).getMessage());
        }
    }
}
