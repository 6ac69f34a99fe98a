package org.example.krun.echo.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;

/** The echo device against a driver-side mock queue, as a guest driver would use it. */
class EchoDeviceTest {
    private final TestGuestMemory ram = TestGuestMemory.create(1 << 20);
    private final MockDriverQueue driver = new MockDriverQueue(ram, EchoDevice.QUEUE_SIZE);
    private final EchoDevice device = new EchoDevice();
    private FakeDeviceContext context;

    @BeforeEach
    void activate() {
        context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1, List.of(driver.configuredQueue()));
        device.activate(context);
    }

    @AfterEach
    void close() {
        device.close();
        ram.close();
    }

    @Test
    void returnsTheDriversBytesInItsWritableBuffer() {
        driver.addChain(List.of("hello".getBytes(US_ASCII)), List.of(16));
        device.queueNotify(EchoDevice.QUEUE);

        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(1, used.size());
        assertEquals(5, used.get(0).len());
        assertArrayEquals("hello".getBytes(US_ASCII), used.get(0).written());
        assertEquals(List.of(InterruptTrigger.QUEUE), context.interrupts(), "one interrupt for the used buffer");
    }

    @Test
    void echoesOnlyWhatFitsTheWritableBuffer() {
        driver.addChain(List.of("0123456789".getBytes(US_ASCII)), List.of(4));
        device.queueNotify(EchoDevice.QUEUE);

        MockDriverQueue.Used used = driver.usedEntries().get(0);
        assertArrayEquals("0123".getBytes(US_ASCII), used.written());
    }

    @Test
    void bufferOutsideGuestRamIsReturnedEmptyAndTheQueueGoesOn() {
        int[] d = driver.reserveDescriptors(2);
        driver.writeDescriptor(d[0], 1L << 40, 8, MockDriverQueue.DESC_F_NEXT, d[1]);
        driver.writeDescriptor(d[1], driver.allocate(8), 8, MockDriverQueue.DESC_F_WRITE, 0);
        driver.makeAvailable(d[0]);
        driver.addChain(List.of(new byte[] {42}), List.of(1));
        device.queueNotify(EchoDevice.QUEUE);

        List<MockDriverQueue.Used> used = driver.usedEntries();
        assertEquals(0, used.get(0).len());
        assertArrayEquals(new byte[] {42}, used.get(1).written());
        assertTrue(context.resetReasons().isEmpty(), "a bad buffer does not break the device");
    }

    @Test
    void factoryRefusesOptionsItDoesNotKnow() {
        EchoDeviceFactory factory = new EchoDeviceFactory();
        assertEquals(EchoDevice.DEVICE_ID, factory.create(new GenericDeviceSpec("echo", Map.of())).deviceType());
        assertThrows(VmConfigException.class, () -> factory.create(new GenericDeviceSpec("echo", Map.of("size", "1"))));
    }
}
