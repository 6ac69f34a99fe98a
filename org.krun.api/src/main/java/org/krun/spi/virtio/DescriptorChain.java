package org.krun.spi.virtio;

import java.util.Arrays;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestMemoryException;

/**
 * One descriptor chain taken from a {@link Virtqueue}, flattened (indirect tables resolved) and validated:
 * no loops, no out-of-range indices, device-readable buffers before device-writable ones (virtio 1.2
 * §2.7.4). Buffer addresses are checked against guest RAM when they are accessed. Read it with
 * {@link #reader(GuestMemory)}, fill it with {@link #writer(GuestMemory)}.
 */
public final class DescriptorChain {

    private final int head;
    private final long[] addresses;
    private final int[] lengths;
    private final int readableCount;
    private final int count;

    private DescriptorChain(int head, long[] addresses, int[] lengths, int readableCount, int count) {
        this.head = head;
        this.addresses = addresses;
        this.lengths = lengths;
        this.readableCount = readableCount;
        this.count = count;
    }

    static DescriptorChain parse(GuestMemory mem, Virtqueue queue, int head) {
        long[] addresses = new long[8];
        int[] lengths = new int[8];
        int count = 0;
        int readable = 0;
        boolean sawWritable = false;

        long table = queue.descTableAddress();
        int tableSize = queue.size();
        int index = head;
        boolean indirect = false;
        int visited = 0;
        try {
            while (true) {
                if (++visited > tableSize) {
                    throw new InvalidChainException(head, "descriptor chain loops or exceeds its table");
                }
                long d = table + (long) Virtqueue.DESC_SIZE * index;
                long addr = mem.getLong(d);
                int len = mem.getInt(d + 8);
                int flags = mem.getShort(d + 12) & 0xffff;
                int next = mem.getShort(d + 14) & 0xffff;

                if ((flags & Virtqueue.DESC_F_INDIRECT) != 0) {
                    if (indirect) {
                        throw new InvalidChainException(head, "nested indirect descriptor table");
                    }
                    if ((flags & Virtqueue.DESC_F_NEXT) != 0) {
                        throw new InvalidChainException(head, "indirect descriptor with NEXT set");
                    }
                    long tableLen = len & 0xffffffffL;
                    if (tableLen == 0 || tableLen % Virtqueue.DESC_SIZE != 0
                            || tableLen / Virtqueue.DESC_SIZE > Virtqueue.MAX_CHAIN_DESCRIPTORS) {
                        throw new InvalidChainException(head, "indirect table length " + tableLen + " invalid");
                    }
                    if (!mem.contains(addr, tableLen)) {
                        throw new InvalidChainException(head, "indirect table outside guest RAM");
                    }
                    indirect = true;
                    table = addr;
                    tableSize = (int) (tableLen / Virtqueue.DESC_SIZE);
                    index = 0;
                    visited = 0;
                    continue;
                }

                boolean writable = (flags & Virtqueue.DESC_F_WRITE) != 0;
                if (writable) {
                    sawWritable = true;
                } else if (sawWritable) {
                    throw new InvalidChainException(head, "device-readable descriptor after a device-writable one");
                }
                if (count == Virtqueue.MAX_CHAIN_DESCRIPTORS) {
                    throw new InvalidChainException(head, "descriptor chain too long");
                }
                if (count == addresses.length) {
                    addresses = Arrays.copyOf(addresses, count * 2);
                    lengths = Arrays.copyOf(lengths, count * 2);
                }
                addresses[count] = addr;
                lengths[count] = len;
                count++;
                if (!writable) {
                    readable++;
                }

                if ((flags & Virtqueue.DESC_F_NEXT) == 0) {
                    break;
                }
                if (next >= tableSize) {
                    throw new InvalidChainException(head, "next descriptor " + next + " out of range");
                }
                index = next;
            }
        } catch (GuestMemoryException e) {
            throw new InvalidChainException(head, e.getMessage());
        }
        return new DescriptorChain(head, addresses, lengths, readable, count);
    }

    /** The head index, which {@link Virtqueue#addUsed} takes back. */
    public int head() {
        return head;
    }

    /** Number of descriptors (after resolving indirect tables). */
    public int descriptorCount() {
        return count;
    }

    /** Total bytes the device may read. */
    public long readableBytes() {
        long total = 0;
        for (int i = 0; i < readableCount; i++) {
            total += lengths[i] & 0xffffffffL;
        }
        return total;
    }

    /** Total bytes the device may write. */
    public long writableBytes() {
        long total = 0;
        for (int i = readableCount; i < count; i++) {
            total += lengths[i] & 0xffffffffL;
        }
        return total;
    }

    /** A byte stream over the device-readable buffers. */
    public ChainReader reader(GuestMemory mem) {
        return new ChainReader(mem, addresses, lengths, 0, readableCount);
    }

    /** A byte sink over the device-writable buffers. */
    public ChainWriter writer(GuestMemory mem) {
        return new ChainWriter(mem, addresses, lengths, readableCount, count);
    }
}
