package org.krun.vmm.internal.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.vmm.internal.virtio.DeviceStatus.ACKNOWLEDGE;
import static org.krun.vmm.internal.virtio.DeviceStatus.DRIVER;
import static org.krun.vmm.internal.virtio.DeviceStatus.DRIVER_OK;
import static org.krun.vmm.internal.virtio.DeviceStatus.FEATURES_OK;
import static org.krun.vmm.internal.virtio.MmioTransport.*;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.SharedMemory;
import org.krun.spi.virtio.SharedMemoryRegion;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.vmm.internal.boot.SharedMemoryWindow;
import org.krun.vmm.internal.event.EpollEventLoop;
import org.krun.vmm.internal.memory.MemorySlots;

/** virtio-mmio shared memory regions (virtio 1.2 §4.2.2 SHMSel, SHMLen, SHMBase) and their mappings. */
class SharedMemoryTransportTest {
    private static final long BASE = 0xd000_0000L;
    private static final long RAM_SIZE = 0x10000;
    private static final long PAGE = SharedMemoryRegion.PAGE_SIZE;

    private Arena arena;
    private GuestMemory memory;
    private EpollEventLoop loop;
    private Thread loopThread;
    private FakeVirtioDevice device;
    private FakeHypervisorVm vm;
    private MmioTransport transport;

    @BeforeEach
    void setUp() {
        arena = Arena.ofShared();
        memory = new GuestMemory(List.of(new GuestRegion(0, arena.allocate(RAM_SIZE, 4096))));
        loop = new EpollEventLoop();
        loopThread = Thread.ofPlatform().name("test-device-loop").start(loop::run);
        device = new FakeVirtioDevice(16);
        device.sharedMemoryRegions = List.of(new SharedMemoryRegion(1, 256 * PAGE), new SharedMemoryRegion(7, 3L << 30));
        vm = new FakeHypervisorVm();
        vm.memorySlots = 8;
        transport = new MmioTransport(device, memory, BASE, 5, new SharedMemoryWindow(memory), new MemorySlots(vm, 1));
        transport.attach(vm, loop);
    }

    @AfterEach
    void tearDown() throws InterruptedException {
        transport.detach();
        loop.stop();
        loopThread.join();
        loop.close();
        arena.close();
    }

    private long read(int offset) {
        return transport.read(offset, 4);
    }

    private void write(int offset, int value) {
        transport.write(offset, 4, value & 0xffffffffL);
    }

    private long region(int reg, int id) {
        write(SHM_SEL, id);
        return read(reg) | read(reg + 4) << 32;
    }

    private DeviceContext activate() throws InterruptedException {
        write(STATUS, ACKNOWLEDGE);
        write(STATUS, ACKNOWLEDGE | DRIVER);
        write(DRIVER_FEATURES_SEL, 1);
        write(DRIVER_FEATURES, (int) (VirtioFeatures.VERSION_1 >>> 32));
        write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK);
        write(QUEUE_SEL, 0);
        write(QUEUE_NUM, 16);
        write(QUEUE_DESC_LOW, 0x1000);
        write(QUEUE_DRIVER_LOW, 0x2000);
        write(QUEUE_DEVICE_LOW, 0x3000);
        write(QUEUE_READY, 1);
        write(STATUS, ACKNOWLEDGE | DRIVER | FEATURES_OK | DRIVER_OK);
        return device.awaitActivation();
    }

    private MemorySegment pages(int n) {
        return arena.allocate(n * PAGE, PAGE);
    }

    @Test
    void selectedRegionReadsItsLengthAndPlacementAboveFourGib() {
        assertEquals(256 * PAGE, region(SHM_LEN_LOW, 1));
        long base1 = region(SHM_BASE_LOW, 1);
        assertEquals(1L << 32, base1, "a guest with 64 KiB of RAM gets its first region at 4 GiB");
        assertEquals(3L << 30, region(SHM_LEN_LOW, 7));
        long base7 = region(SHM_BASE_LOW, 7);
        assertTrue(base7 >= base1 + 256 * PAGE && base7 % SharedMemoryWindow.REGION_ALIGN == 0, "0x" + Long.toHexString(base7));
    }

    @Test
    void absentRegionReadsAllOnes() {
        for (int id : new int[] {0, 2, 255, -1}) {
            assertEquals(-1L, region(SHM_LEN_LOW, id), "length of region " + id);
            assertEquals(-1L, region(SHM_BASE_LOW, id), "base of region " + id);
        }
    }

    @Test
    void deviceWithoutRegionsOrBackendWithoutSlotsOffersNone() throws InterruptedException {
        FakeHypervisorVm noSlots = new FakeHypervisorVm();
        MmioTransport t = new MmioTransport(device, memory, BASE, 5, new SharedMemoryWindow(memory), new MemorySlots(noSlots, 1));
        t.write(SHM_SEL, 4, 1);
        assertEquals(0xffffffffL, t.read(SHM_LEN_LOW, 4));
        assertEquals(0xffffffffL, t.read(SHM_LEN_HIGH, 4));
        assertTrue(t.sharedMemory().isEmpty());
    }

    @Test
    void mappingsTakeFreeSlotsAtTheirGuestAddressAndGoOnUnmap() throws Exception {
        SharedMemory shm = activate().sharedMemory(1).orElseThrow();
        MemorySegment a = pages(2);
        SharedMemory.Mapping m = shm.map(4 * PAGE, a);
        SharedMemory.Mapping n = shm.map(0, pages(1));
        synchronized (vm) {
            assertEquals(2, vm.slots.size());
            long[] first = vm.slots.get(1);
            assertEquals(shm.guestAddress() + 4 * PAGE, first[0]);
            assertEquals(2 * PAGE, first[1]);
            assertEquals(a.address(), first[2]);
            assertTrue(vm.slots.containsKey(2), "the next free slot above RAM's");
        }
        m.close();
        m.close(); // idempotent
        assertEquals(1, shm.mappings());
        synchronized (vm) {
            assertEquals(List.of(2), List.copyOf(vm.slots.keySet()));
        }
        n.close();
        assertEquals(0, shm.mappings());
    }

    @Test
    void mappingsOutsideTheRegionMisalignedOrOverlappingAreRefused() throws Exception {
        SharedMemory shm = activate().sharedMemory(1).orElseThrow();
        shm.map(8 * PAGE, pages(4));
        assertThrows(IllegalArgumentException.class, () -> shm.map(255 * PAGE, pages(2)), "past the end");
        assertThrows(IllegalArgumentException.class, () -> shm.map(256 * PAGE, pages(1)), "at the end");
        assertThrows(IllegalArgumentException.class, () -> shm.map(-PAGE, pages(1)), "negative");
        assertThrows(IllegalArgumentException.class, () -> shm.map(Long.MAX_VALUE & -PAGE, pages(1)), "overflowing");
        assertThrows(IllegalArgumentException.class, () -> shm.map(100, pages(1)), "offset not a page");
        assertThrows(IllegalArgumentException.class, () -> shm.map(0, arena.allocate(100, PAGE)), "size not pages");
        assertThrows(IllegalArgumentException.class, () -> shm.map(0, pages(2).asSlice(8, PAGE)), "host not page-aligned");
        assertThrows(IllegalArgumentException.class, () -> shm.map(11 * PAGE, pages(1)), "overlaps the end of one");
        assertThrows(IllegalArgumentException.class, () -> shm.map(6 * PAGE, pages(3)), "overlaps the start of one");
        assertThrows(IllegalArgumentException.class, () -> shm.map(0, pages(16)), "covers one");
        shm.map(12 * PAGE, pages(1)); // right after: fine
        shm.map(7 * PAGE, pages(1)); // right before: fine
        assertEquals(3, shm.mappings());
        synchronized (vm) {
            assertEquals(3, vm.slots.size());
        }
    }

    @Test
    void slotsRunOutAndComeBack() throws Exception {
        SharedMemory shm = activate().sharedMemory(1).orElseThrow();
        List<SharedMemory.Mapping> maps = new java.util.ArrayList<>();
        for (int i = 0; i < 7; i++) { // slots 1..7: slot 0 is RAM's
            maps.add(shm.map(i * PAGE, pages(1)));
        }
        assertThrows(IllegalStateException.class, () -> shm.map(100 * PAGE, pages(1)));
        maps.get(3).close();
        shm.map(100 * PAGE, pages(1));
    }

    @Test
    void resetAndDetachRemoveWhatTheDeviceLeftMapped() throws Exception {
        SharedMemory shm = activate().sharedMemory(7).orElseThrow();
        shm.map(0, pages(1));
        shm.map(PAGE, pages(1));
        write(STATUS, 0);
        assertEquals(0, shm.mappings());
        synchronized (vm) {
            assertTrue(vm.slots.isEmpty());
        }
        SharedMemory again = activate().sharedMemory(7).orElseThrow();
        again.map(0, pages(1));
        transport.detach();
        synchronized (vm) {
            assertTrue(vm.slots.isEmpty());
        }
    }

    @Test
    void unknownRegionIsEmptyInTheContext() throws Exception {
        assertTrue(activate().sharedMemory(3).isEmpty());
    }

    @Test
    void slotTheHypervisorDidNotReleaseIsNotReused() throws Exception {
        SharedMemory shm = activate().sharedMemory(1).orElseThrow();
        SharedMemory.Mapping m = shm.map(0, pages(1));
        vm.failingUnmaps.add(1);
        assertThrows(IllegalStateException.class, m::close);
        vm.failingUnmaps.clear();
        shm.map(0, pages(1));
        synchronized (vm) {
            assertTrue(vm.slots.containsKey(1) && vm.slots.containsKey(2), "slot 1 stays with its memory; the new one is 2");
        }
    }
}
