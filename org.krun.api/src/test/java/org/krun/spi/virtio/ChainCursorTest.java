package org.krun.spi.virtio;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemorySegment;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;

/** {@link ChainReader} and {@link ChainWriter}: one byte stream over many descriptors. */
class ChainCursorTest {

    private final TestGuestMemory ram = TestGuestMemory.create(1 << 20);
    private final GuestMemory mem = ram.memory();
    private final MockDriverQueue driver = new MockDriverQueue(ram, 16);
    private final Virtqueue queue = driver.configuredQueue();

    @AfterEach
    void closeMemory() {
        ram.close();
    }

    private DescriptorChain chain(List<byte[]> readable, List<Integer> writableSizes) {
        driver.addChain(readable, writableSizes);
        return queue.pop(mem);
    }

    @Test
    void readerCrossesDescriptorBoundariesAndSkipsEmptyOnes() {
        DescriptorChain c = chain(List.of(new byte[] {1}, new byte[0], new byte[] {2, 3, 4}, new byte[] {5, 6, 7, 8, 9}),
                List.of());
        ChainReader r = c.reader(mem);

        assertEquals(9, r.remaining());
        assertEquals(0x04030201, r.readInt());
        assertEquals(0x0605, r.readU16());
        assertEquals(7, r.readU8());
        assertEquals(2, r.remaining());
        assertEquals(7, r.position());
        assertArrayEquals(new byte[] {8, 9}, r.readAll());
        assertEquals(0, r.read(new byte[4], 0, 4));
    }

    @Test
    void readerReadsLittleEndianLongAcrossThreeBuffers() {
        DescriptorChain c = chain(List.of(new byte[] {1, 2}, new byte[] {3, 4, 5}, new byte[] {6, 7, 8}), List.of());

        assertEquals(0x0807060504030201L, c.reader(mem).readLong());
    }

    @Test
    void readBytesBeyondRemainingThrowsShortChainAndConsumesNothing() {
        DescriptorChain c = chain(List.of("abc".getBytes(US_ASCII), "de".getBytes(US_ASCII)), List.of());
        ChainReader r = c.reader(mem);

        assertThrows(ShortChainException.class, () -> r.readBytes(6));
        assertThrows(ShortChainException.class, r::readLong);
        assertEquals(5, r.remaining());
        assertArrayEquals("abcde".getBytes(US_ASCII), r.readBytes(5));
        assertThrows(ShortChainException.class, r::readU8);
    }

    @Test
    void readStopsAtTheEndOfTheReadableBuffers() {
        DescriptorChain c = chain(List.of("abc".getBytes(US_ASCII)), List.of(8));
        byte[] dst = new byte[10];

        assertEquals(3, c.reader(mem).read(dst, 2, 8));
        assertArrayEquals("abc".getBytes(US_ASCII), java.util.Arrays.copyOfRange(dst, 2, 5));
    }

    @Test
    void writerCrossesDescriptorBoundaries() {
        int head = driver.addChain(List.of(new byte[] {9}), List.of(3, 0, 5, 4));
        DescriptorChain c = queue.pop(mem);
        ChainWriter w = c.writer(mem);

        assertEquals(12, w.remaining());
        w.writeLong(0x0807060504030201L);
        w.writeU16(0x0a09);
        w.writeU8(0x0b);
        assertEquals(11, w.position());
        queue.addUsed(mem, head, (int) w.position());

        assertArrayEquals(new byte[] {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, driver.usedEntries().get(0).written());
    }

    @Test
    void writerNeverTouchesTheReadableBuffers() {
        byte[] readable = {1, 2, 3};
        DescriptorChain c = chain(List.of(readable), List.of(3));
        c.writer(mem).write(new byte[] {7, 7, 7});

        assertArrayEquals(readable, c.reader(mem).readAll());
    }

    @Test
    void writeBeyondRemainingThrowsShortChainAndWritesNothing() {
        int head = driver.addChain(List.of(), List.of(2, 2));
        DescriptorChain c = queue.pop(mem);
        ChainWriter w = c.writer(mem);

        assertThrows(ShortChainException.class, () -> w.write(new byte[] {1, 2, 3, 4, 5}));
        assertThrows(ShortChainException.class, () -> w.writeLong(-1));
        assertEquals(0, w.position());
        assertEquals(4, w.remaining());
        queue.addUsed(mem, head, 4);
        assertArrayEquals(new byte[4], driver.usedEntries().get(0).written());
    }

    @Test
    void writeSomeWritesWhatFits() {
        int head = driver.addChain(List.of(), List.of(1, 2));
        DescriptorChain c = queue.pop(mem);
        ChainWriter w = c.writer(mem);

        assertEquals(3, w.writeSome(new byte[] {1, 2, 3, 4, 5}, 0, 5));
        assertEquals(0, w.remaining());
        assertEquals(0, w.writeSome(new byte[] {6}, 0, 1));
        queue.addUsed(mem, head, (int) w.position());
        assertArrayEquals(new byte[] {1, 2, 3}, driver.usedEntries().get(0).written());
    }

    @Test
    void takeReturnsSegmentsAliasingGuestMemorySplitAtDescriptors() {
        int head = driver.addChain(List.of(), List.of(4, 4));
        DescriptorChain c = queue.pop(mem);
        ChainWriter w = c.writer(mem);

        w.skip(2);
        List<MemorySegment> pieces = w.take(5);
        assertEquals(List.of(2L, 3L), pieces.stream().map(MemorySegment::byteSize).toList());
        byte v = 10;
        for (MemorySegment s : pieces) {
            for (long i = 0; i < s.byteSize(); i++) {
                s.set(JAVA_BYTE, i, v++);
            }
        }
        assertEquals(7, w.position());
        assertEquals(1, w.remaining());
        queue.addUsed(mem, head, 8);
        assertArrayEquals(new byte[] {0, 0, 10, 11, 12, 13, 14, 0}, driver.usedEntries().get(0).written());
    }

    @Test
    void takeAndSkipRefuseMoreThanRemains() {
        DescriptorChain c = chain(List.of(new byte[3]), List.of());
        ChainReader r = c.reader(mem);

        assertThrows(IndexOutOfBoundsException.class, () -> r.take(4));
        assertThrows(IndexOutOfBoundsException.class, () -> r.skip(4));
        assertThrows(IndexOutOfBoundsException.class, () -> r.skip(-1));
        assertEquals(3, r.remaining());
        r.skip(3);
        assertEquals(List.of(), r.take(0));
    }

    @Test
    void chainWithOnlyEmptyBuffersReadsAndWritesNothing() {
        DescriptorChain c = chain(List.of(new byte[0]), List.of(0));

        assertArrayEquals(new byte[0], c.reader(mem).readAll());
        assertEquals(0, c.writer(mem).writeSome(new byte[] {1}, 0, 1));
        assertThrows(ShortChainException.class, () -> c.writer(mem).writeU8(1));
    }
}
