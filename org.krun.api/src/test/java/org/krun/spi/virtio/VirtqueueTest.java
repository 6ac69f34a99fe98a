package org.krun.spi.virtio;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;

class VirtqueueTest {

    private final TestGuestMemory ram = TestGuestMemory.create(4 << 20);
    private final GuestMemory mem = ram.memory();

    @AfterEach
    void closeMemory() {
        ram.close();
    }

    @Test
    void popReturnsNullWhenDriverMadeNothingAvailable() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();

        assertNull(q.pop(mem));
        assertEquals(0, q.pending(mem));
        assertEquals(0, q.nextAvail());
    }

    @Test
    void popThenAddUsedRoundTripsDataAndLength() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();
        int head = driver.addChain(List.of("ping".getBytes(US_ASCII)), List.of(16));

        DescriptorChain chain = q.pop(mem);
        assertNotNull(chain);
        assertEquals(head, chain.head());
        assertEquals(2, chain.descriptorCount());
        assertEquals(4, chain.readableBytes());
        assertEquals(16, chain.writableBytes());
        assertArrayEquals("ping".getBytes(US_ASCII), chain.reader(mem).readAll());
        ChainWriter w = chain.writer(mem);
        w.write("pong!".getBytes(US_ASCII));
        q.addUsed(mem, chain.head(), (int) w.position());

        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(1, used.size());
        assertEquals(head, used.get(0).id());
        assertEquals(5, used.get(0).len());
        assertArrayEquals("pong!".getBytes(US_ASCII), used.get(0).written());
        assertEquals(1, driver.usedIndex());
        assertEquals(8, driver.freeDescriptorCount());
        assertNull(q.pop(mem));
    }

    @Test
    void chainsArePoppedInAvailOrderAndMayBeUsedOutOfOrder() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();
        int a = driver.addReadable(new byte[] {1});
        int b = driver.addReadable(new byte[] {2});
        int c = driver.addReadable(new byte[] {3});
        assertEquals(3, q.pending(mem));

        DescriptorChain ca = q.pop(mem);
        DescriptorChain cb = q.pop(mem);
        DescriptorChain cc = q.pop(mem);
        assertEquals(List.of(a, b, c), List.of(ca.head(), cb.head(), cc.head()));
        assertEquals(3, cc.reader(mem).readU8());
        q.addUsed(mem, cc.head(), 0);
        q.addUsed(mem, ca.head(), 0);
        q.addUsed(mem, cb.head(), 0);

        assertEquals(List.of(c, a, b), driver.usedEntries().stream().map(MockDriverQueue.Used::id).toList());
        assertEquals(3, q.nextUsed());
    }

    @Test
    void unpublishedChainsAreNotSeenUntilPublished() {
        MockDriverQueue driver = new MockDriverQueue(ram, 4);
        Virtqueue q = driver.configuredQueue();
        driver.setAutoPublish(false);
        driver.addReadable(new byte[] {1});

        assertNull(q.pop(mem));
        driver.publish();
        assertNotNull(q.pop(mem));
    }

    @Test
    @Timeout(60)
    void indicesWrapAroundAfter65536Chains() {
        MockDriverQueue driver = new MockDriverQueue(ram, 4);
        Virtqueue q = driver.configuredQueue();
        int total = 70_000;
        // Keep up to 3 chains in flight so that avail and used slots straddle the 16-bit wrap.
        int sent = 0;
        int received = 0;
        while (received < total) {
            while (sent < total && driver.freeDescriptorCount() > 1 && sent - received < 3) {
                driver.addChain(List.of(new byte[] {(byte) sent}), List.of());
                sent++;
            }
            DescriptorChain chain = q.pop(mem);
            assertNotNull(chain, "chain " + received);
            assertEquals((byte) received, (byte) chain.reader(mem).readU8(), "chain " + received);
            q.addUsed(mem, chain.head(), received);
            List<MockDriverQueue.Used> used = driver.usedEntries();
            assertEquals(1, used.size());
            assertEquals(received, used.get(0).len());
            received++;
        }
        assertEquals(total & 0xffff, q.nextAvail());
        assertEquals(total & 0xffff, q.nextUsed());
        assertEquals(total & 0xffff, driver.usedIndex());
        assertNull(q.pop(mem));
    }

    // ---- used buffer notification suppression (virtio 1.2 §2.7.7)

    @Test
    void needsInterruptWithoutEventIdxFollowsNoInterruptFlag() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();

        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        assertTrue(q.needsInterrupt(mem));

        driver.setNoInterrupt(true);
        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        assertFalse(q.needsInterrupt(mem));

        driver.setNoInterrupt(false);
        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        assertTrue(q.needsInterrupt(mem));
    }

    @Test
    void needsInterruptIsFalseWhenNothingWasUsedSinceLastAsked() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();
        assertFalse(q.needsInterrupt(mem));

        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        assertTrue(q.needsInterrupt(mem));
        assertFalse(q.needsInterrupt(mem));
    }

    @Test
    void needsInterruptWithEventIdxOnlyWhenUsedEventIsCrossed() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue(true);
        driver.setUsedEvent(2); // interrupt me once the used entry with index 2 is written

        boolean[] interrupted = new boolean[4];
        for (int i = 0; i < 4; i++) {
            driver.addReadable(new byte[1]);
            q.addUsed(mem, q.pop(mem).head(), 0);
            interrupted[i] = q.needsInterrupt(mem);
            driver.usedEntries();
        }
        assertArrayEquals(new boolean[] {false, false, true, false}, interrupted);
    }

    @Test
    void needsInterruptWithEventIdxCountsABatchThatStepsOverUsedEvent() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue(true);
        for (int i = 0; i < 6; i++) {
            driver.addReadable(new byte[1]);
        }
        driver.setUsedEvent(4);
        for (int i = 0; i < 3; i++) {
            q.addUsed(mem, q.pop(mem).head(), 0);
        }
        assertFalse(q.needsInterrupt(mem)); // used 0..2, event at 4
        for (int i = 0; i < 3; i++) {
            q.addUsed(mem, q.pop(mem).head(), 0);
        }
        assertTrue(q.needsInterrupt(mem)); // used 3..5 includes 4
    }

    @Test
    void needsInterruptWithEventIdxIgnoresNoInterruptFlag() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue(true);
        driver.setNoInterrupt(true);
        driver.setUsedEvent(0);

        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        assertTrue(q.needsInterrupt(mem));
    }

    @Test
    void needsInterruptWithEventIdxAcrossTheIndexWrap() {
        MockDriverQueue driver = new MockDriverQueue(ram, 4);
        Virtqueue q = driver.configuredQueue(true);
        driver.setUsedEvent(0x8000); // far away: no interrupts while we advance
        for (int i = 0; i < 0xfffe; i++) {
            driver.addReadable(new byte[1]);
            q.addUsed(mem, q.pop(mem).head(), 0);
            driver.usedEntries();
            q.needsInterrupt(mem);
        }
        assertEquals(0xfffe, q.nextUsed());
        driver.setUsedEvent(0x0001);

        driver.addReadable(new byte[1]);
        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        q.addUsed(mem, q.pop(mem).head(), 0); // used 0xfffe, 0xffff
        assertFalse(q.needsInterrupt(mem));
        driver.usedEntries();

        driver.addReadable(new byte[1]);
        driver.addReadable(new byte[1]);
        q.addUsed(mem, q.pop(mem).head(), 0);
        q.addUsed(mem, q.pop(mem).head(), 0); // used 0x0000, 0x0001
        assertTrue(q.needsInterrupt(mem));
    }

    // ---- available buffer notification suppression (virtio 1.2 §2.7.10)

    @Test
    void popWritesAvailEventWithEventIdx() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue(true);
        driver.addReadable(new byte[1]);
        driver.addReadable(new byte[1]);

        q.pop(mem);
        assertEquals(1, driver.availEvent());
        q.pop(mem);
        assertEquals(2, driver.availEvent());
    }

    @Test
    void popLeavesAvailEventAloneWithoutEventIdx() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();
        driver.addReadable(new byte[1]);

        q.pop(mem);
        assertEquals(0, driver.availEvent());
    }

    @Test
    void enableNotificationWithoutEventIdxTogglesNoNotifyFlag() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();

        assertFalse(q.enableNotification(mem, false));
        assertEquals(MockDriverQueue.USED_F_NO_NOTIFY, driver.usedFlags());
        assertFalse(q.enableNotification(mem, true));
        assertEquals(0, driver.usedFlags());
    }

    @Test
    void enableNotificationWithEventIdxWritesAvailEventAndLeavesFlags() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue(true);
        driver.addReadable(new byte[1]);
        q.pop(mem);
        driver.memory().setShort(driver.usedRing() + 4 + 8L * 8, (short) 0x1234);

        assertFalse(q.enableNotification(mem, true));
        assertEquals(1, driver.availEvent());
        assertEquals(0, driver.usedFlags());
    }

    @Test
    void enableNotificationReportsBuffersAlreadyAvailable() {
        MockDriverQueue driver = new MockDriverQueue(ram, 8);
        Virtqueue q = driver.configuredQueue();
        driver.addReadable(new byte[1]);

        assertTrue(q.enableNotification(mem, true));
        assertTrue(q.enableNotification(mem, false));
        q.pop(mem);
        assertFalse(q.enableNotification(mem, true));
    }

    // ---- indirect descriptors (virtio 1.2 §2.7.5.3)

    @Test
    void indirectChainIsFlattenedIntoItsBuffers() {
        MockDriverQueue driver = new MockDriverQueue(ram, 4);
        Virtqueue q = driver.configuredQueue();
        int head = driver.addIndirectChain(List.of("hel".getBytes(US_ASCII), "lo".getBytes(US_ASCII)), List.of(3, 4));

        DescriptorChain chain = q.pop(mem);
        assertEquals(head, chain.head());
        assertEquals(4, chain.descriptorCount());
        assertEquals(5, chain.readableBytes());
        assertEquals(7, chain.writableBytes());
        assertArrayEquals("hello".getBytes(US_ASCII), chain.reader(mem).readAll());
        ChainWriter w = chain.writer(mem);
        w.write("indirect".getBytes(US_ASCII), 0, 7);
        q.addUsed(mem, head, (int) w.position());

        MockDriverQueue.Used used = driver.usedEntries().get(0);
        assertEquals(head, used.id());
        assertArrayEquals("indirec".getBytes(US_ASCII), used.written());
    }

    @Test
    void indirectDescriptorIgnoresItsOwnWriteFlag() {
        MockDriverQueue driver = new MockDriverQueue(ram, 4);
        Virtqueue q = driver.configuredQueue();
        long table = ram.allocate(16, 16);
        long buf = driver.writeBuffer("x".getBytes(US_ASCII));
        driver.writeDescriptor(table, 0, buf, 1, 0, 0);
        int head = driver.reserveDescriptors(1)[0];
        driver.writeDescriptor(head, table, 16, MockDriverQueue.DESC_F_INDIRECT | MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(head);

        DescriptorChain chain = q.pop(mem);
        assertEquals(1, chain.readableBytes());
        assertEquals(0, chain.writableBytes());
    }

    // ---- configuration (virtio 1.2 §2.7, §4.2.2)

    @Test
    void validateAcceptsTheMockLayout() {
        MockDriverQueue driver = new MockDriverQueue(ram, 256);
        assertNull(driver.layout().problem(mem, 256));
    }

    @Test
    void validateRejectsSizesThatAreNotPowersOfTwoUpToMax() {
        MockDriverQueue driver = new MockDriverQueue(ram, 16);
        QueueLayout l = driver.layout();
        for (int size : new int[] {0, -16, 3, 12, 32}) {
            assertProblem("queue size", withSize(l, size).problem(mem, 16));
        }
        assertNull(withSize(l, 8).problem(mem, 16));
    }

    private static QueueLayout withSize(QueueLayout l, int size) {
        return new QueueLayout(size, l.descTable(), l.availRing(), l.usedRing());
    }

    @Test
    void validateRejectsMisalignedAreas() {
        MockDriverQueue driver = new MockDriverQueue(ram, 16);
        QueueLayout l = driver.layout();
        assertProblem("misaligned", new QueueLayout(16, l.descTable() + 8, l.availRing(), l.usedRing()).problem(mem, 16));
        assertProblem("misaligned", new QueueLayout(16, l.descTable(), l.availRing() + 1, l.usedRing()).problem(mem, 16));
        assertProblem("misaligned", new QueueLayout(16, l.descTable(), l.availRing(), l.usedRing() + 2).problem(mem, 16));
        assertNull(l.problem(mem, 16));
    }

    @Test
    void validateRejectsRingsOutsideGuestRam() {
        MockDriverQueue driver = new MockDriverQueue(ram, 16);
        QueueLayout l = driver.layout();
        long end = mem.size();
        // half the table past the end
        assertProblem("outside", new QueueLayout(16, end - 16 * 8, l.availRing(), l.usedRing()).problem(mem, 16));
        // used_event past the end
        assertProblem("outside", new QueueLayout(16, l.descTable(), end - (6 + 2 * 16) + 2, l.usedRing()).problem(mem, 16));
        // avail_event (at +132) past the end
        assertProblem("outside", new QueueLayout(16, l.descTable(), l.availRing(), end - 128).problem(mem, 16));
        // the whole used ring, avail_event included, fits
        assertNull(new QueueLayout(16, l.descTable(), l.availRing(), end - 136).problem(mem, 16));
        assertProblem("outside", new QueueLayout(16, -16, l.availRing(), l.usedRing()).problem(mem, 16));
    }

    private static void assertProblem(String expected, String problem) {
        assertNotNull(problem, "expected a problem mentioning '" + expected + "'");
        assertTrue(problem.contains(expected), problem);
    }

    @Test
    void aDisabledQueueIsNotReadyAndHasNothingToPop() {
        Virtqueue q = Virtqueue.disabled();
        assertFalse(q.ready());
        assertNull(q.pop(mem));
        assertEquals(0, q.pending(mem));
        assertFalse(q.needsInterrupt(mem));
        assertThrows(IllegalStateException.class, () -> q.addUsed(mem, 0, 0));
    }

    @Test
    void constructorRejectsSizesThatAreNotPowersOfTwoUpTo32768() {
        for (int size : new int[] {0, -1, 3, 65536}) {
            assertThrows(IllegalArgumentException.class, () -> new Virtqueue(new QueueLayout(size, 0, 0, 0), false),
                    "size " + size);
        }
        assertEquals(32768, new Virtqueue(new QueueLayout(32768, 0, 0, 0), false).size());
    }

    @Test
    void aDeviceCannotMoveOrResizeItsQueue() {
        for (java.lang.reflect.Method m : Virtqueue.class.getMethods()) {
            assertFalse(m.getName().startsWith("set"), "Virtqueue." + m.getName() + " lets a device reconfigure its queue");
        }
    }
}
