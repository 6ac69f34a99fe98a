package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.TestGuestMemory;

/** What every device gets from its base: activation, config space, malformed chains, requests off the loop. */
class AbstractVirtioDeviceTest {

    private TestGuestMemory ram;
    private MockDriverQueue driver;
    private FakeDeviceContext context;
    private final ExecutorService workers = Executors.newFixedThreadPool(2);

    /** A device that echoes the length of what it reads, on the loop or on workers; records its hooks. */
    private final class Echo extends AbstractVirtioDevice<List<String>> {
        final List<String> hooks = new ArrayList<>();
        volatile CountDownLatch block;
        volatile boolean offLoop;
        volatile RuntimeException throwing;
        volatile Error erroring;
        volatile boolean finished;
        final CountDownLatch started = new CountDownLatch(1);
        Duration drain = Duration.ofSeconds(5);

        int requestsInFlightForTest() {
            Active<List<String>> a = active();
            return a == null ? 0 : a.requestsInFlight();
        }

        Active<List<String>> activeForTest() {
            return active();
        }

        Echo() {
            super("echo", 63, 1L << 3, 1, 16, 8);
            config().putInt(0, 0x11223344).driverWritable(4, 2);
        }

        @Override
        protected List<String> onActivate(Active<List<String>> a) {
            hooks.add("activate");
            return new ArrayList<>();
        }

        @Override
        protected void onQueueNotify(Active<List<String>> a, int queue) {
            DescriptorChain chain;
            while ((chain = a.pop(queue)) != null) {
                int length = (int) chain.readableBytes();
                if (!offLoop) {
                    a.addUsed(queue, chain.head(), length);
                    continue;
                }
                a.submit(workers, queue, chain.head(), () -> {
                    started.countDown();
                    try {
                        CountDownLatch b = block;
                        if (b != null) {
                            b.await();
                        }
                        if (erroring != null) {
                            throw erroring;
                        }
                        if (throwing != null) {
                            throw throwing;
                        }
                        return length;
                    } finally {
                        finished = true;
                    }
                });
            }
        }

        @Override
        protected void onDeactivate(Active<List<String>> a) {
            hooks.add("deactivate");
        }

        @Override
        protected void onReset(Active<List<String>> a) {
            hooks.add("reset");
        }

        @Override
        protected void onDeviceReset() {
            hooks.add("device reset");
        }

        @Override
        protected void onClose() {
            hooks.add("close");
        }

        @Override
        protected Duration drainTimeout() {
            return drain;
        }
    }

    @BeforeEach
    void setUp() {
        ram = TestGuestMemory.create(1 << 20);
        driver = new MockDriverQueue(ram, 16);
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(driver.configuredQueue()));
    }

    @AfterEach
    void tearDown() {
        workers.shutdownNow();
        ram.close();
    }

    @Test
    void describesItselfToTheTransportFromItsConstructor() {
        Echo d = new Echo();
        assertEquals(63, d.deviceType());
        assertEquals(1L << 3, d.deviceFeatures());
        assertEquals(1, d.queueCount());
        assertEquals(16, d.queueMaxSize(0));
        assertEquals(8, d.configSize());
    }

    @Test
    void configSpaceIsReadOnlyOutsideTheRangesTheDeviceOpens() {
        Echo d = new Echo();
        d.writeConfig(0, new byte[] {1, 2, 3, 4, 5, 6, 7, 8});
        byte[] back = new byte[8];
        d.readConfig(0, back);
        assertEquals(List.of((byte) 0x44, (byte) 0x33, (byte) 0x22, (byte) 0x11, (byte) 5, (byte) 6, (byte) 0, (byte) 0),
                List.of(back[0], back[1], back[2], back[3], back[4], back[5], back[6], back[7]));
    }

    @Test
    void servesOnlyWhileActiveAndInterruptsOncePerBatch() {
        Echo d = new Echo();
        driver.addReadable(new byte[3]);
        d.queueNotify(0);
        assertTrue(driver.usedEntries().isEmpty(), "inactive: nothing served");

        d.activate(context);
        driver.addReadable(new byte[5]);
        d.queueNotify(0);
        assertEquals(List.of(3, 5), driver.usedEntries().stream().map(MockDriverQueue.Used::len).toList());
        assertEquals(List.of(InterruptTrigger.QUEUE), context.interrupts());

        d.reset();
        driver.addReadable(new byte[1]);
        d.queueNotify(0);
        assertTrue(driver.usedEntries().isEmpty(), "reset: inactive again");
        assertEquals(List.of("activate", "deactivate", "reset", "device reset"), d.hooks);
    }

    @Test
    void aMalformedChainGoesBackUnusedAndTheRestAreServed() {
        Echo d = new Echo();
        d.activate(context);
        int[] loop = driver.reserveDescriptors(2);
        long buffer = driver.allocate(16);
        driver.writeDescriptor(loop[0], buffer, 16, MockDriverQueue.DESC_F_NEXT, loop[1]);
        driver.writeDescriptor(loop[1], buffer, 16, MockDriverQueue.DESC_F_NEXT, loop[0]);
        driver.makeAvailable(loop[0]);
        driver.addReadable(new byte[7]);
        d.queueNotify(0);
        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(2, used.size());
        assertEquals(0, used.get(0).len(), "the looping chain comes back unused");
        assertEquals(7, used.get(1).len());
        assertTrue(context.resetReasons().isEmpty());
    }

    @Test
    void aQueueTheDriverBrokeFailsTheActivationUntilReset() {
        Echo d = new Echo();
        d.activate(context);
        driver.setAvailIndex(100); // moved by more than the queue size
        d.queueNotify(0);
        assertEquals(1, context.resetReasons().size());
        assertTrue(driver.usedEntries().isEmpty());
        d.queueNotify(0);
        assertEquals(1, context.resetReasons().size(), "a failed activation serves nothing more");
    }

    @Test
    void requestsOffTheLoopComeBackWithTheirLengths() throws Exception {
        Echo d = new Echo();
        d.offLoop = true;
        d.activate(context);
        driver.addReadable(new byte[4]);
        driver.addReadable(new byte[9]);
        d.queueNotify(0);
        awaitUsed(2);
        assertEquals(List.of(4, 9), driver.usedEntries().stream().map(MockDriverQueue.Used::len).sorted().toList());
    }

    @Test
    void aRequestThatFailsEvenWithAnErrorStillReturnsItsChain() throws Exception {
        Echo d = new Echo();
        d.offLoop = true;
        d.activate(context);
        d.erroring = new OutOfMemoryError("a guest-sized allocation");
        driver.addReadable(new byte[4]);
        d.queueNotify(0);
        awaitUsed(1);
        assertEquals(0, driver.usedEntries().getFirst().len());
    }

    @Test
    void resetWaitsForRequestsRunningAndDropsTheirCompletions() throws Exception {
        Echo d = new Echo();
        d.offLoop = true;
        d.block = new CountDownLatch(1);
        d.activate(context);
        driver.addReadable(new byte[4]);
        d.queueNotify(0);
        Thread releaser = Thread.ofPlatform().start(() -> {
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                return;
            }
            d.block.countDown();
        });
        awaitRunning(d);
        d.reset();
        assertTrue(d.finished, "reset returned only once the request running had ended");
        releaser.join();
        assertTrue(driver.usedEntries().isEmpty(), "the driver reset: the chain belongs to nobody");
        assertFalse(d.touchesGuestMemoryAfterClose());
    }

    @Test
    void aRequestStuckBeyondTheDrainTimeoutIsReportedSoGuestRamStaysMapped() throws Exception {
        Echo d = new Echo();
        d.offLoop = true;
        d.drain = Duration.ofMillis(100);
        d.block = new CountDownLatch(1);
        d.activate(context);
        driver.addReadable(new byte[4]);
        d.queueNotify(0);
        awaitRunning(d);
        d.close();
        assertTrue(d.touchesGuestMemoryAfterClose());
        d.block.countDown();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(5);
        while (d.touchesGuestMemoryAfterClose() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertFalse(d.touchesGuestMemoryAfterClose(), "once the request ended, nothing touches guest memory");
        assertEquals(List.of("activate", "deactivate", "reset", "close"), d.hooks);
    }

    @Test
    void closeOfAnInactiveDeviceOnlyCloses() {
        Echo d = new Echo();
        d.close();
        d.close();
        assertEquals(List.of("close"), d.hooks);
        assertNull(d.activeForTest());
    }

    private void awaitUsed(int n) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        // The FakeDeviceContext's loop runs completions inline on the worker thread.
        while (driver.usedIndex() < n && System.nanoTime() < deadline) {
            Thread.sleep(2);
        }
        assertEquals(n, driver.usedIndex());
    }

    private static void awaitRunning(Echo d) throws InterruptedException {
        assertTrue(d.started.await(10, TimeUnit.SECONDS), "the request started");
        assertEquals(1, d.requestsInFlightForTest());
    }
}
