package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.hv.kvm.internal.KvmHypervisor;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.SharedMemory;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;

/**
 * A virtio-mmio shared memory region under the real KVM backend (shm.elf): the guest finds the region's
 * placement in the transport's registers, and a host page mapped into it, removed and mapped again while
 * the guest runs (a KVM memory slot added and deleted at run time) is what the guest reads and writes at
 * the region's address; while nothing is mapped, the guest reads all ones. Needs /dev/kvm.
 */
class SharedMemoryGuestTest {
    private static final int MEMORY_MIB = 64;
    private static final int HOST_MAGIC = 0x6b72756e;
    private static final int GUEST_MARK = 0x600d;

    private static KvmHypervisor kvm;
    private static KrunService krun;
    private static final ProbeFactory probes = new ProbeFactory();

    @BeforeAll
    static void openKvm() {
        FastGuests.assumeKvm();
        kvm = KvmHypervisor.open();
        krun = FastGuests.krun(kvm);
        krun.addDeviceFactory(probes);
    }

    @AfterAll
    static void closeKvm() {
        if (kvm != null) {
            kvm.close();
        }
    }

    @Test
    void hostPageMappedIntoTheRegionWhileTheGuestRunsIsWhatTheGuestSees() throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        VirtualMachine vm = krun.create(FastGuests.config("shm.elf", MEMORY_MIB, out, serial,
                new GenericDeviceSpec(ProbeFactory.TYPE, Map.of())));
        vm.start();
        VmExit exit = FastGuests.await(vm, serial);

        assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), () -> exit + "; guest serial output: " + serial);
        String[] checks = {"absent regions read all ones", "region 1 placed above 4 GiB", "hole reads all ones",
            "mapped host page seen", "unmapped page reads all ones", "remapped page keeps the guest's write", "activated"};
        assertEquals(FastGuests.describe(0x7f, checks), FastGuests.describe(exit.status(), checks), () -> "serial: " + serial);
        Probe probe = probes.last;
        assertEquals(GUEST_MARK, probe.page.get(ValueLayout.JAVA_INT, 4), "the guest's write landed in the host page");
        assertEquals(0, probe.region.mappings(), "the guest ended with the page mapped; the VM's end removed it");
    }

    /** Makes {@link Probe}s. */
    private static final class ProbeFactory implements VirtioDeviceFactory {
        static final String TYPE = "shm-probe";
        volatile Probe last;

        @Override
        public String type() {
            return TYPE;
        }

        @Override
        public VirtioDevice create(DeviceSpec spec) {
            Probe p = new Probe();
            last = p;
            return p;
        }
    }

    /**
     * Device 0x3f with one 2 MiB region (id 1) and one host page: config byte 0 reads 1 once active; the
     * guest writes 1 there to have the page mapped at offset 0, 2 to have it unmapped (on its vCPU thread, so
     * the change is in place when the write returns).
     */
    private static final class Probe implements VirtioDevice {
        final MemorySegment page = Arena.global().allocate(SharedMemoryRegion.PAGE_SIZE, SharedMemoryRegion.PAGE_SIZE);
        private volatile DeviceContext context;
        private SharedMemory.Mapping mapping;
        volatile SharedMemory region;

        Probe() {
            page.set(ValueLayout.JAVA_INT, 0, HOST_MAGIC);
        }

        @Override
        public int deviceType() {
            return 0x3f;
        }

        @Override
        public long deviceFeatures() {
            return 0;
        }

        @Override
        public int queueCount() {
            return 1;
        }

        @Override
        public int queueMaxSize(int index) {
            return 16;
        }

        @Override
        public int configSize() {
            return 4;
        }

        @Override
        public List<SharedMemoryRegion> sharedMemoryRegions() {
            return List.of(new SharedMemoryRegion(1, 2L << 20));
        }

        @Override
        public void readConfig(int offset, byte[] data) {
            data[0] = (byte) (offset == 0 && context != null ? 1 : 0);
        }

        @Override
        public synchronized void writeConfig(int offset, byte[] data) {
            DeviceContext c = context;
            if (c == null || offset != 0) {
                return;
            }
            SharedMemory shm = c.sharedMemory(1).orElseThrow();
            if (data[0] == 1 && mapping == null) {
                mapping = shm.map(0, page);
            } else if (data[0] == 2 && mapping != null) {
                mapping.close();
                mapping = null;
            }
        }

        @Override
        public void activate(DeviceContext context) {
            this.region = context.sharedMemory(1).orElseThrow();
            this.context = context;
        }

        @Override
        public void queueNotify(int index) {
        }

        @Override
        public synchronized void reset() {
            context = null;
            mapping = null; // the transport removes what is left
        }
    }
}
