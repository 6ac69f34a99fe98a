package org.krun.device.rng.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.posix.Errno;
import org.krun.posix.PosixException;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.VirtioIds;

/** virtio-rng against a driver-side mock requestq, as drivers/char/hw_random/virtio-rng.c drives it. */
class VirtioRngTest {
    private static final int RAM = 4 << 20;
    private static final byte PATTERN = (byte) 0xa5;

    /** A fake entropy source: fills with a recognisable pattern and records what it was asked for. */
    private static final class RecordingSource implements EntropySource {
        final List<Long> requests = new ArrayList<>();
        PosixException failure;

        @Override
        public void fill(MemorySegment destination) {
            if (failure != null) {
                throw failure;
            }
            requests.add(destination.byteSize());
            destination.fill(PATTERN);
        }

        long total() {
            return requests.stream().mapToLong(Long::longValue).sum();
        }
    }

    private final TestGuestMemory ram = TestGuestMemory.create(RAM);
    private final MockDriverQueue driver = new MockDriverQueue(ram, VirtioRng.QUEUE_SIZE);
    private final RecordingSource source = new RecordingSource();
    private VirtioRng rng;
    private FakeDeviceContext context;

    private void activate(EntropySource s) {
        rng = new VirtioRng(s);
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(driver.configuredQueue()));
        rng.activate(context);
    }

    private void kick() {
        rng.queueNotify(VirtioRng.REQUESTQ);
    }

    @AfterEach
    void close() {
        if (rng != null) {
            rng.close();
        }
        ram.close();
    }

    @Test
    void identifiesAsEntropyDeviceWithOneQueueAndNoConfig() {
        VirtioRng d = new VirtioRng(source);
        assertEquals(VirtioIds.ENTROPY, d.deviceType());
        assertEquals(4, d.deviceType(), "virtio 1.2 §5.4.1");
        assertEquals(0, d.deviceFeatures());
        assertEquals(1, d.queueCount());
        assertEquals(0, d.configSize());
    }

    @Test
    void fillsEachWritableBufferWithHostRandomBytes() {
        activate(GetRandom.INSTANCE);
        driver.addWritable(64);
        driver.addWritable(64);
        kick();
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(2, used.size());
        for (MockDriverQueue.Used u : used) {
            assertEquals(64, u.len());
            assertFalse(Arrays.equals(new byte[64], u.written()), "not all zero");
        }
        assertFalse(Arrays.equals(used.get(0).written(), used.get(1).written()), "two requests get different bytes");
        assertEquals(128, rng.bytesServed());
        assertEquals(List.of(InterruptTrigger.QUEUE), context.interrupts());
    }

    @Test
    void fillsEveryDescriptorOfAChainDirectAndIndirect() {
        activate(source);
        driver.addChain(List.of(), List.of(3, 100, 5));
        driver.addIndirectChain(List.of(), List.of(1, 7, 4096));
        kick();
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(2, used.size());
        assertEquals(108, used.get(0).len());
        assertEquals(4104, used.get(1).len());
        for (MockDriverQueue.Used u : used) {
            byte[] expected = new byte[u.len()];
            Arrays.fill(expected, PATTERN);
            assertArrayEquals(expected, u.written(), "every writable byte filled");
        }
    }

    @Test
    void oneRequestTakesAtMostTheBoundAndTheRestIsUntouched() {
        activate(source);
        int size = 1 << 20;
        driver.addChain(List.of(), List.of(size));
        kick();
        MockDriverQueue.Used u = driver.usedEntries().get(0);
        assertEquals(VirtioRng.MAX_BYTES_PER_REQUEST, u.len());
        assertEquals(VirtioRng.MAX_BYTES_PER_REQUEST, source.total(), "the host produced only what was used");
        assertEquals(VirtioRng.MAX_BYTES_PER_REQUEST, rng.bytesServed());
    }

    @Test
    void bytesBeyondTheBoundStayAsTheDriverLeftThem() {
        activate(source);
        long buffer = driver.allocate(VirtioRng.MAX_BYTES_PER_REQUEST + 4096);
        int[] d = driver.reserveDescriptors(1);
        driver.writeDescriptor(d[0], buffer, VirtioRng.MAX_BYTES_PER_REQUEST + 4096, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        kick();
        assertEquals(VirtioRng.MAX_BYTES_PER_REQUEST, driver.usedEntries().get(0).len());
        assertEquals(PATTERN, ram.memory().getByte(buffer + VirtioRng.MAX_BYTES_PER_REQUEST - 1));
        assertEquals(0, ram.memory().getByte(buffer + VirtioRng.MAX_BYTES_PER_REQUEST), "past the bound: untouched");
    }

    @Test
    void chainWithoutWritableBufferIsReturnedEmpty() {
        activate(source);
        driver.addReadable(new byte[16]);
        kick();
        MockDriverQueue.Used u = driver.usedEntries().get(0);
        assertEquals(0, u.len());
        assertTrue(source.requests.isEmpty(), "nothing asked of the host");
    }

    @Test
    void driverReadableBuffersAreIgnoredAndTheWritableOnesFilled() {
        activate(source);
        driver.addChain(List.of(new byte[8]), List.of(32));
        kick();
        assertEquals(32, driver.usedEntries().get(0).len());
    }

    @Test
    void bufferOutsideGuestRamIsReturnedEmptyAndTheQueueGoesOn() {
        activate(source);
        int[] d = driver.reserveDescriptors(1);
        driver.writeDescriptor(d[0], 1L << 40, 64, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        driver.addWritable(16);
        kick();
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(2, used.size());
        assertEquals(0, used.get(0).len());
        assertEquals(16, used.get(1).len());
        assertEquals(List.of(16L), source.requests, "nothing was filled for the bad chain");
        assertTrue(context.resetReasons().isEmpty());
    }

    @Test
    void bufferRunningPastTheEndOfRamIsNotWrittenAtAll() {
        activate(source);
        // A valid first buffer followed by one that runs off the end of RAM: the whole request is refused
        // before any byte is written, so the valid buffer keeps its contents too.
        long good = driver.allocate(32);
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], good, 32, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], RAM - 16, 64, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        kick();
        assertEquals(0, driver.usedEntries().get(0).len());
        assertTrue(source.requests.isEmpty());
        assertEquals(0, ram.memory().getByte(good));
        assertEquals(0, ram.memory().getLong(RAM - 16));
    }

    @Test
    void hugeDescriptorLengthIsCutToTheBound() {
        activate(source);
        // 4 GiB - 1 claimed in one descriptor, far beyond RAM: only the bound is used (and it lies in RAM),
        // written in place, so nothing of the guest's size is allocated on the host.
        int[] d = driver.reserveDescriptors(1);
        driver.writeDescriptor(d[0], driver.allocate(64), -1, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        kick();
        // The bound applies first (64 KiB), and those 64 KiB are in RAM: they are served.
        assertEquals(VirtioRng.MAX_BYTES_PER_REQUEST, driver.usedEntries().get(0).len());
        assertEquals(VirtioRng.MAX_BYTES_PER_REQUEST, source.total());
    }

    @Test
    void loopingChainIsReturnedUnusedAndTheNextOneServed() {
        activate(source);
        int[] d = driver.reserveDescriptors(2);
        long buf = driver.allocate(16);
        driver.writeDescriptor(d[0], buf, 16, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], buf, 16, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[0]);
        driver.makeAvailable(d[0]);
        driver.addWritable(8);
        kick();
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(2, used.size());
        assertEquals(d[0], used.get(0).id());
        assertEquals(0, used.get(0).len());
        assertEquals(8, used.get(1).len());
        assertTrue(context.resetReasons().isEmpty());
    }

    @Test
    void readableAfterWritableIsMalformed() {
        activate(source);
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], driver.allocate(16), 16, MockDriverQueue.DESC_F_WRITE | MockDriverQueue.DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], driver.allocate(16), 16, 0, 0);
        driver.makeAvailable(d[0]);
        kick();
        assertEquals(0, driver.usedEntries().get(0).len());
        assertTrue(source.requests.isEmpty());
    }

    @Test
    void headOutOfRangeAsksForReset() {
        activate(source);
        driver.makeAvailable(VirtioRng.QUEUE_SIZE + 3);
        kick();
        assertEquals(1, context.resetReasons().size(), context.resetReasons().toString());
        assertTrue(driver.usedEntries().isEmpty());
        driver.addWritable(8);
        kick();
        assertTrue(driver.usedEntries().isEmpty(), "a device that needs a reset serves nothing more");
    }

    @Test
    void availIndexJumpingPastTheQueueSizeAsksForReset() {
        activate(source);
        driver.setAvailIndex(VirtioRng.QUEUE_SIZE + 1);
        kick();
        assertEquals(1, context.resetReasons().size());
        assertTrue(source.requests.isEmpty());
    }

    @Test
    void hostFailureReturnsTheChainAndAsksForReset() {
        source.failure = new PosixException("getrandom", Errno.ENOSYS);
        activate(source);
        driver.addWritable(64);
        driver.addWritable(64);
        kick();
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(1, used.size(), "the failing chain goes back; the device stops there");
        assertEquals(0, used.get(0).len());
        assertEquals(1, context.resetReasons().size());
        assertTrue(context.resetReasons().get(0).contains("ENOSYS"), context.resetReasons().toString());
    }

    @Test
    void noInterruptWhenTheDriverSuppressesThem() {
        activate(source);
        driver.setNoInterrupt(true);
        driver.addWritable(8);
        kick();
        assertEquals(1, driver.usedEntries().size());
        assertTrue(context.interrupts().isEmpty());
    }

    @Test
    void aFullQueueIsServedInOneNotificationWithOneInterrupt() {
        activate(source);
        for (int i = 0; i < VirtioRng.QUEUE_SIZE; i++) {
            driver.addWritable(64);
        }
        kick();
        assertEquals(VirtioRng.QUEUE_SIZE, driver.usedEntries().size());
        assertEquals(List.of(InterruptTrigger.QUEUE), context.interrupts());
        assertEquals(64L * VirtioRng.QUEUE_SIZE, rng.bytesServed());
    }

    @Test
    void inactiveOrResetDeviceIgnoresNotifications() {
        rng = new VirtioRng(source);
        driver.addWritable(8);
        rng.queueNotify(VirtioRng.REQUESTQ);
        assertTrue(driver.usedEntries().isEmpty(), "before activation");
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(driver.configuredQueue()));
        rng.activate(context);
        rng.reset();
        rng.queueNotify(VirtioRng.REQUESTQ);
        assertTrue(driver.usedEntries().isEmpty(), "after reset");
        assertTrue(source.requests.isEmpty());
    }

    @Test
    void notificationForAQueueThatDoesNotExistIsIgnored() {
        activate(source);
        driver.addWritable(8);
        rng.queueNotify(1);
        rng.queueNotify(-1);
        assertTrue(driver.usedEntries().isEmpty());
        kick();
        assertEquals(8, driver.usedEntries().get(0).len());
    }

    @Test
    void bytesDifferBetweenRequestsFromTheHost() {
        activate(GetRandom.INSTANCE);
        driver.addWritable(4096);
        kick();
        byte[] bytes = driver.usedEntries().get(0).written();
        assertEquals(4096, bytes.length);
        int[] counts = new int[256];
        for (byte b : bytes) {
            counts[b & 0xff]++;
        }
        long distinct = Arrays.stream(counts).filter(c -> c > 0).count();
        // 4096 uniform bytes cover all 256 values with overwhelming probability (miss chance ~1e-5 each).
        assertTrue(distinct >= 250, "byte values seen: " + distinct);
        assertNotEquals(0, Arrays.stream(counts).max().getAsInt());
    }
}
