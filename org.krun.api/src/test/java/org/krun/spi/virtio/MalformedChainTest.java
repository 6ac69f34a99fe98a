package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.krun.spi.virtio.MockDriverQueue.DESC_F_INDIRECT;
import static org.krun.spi.virtio.MockDriverQueue.DESC_F_NEXT;
import static org.krun.spi.virtio.MockDriverQueue.DESC_F_WRITE;

import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;
import org.krun.spi.memory.TestGuestMemory;

/** A driver's malformed chains surface only as {@link InvalidChainException} (or, on access, GuestMemoryException). */
class MalformedChainTest {

    private static final int SIZE = 8;

    private final TestGuestMemory ram = TestGuestMemory.create(1 << 20);
    private final GuestMemory mem = ram.memory();
    private final MockDriverQueue driver = new MockDriverQueue(ram, SIZE);
    private final Virtqueue queue = driver.configuredQueue();

    @AfterEach
    void closeMemory() {
        ram.close();
    }

    /** Pops, expecting the chain at {@code head} to be rejected with its head kept. */
    private InvalidChainException rejected(int head) {
        InvalidChainException e = assertThrows(InvalidChainException.class, () -> queue.pop(mem));
        assertEquals(head, e.head(), e.getMessage());
        return e;
    }

    /** After a rejected chain is returned with length 0, the next good chain goes through. */
    private void queueKeepsWorkingAfterReturning(int badHead) {
        queue.addUsed(mem, badHead, 0);
        int good = driver.addReadable(new byte[] {42});
        DescriptorChain chain = queue.pop(mem);
        assertEquals(good, chain.head());
        assertEquals(42, chain.reader(mem).readU8());
        queue.addUsed(mem, good, 1);
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(List.of(badHead, good), used.stream().map(MockDriverQueue.Used::id).toList());
        assertEquals(0, used.get(0).len());
    }

    @Test
    void chainThatLoopsIsRejected() {
        int[] d = driver.reserveDescriptors(3);
        long buf = driver.allocate(4);
        driver.writeDescriptor(d[0], buf, 4, DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], buf, 4, DESC_F_NEXT, d[2]);
        driver.writeDescriptor(d[2], buf, 4, DESC_F_NEXT, d[0]);
        driver.makeAvailable(d[0]);

        rejected(d[0]);
        queueKeepsWorkingAfterReturning(d[0]);
    }

    @Test
    void descriptorPointingToItselfIsRejected() {
        int[] d = driver.reserveDescriptors(1);
        driver.writeDescriptor(d[0], driver.allocate(4), 4, DESC_F_NEXT, d[0]);
        driver.makeAvailable(d[0]);

        rejected(d[0]);
        queueKeepsWorkingAfterReturning(d[0]);
    }

    @Test
    void nextIndexOutOfRangeIsRejected() {
        int[] d = driver.reserveDescriptors(1);
        driver.writeDescriptor(d[0], driver.allocate(4), 4, DESC_F_NEXT, SIZE);
        driver.makeAvailable(d[0]);

        rejected(d[0]);
        queueKeepsWorkingAfterReturning(d[0]);
    }

    @Test
    void headOutOfRangeIsRejectedWithoutAHead() {
        driver.makeAvailable(SIZE + 3);

        rejected(-1);
    }

    @Test
    void headOfAllOnesIsRejectedWithoutAHead() {
        driver.makeAvailable(0xffff);

        rejected(-1);
    }

    @Test
    void availIdxMovingByMoreThanTheQueueSizeIsRejectedEveryTime() {
        driver.setAvailIndex(SIZE + 1);

        rejected(-1);
        rejected(-1); // the queue is broken until reset: nothing was consumed
        assertEquals(0, queue.nextAvail());
    }

    @Test
    void availIdxMovingByExactlyTheQueueSizeIsAccepted() {
        for (int i = 0; i < SIZE; i++) {
            driver.addReadable(new byte[] {(byte) i});
        }
        for (int i = 0; i < SIZE; i++) {
            assertEquals(i, queue.pop(mem).reader(mem).readU8());
        }
        assertNull(queue.pop(mem));
    }

    @Test
    void nestedIndirectTableIsRejected() {
        long inner = ram.allocate(16, 16);
        driver.writeDescriptor(inner, 0, driver.allocate(4), 4, 0, 0);
        long outer = ram.allocate(16, 16);
        driver.writeDescriptor(outer, 0, inner, 16, DESC_F_INDIRECT, 0);
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, outer, 16, DESC_F_INDIRECT, 0);
        driver.makeAvailable(head);

        rejected(head);
        queueKeepsWorkingAfterReturning(head);
    }

    @Test
    void indirectDescriptorWithNextIsRejected() {
        long table = ram.allocate(16, 16);
        driver.writeDescriptor(table, 0, driver.allocate(4), 4, 0, 0);
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], table, 16, DESC_F_INDIRECT | DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], driver.allocate(4), 4, 0, 0);
        driver.makeAvailable(d[0]);

        rejected(d[0]);
        queueKeepsWorkingAfterReturning(d[0]);
    }

    @Test
    void indirectTableLengthNotAMultipleOf16IsRejected() {
        for (int length : new int[] {0, 8, 24, 17}) {
            long table = ram.allocate(32, 16);
            driver.writeDescriptor(table, 0, driver.allocate(4), 4, 0, 0);
            int head = driver.reserveDescriptors(1)[0];
            driver.writeDescriptor(head, table, length, DESC_F_INDIRECT, 0);
            driver.makeAvailable(head);

            rejected(head);
            queueKeepsWorkingAfterReturning(head);
        }
    }

    @Test
    void indirectTableLongerThanTheChainLimitIsRejected() {
        int entries = Virtqueue.MAX_CHAIN_DESCRIPTORS + 1;
        long table = ram.allocate(16L * entries, 16);
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, table, 16 * entries, DESC_F_INDIRECT, 0);
        driver.makeAvailable(head);

        rejected(head);
    }

    @Test
    void indirectTableOutsideGuestRamIsRejected() {
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, mem.size() - 16, 32, DESC_F_INDIRECT, 0);
        driver.makeAvailable(head);

        rejected(head);
        queueKeepsWorkingAfterReturning(head);
    }

    @Test
    void loopInsideIndirectTableIsRejected() {
        long table = ram.allocate(32, 16);
        long buf = driver.allocate(4);
        driver.writeDescriptor(table, 0, buf, 4, DESC_F_NEXT, 1);
        driver.writeDescriptor(table, 1, buf, 4, DESC_F_NEXT, 0);
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, table, 32, DESC_F_INDIRECT, 0);
        driver.makeAvailable(head);

        rejected(head);
        queueKeepsWorkingAfterReturning(head);
    }

    @Test
    void nextOutOfRangeInsideIndirectTableIsRejected() {
        long table = ram.allocate(32, 16);
        long buf = driver.allocate(4);
        driver.writeDescriptor(table, 0, buf, 4, DESC_F_NEXT, 1);
        driver.writeDescriptor(table, 1, buf, 4, DESC_F_NEXT, 2); // the table has two entries
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, table, 32, DESC_F_INDIRECT, 0);
        driver.makeAvailable(head);

        rejected(head);
    }

    @Test
    void readableAfterWritableIsRejected() {
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], driver.allocate(4), 4, DESC_F_WRITE | DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], driver.allocate(4), 4, 0, 0);
        driver.makeAvailable(d[0]);

        rejected(d[0]);
        queueKeepsWorkingAfterReturning(d[0]);
    }

    @Test
    void readableAfterWritableInsideIndirectTableIsRejected() {
        long table = ram.allocate(32, 16);
        driver.writeDescriptor(table, 0, driver.allocate(4), 4, DESC_F_WRITE | DESC_F_NEXT, 1);
        driver.writeDescriptor(table, 1, driver.allocate(4), 4, 0, 0);
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, table, 32, DESC_F_INDIRECT, 0);
        driver.makeAvailable(head);

        rejected(head);
    }

    @Test
    void buffersOutsideGuestRamFailOnlyWhenTouched() {
        long end = mem.size();
        int[] d = driver.reserveDescriptors(3);
        driver.writeDescriptor(d[0], end - 2, 4, DESC_F_NEXT, d[1]); // straddles the end of RAM
        driver.writeDescriptor(d[1], 0xffff_ffff_ffff_f000L, 16, DESC_F_WRITE | DESC_F_NEXT, d[2]);
        driver.writeDescriptor(d[2], end, 16, DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);

        DescriptorChain chain = queue.pop(mem);
        assertNotNull(chain);
        assertEquals(4, chain.readableBytes());
        assertEquals(32, chain.writableBytes());

        ChainReader r = chain.reader(mem);
        assertThrows(GuestMemoryException.class, r::readAll);
        ChainWriter w = chain.writer(mem);
        assertThrows(GuestMemoryException.class, () -> w.writeU8(1));
        ChainWriter skipping = chain.writer(mem);
        skipping.skip(16); // skipping touches nothing
        assertThrows(GuestMemoryException.class, () -> skipping.take(1));

        queueKeepsWorkingAfterReturning(d[0]);
    }

    @Test
    void zeroLengthBufferAnywhereIsHarmless() {
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], -4096, 0, DESC_F_NEXT, d[1]);
        long buf = driver.writeBuffer(new byte[] {7});
        driver.writeDescriptor(d[1], buf, 1, 0, 0);
        driver.makeAvailable(d[0]);

        DescriptorChain chain = queue.pop(mem);
        assertArrayEquals(new byte[] {7}, chain.reader(mem).readAll());
    }
}
