package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.krun.device.blk.internal.BlkRequest.VIRTIO_BLK_S_OK;
import static org.krun.device.blk.internal.BlkRequests.status;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.Virtqueue;

/** Snapshots of virtio-blk: in-flight I/O drained first, then a fresh device over the image goes on serving. */
class VirtioBlkSnapshotTest {
    private static final int SIZE = 1 << 20;

    /** A fresh device over {@code disk}, activated with {@code h}'s queue at the indices it had, then restored. */
    private static VirtioBlk restore(BlkHarness h, DiskBackend disk, byte[] state, FakeDeviceContext[] contextOut) {
        VirtioBlk fresh = new VirtioBlk(disk, BlkHarness.spec(), ManualExecutor.direct());
        Virtqueue q = new Virtqueue(h.driver.layout(), false);
        q.restoreIndices(h.context.queues().get(0).indices());
        FakeDeviceContext context = new FakeDeviceContext(h.ram.memory(), h.context.driverFeatures(), List.of(q));
        fresh.activate(context);
        fresh.restoreState(state);
        contextOut[0] = context;
        return fresh;
    }

    @Test
    void snapshotWaitsForRequestsOnIoThreadsAndARestoredDeviceServesTheImage() throws Exception {
        MemoryDisk disk = new MemoryDisk(SIZE);
        ManualExecutor io = ManualExecutor.held();
        try (BlkHarness h = new BlkHarness(disk, BlkHarness.spec(), io, -1)) {
            byte[] data = BlkRequests.pattern(4096, 7);
            BlkRequests.write(h.driver, 8, data);
            h.kick();
            assertEquals(1, h.device.inFlight());
            Thread worker = Thread.ofPlatform().start(() -> {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                io.runAll();
            });
            byte[] state = h.device.saveState();
            worker.join();
            assertEquals(0, h.device.inFlight());
            List<MockDriverQueue.Used> used = h.used();
            assertEquals(1, used.size(), "the write went back to the driver before the state was taken");
            assertEquals(VIRTIO_BLK_S_OK, status(used.get(0)));
            assertEquals(1, h.context.queues().get(0).indices().nextUsed());

            FakeDeviceContext[] context = new FakeDeviceContext[1];
            VirtioBlk fresh = restore(h, disk, state, context);
            BlkRequests.read(h.driver, 8, 4096);
            fresh.queueNotify(0);
            List<MockDriverQueue.Used> read = h.used();
            assertEquals(1, read.size());
            assertEquals(VIRTIO_BLK_S_OK, status(read.get(0)));
            assertArrayEquals(data, Arrays.copyOf(read.get(0).written(), 4096));
            assertTrue(context[0].interrupts().stream().noneMatch(i -> i == InterruptTrigger.CONFIG), "same capacity: no config change");
        }
    }

    @Test
    void snapshotIsRefusedWhileARequestStillRuns() {
        ManualExecutor io = ManualExecutor.held();
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec(), io, -1)) {
            BlkRequests.read(h.driver, 0, 512);
            h.kick();
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> h.device.saveState(Duration.ofMillis(50)));
            assertEquals("disk /test/disk.img: 1 requests still running after 50 ms", e.getMessage());
            io.runAll();
        }
    }

    @Test
    void aDifferentCapacityOnRestoreIsAConfigurationChange() {
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec())) {
            byte[] state = h.device.saveState();
            FakeDeviceContext[] context = new FakeDeviceContext[1];
            restore(h, new MemoryDisk(2 * SIZE), state, context);
            assertEquals(List.of(InterruptTrigger.CONFIG), context[0].interrupts());
        }
    }

    @Test
    void theTemplateKeyLeavesOutTheCapacityButKeepsTheRestOfTheConfigurationSpace() {
        VirtioBlk small = new VirtioBlk(new MemoryDisk(SIZE), BlkHarness.spec(), ManualExecutor.direct());
        VirtioBlk big = new VirtioBlk(new MemoryDisk(4 * SIZE), BlkHarness.spec(), ManualExecutor.direct());
        assertArrayEquals(small.templateKeyConfig(), big.templateKeyConfig());
        byte[] whole = new byte[big.configSize()];
        big.readConfig(0, whole);
        assertEquals(4 * SIZE / 512, ByteBuffer.wrap(whole).order(ByteOrder.LITTLE_ENDIAN).getLong(),
                "the guest still reads the capacity");
        byte[] key = big.templateKeyConfig();
        assertArrayEquals(Arrays.copyOfRange(whole, 8, whole.length), Arrays.copyOfRange(key, 8, key.length));
    }

    @Test
    void tamperedStateIsRefusedWithOneLine() {
        try (BlkHarness h = new BlkHarness(new MemoryDisk(SIZE), BlkHarness.spec())) {
            byte[] state = h.device.saveState();
            VirtioBlk fresh = new VirtioBlk(new MemoryDisk(SIZE), BlkHarness.spec(), ManualExecutor.direct());
            IllegalArgumentException truncated = assertThrows(IllegalArgumentException.class,
                    () -> fresh.restoreState(Arrays.copyOf(state, 5)));
            assertEquals("disk /test/disk.img: saved state has 5 bytes, not 12", truncated.getMessage());
            byte[] wrongVersion = state.clone();
            wrongVersion[3] = 9;
            IllegalArgumentException version = assertThrows(IllegalArgumentException.class, () -> fresh.restoreState(wrongVersion));
            assertTrue(version.getMessage().contains("version 9"), version.getMessage());
            fresh.restoreState(state); // inactive: nothing to tell
        }
    }
}
