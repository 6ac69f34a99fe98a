package org.krun.spi.virtio;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;

/**
 * The driver side of one split virtqueue (virtio 1.2 §2.7), for device tests. It lays out the descriptor
 * table, the avail ring (with {@code used_event}) and the used ring (with {@code avail_event}) in a
 * {@link TestGuestMemory}, hands out descriptors from a free list and buffers from the memory's allocator,
 * and reads back what the device returned.
 *
 * <p>Typical use: {@code addChain(...)} (published at once unless {@link #setAutoPublish(boolean)} is off),
 * let the device work on {@link #configuredQueue()}, then {@link #usedEntries()} gives each returned chain
 * with the bytes the device wrote, and frees its descriptors for reuse.
 *
 * <p>To build malformed chains, {@link #reserveDescriptors(int)}, {@link #writeDescriptor} and
 * {@link #makeAvailable(int)} poke the rings directly; {@link #setAvailIndex(int)} moves the published
 * index anywhere. The mock trusts the device no more than needed: a used id it did not hand out is
 * reported with no data.
 *
 * <p>Several queues may share one memory (a device's queues always do). Not thread-safe.
 */
public final class MockDriverQueue {

    public static final int DESC_F_NEXT = 1;
    public static final int DESC_F_WRITE = 2;
    public static final int DESC_F_INDIRECT = 4;
    /** avail ring flag (without EVENT_IDX): the driver does not want interrupts. */
    public static final int AVAIL_F_NO_INTERRUPT = 1;
    /** used ring flag (without EVENT_IDX): the device does not want notifications. */
    public static final int USED_F_NO_NOTIFY = 1;
    public static final int DESC_SIZE = 16;

    /**
     * One used ring element as the driver sees it.
     *
     * @param id the chain head the device returned
     * @param len the length the device reported
     * @param written the first {@code len} bytes of the chain's writable buffers (fewer if {@code len}
     *        exceeds them), empty for a chain the mock did not build
     */
    public record Used(int id, int len, byte[] written) {
    }

    /** What the driver remembers about an outstanding chain. */
    private record Outstanding(int[] descriptors, long[] writableAddresses, int[] writableSizes) {
    }

    private final TestGuestMemory ram;
    private final GuestMemory mem;
    private final int size;
    private final long descTable;
    private final long availRing;
    private final long usedRing;

    private final Deque<Integer> freeDescriptors = new ArrayDeque<>();
    private final Map<Integer, Outstanding> outstanding = new HashMap<>();
    private short availIdx;
    private short lastUsedIdx;
    private boolean autoPublish = true;

    /**
     * A queue of {@code size} entries with its rings allocated in {@code ram}: the descriptor table
     * 16-aligned, the avail ring 2-aligned and the used ring 4-aligned, the least the spec requires (§2.7).
     */
    public MockDriverQueue(TestGuestMemory ram, int size) {
        if (size <= 0 || size > 32768 || Integer.bitCount(size) != 1) {
            throw new IllegalArgumentException("queue size must be a power of 2 up to 32768");
        }
        this.ram = ram;
        this.mem = ram.memory();
        this.size = size;
        this.descTable = ram.allocate((long) DESC_SIZE * size, 16);
        this.availRing = ram.allocate(6 + 2L * size, 2);
        this.usedRing = ram.allocate(6 + 8L * size, 4);
        for (int i = 0; i < size; i++) {
            freeDescriptors.add(i);
        }
    }

    /** A fresh device-side queue of this size at these addresses, ready, without EVENT_IDX. */
    public Virtqueue configuredQueue() {
        return configuredQueue(false);
    }

    /** A fresh device-side queue of this size at these addresses, ready, with EVENT_IDX as given. */
    public Virtqueue configuredQueue(boolean eventIdx) {
        return new Virtqueue(layout(), eventIdx);
    }

    /** Where this queue lies, as the driver tells the transport. */
    public QueueLayout layout() {
        return new QueueLayout(size, descTable, availRing, usedRing);
    }

    public GuestMemory memory() {
        return mem;
    }

    public int size() {
        return size;
    }

    public long descTable() {
        return descTable;
    }

    public long availRing() {
        return availRing;
    }

    public long usedRing() {
        return usedRing;
    }

    /** Descriptors not part of an outstanding chain. */
    public int freeDescriptorCount() {
        return freeDescriptors.size();
    }

    // ---- buffers

    /** Reserves {@code bytes} of zeroed guest RAM (8-aligned) and returns its guest address. */
    public long allocate(int bytes) {
        return ram.allocate(Math.max(bytes, 1), 8);
    }

    /** Copies {@code data} into newly allocated guest RAM and returns its guest address. */
    public long writeBuffer(byte[] data) {
        return ram.put(data);
    }

    // ---- chains

    /**
     * Adds a chain of device-readable buffers holding {@code readable} followed by device-writable buffers
     * of {@code writableSizes}, one descriptor each, and makes it available. Returns its head.
     *
     * @throws IllegalStateException when too few descriptors are free
     */
    public int addChain(List<byte[]> readable, List<Integer> writableSizes) {
        int n = readable.size() + writableSizes.size();
        if (n == 0 || n > freeDescriptors.size()) {
            throw new IllegalStateException("need " + n + " descriptors, " + freeDescriptors.size() + " free");
        }
        int[] descriptors = new int[n];
        for (int i = 0; i < n; i++) {
            descriptors[i] = freeDescriptors.poll();
        }
        long[] writableAddresses = new long[writableSizes.size()];
        int[] sizes = new int[writableSizes.size()];
        for (int i = 0; i < n; i++) {
            int next = i + 1 < n ? descriptors[i + 1] : 0;
            int flags = i + 1 < n ? DESC_F_NEXT : 0;
            if (i < readable.size()) {
                byte[] data = readable.get(i);
                writeDescriptor(descriptors[i], writeBuffer(data), data.length, flags, next);
            } else {
                int w = i - readable.size();
                sizes[w] = writableSizes.get(w);
                writableAddresses[w] = allocate(sizes[w]);
                writeDescriptor(descriptors[i], writableAddresses[w], sizes[w], flags | DESC_F_WRITE, next);
            }
        }
        outstanding.put(descriptors[0], new Outstanding(descriptors, writableAddresses, sizes));
        makeAvailable(descriptors[0]);
        return descriptors[0];
    }

    /** Whether {@link #addChain} would succeed now: descriptors free and RAM for every buffer (it changes nothing). */
    public boolean fits(List<byte[]> readable, List<Integer> writableSizes) {
        int n = readable.size() + writableSizes.size();
        if (n == 0 || n > freeDescriptors.size()) {
            return false;
        }
        long[] sizes = new long[n];
        for (int i = 0; i < n; i++) {
            sizes[i] = Math.max(1, i < readable.size() ? readable.get(i).length : writableSizes.get(i - readable.size()));
        }
        return ram.fits(8, sizes);
    }

    /**
     * Like {@link #addChain} but as one ring descriptor pointing to an indirect table (§2.7.5.3) in guest
     * RAM that holds the buffers. Returns its head.
     */
    public int addIndirectChain(List<byte[]> readable, List<Integer> writableSizes) {
        int n = readable.size() + writableSizes.size();
        if (n == 0 || freeDescriptors.isEmpty()) {
            throw new IllegalStateException("need 1 descriptor and at least one buffer");
        }
        long table = ram.allocate((long) DESC_SIZE * n, 16);
        long[] writableAddresses = new long[writableSizes.size()];
        int[] sizes = new int[writableSizes.size()];
        for (int i = 0; i < n; i++) {
            int flags = i + 1 < n ? DESC_F_NEXT : 0;
            int next = i + 1 < n ? i + 1 : 0;
            if (i < readable.size()) {
                byte[] data = readable.get(i);
                writeDescriptor(table, i, writeBuffer(data), data.length, flags, next);
            } else {
                int w = i - readable.size();
                sizes[w] = writableSizes.get(w);
                writableAddresses[w] = allocate(sizes[w]);
                writeDescriptor(table, i, writableAddresses[w], sizes[w], flags | DESC_F_WRITE, next);
            }
        }
        int head = freeDescriptors.poll();
        writeDescriptor(head, table, DESC_SIZE * n, DESC_F_INDIRECT, 0);
        outstanding.put(head, new Outstanding(new int[] {head}, writableAddresses, sizes));
        makeAvailable(head);
        return head;
    }

    /** A chain of one device-readable buffer holding {@code data}. */
    public int addReadable(byte[] data) {
        return addChain(List.of(data), List.of());
    }

    /** A chain of one device-writable buffer of {@code bytes}. */
    public int addWritable(int bytes) {
        return addChain(List.of(), List.of(bytes));
    }

    // ---- raw access, for malformed chains

    /**
     * Takes {@code n} descriptors off the free list for the caller to fill with {@link #writeDescriptor};
     * they return to the free list when the device returns the first of them as used.
     */
    public int[] reserveDescriptors(int n) {
        if (n <= 0 || n > freeDescriptors.size()) {
            throw new IllegalStateException("need " + n + " descriptors, " + freeDescriptors.size() + " free");
        }
        int[] descriptors = new int[n];
        for (int i = 0; i < n; i++) {
            descriptors[i] = freeDescriptors.poll();
        }
        outstanding.put(descriptors[0], new Outstanding(descriptors, new long[0], new int[0]));
        return descriptors;
    }

    /** Writes descriptor {@code index} of the ring's descriptor table, with no checks. */
    public void writeDescriptor(int index, long address, int length, int flags, int next) {
        writeDescriptor(descTable, index, address, length, flags, next);
    }

    /** Writes descriptor {@code index} of the table at {@code table} (an indirect table), with no checks. */
    public void writeDescriptor(long table, int index, long address, int length, int flags, int next) {
        long d = table + (long) DESC_SIZE * index;
        ram.setLong(d, address);
        ram.setInt(d + 8, length);
        ram.setShort(d + 12, (short) flags);
        ram.setShort(d + 14, (short) next);
    }

    /** Puts {@code head} (any value) in the next avail ring slot; published now if auto-publish is on. */
    public void makeAvailable(int head) {
        ram.setShort(availRing + 4 + 2L * ((availIdx & 0xffff) % size), (short) head);
        availIdx++;
        if (autoPublish) {
            publish();
        }
    }

    // ---- avail ring

    /** Whether each added chain is published at once (the default) or waits for {@link #publish()}. */
    public void setAutoPublish(boolean autoPublish) {
        this.autoPublish = autoPublish;
    }

    /** Publishes the chains added so far: writes the avail ring's idx. */
    public void publish() {
        ram.setShort(availRing + 2, availIdx);
    }

    /** Writes the avail ring's idx as given, whatever the driver added: for avail idx misuse. */
    public void setAvailIndex(int idx) {
        availIdx = (short) idx;
        ram.setShort(availRing + 2, (short) idx);
    }

    /** The avail idx currently published. */
    public int availIndex() {
        return ram.getShort(availRing + 2) & 0xffff;
    }

    /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT in the avail ring's flags. */
    public void setNoInterrupt(boolean noInterrupt) {
        ram.setShort(availRing, (short) (noInterrupt ? AVAIL_F_NO_INTERRUPT : 0));
    }

    /** Sets used_event, the used idx at which the driver wants the next interrupt (EVENT_IDX, §2.7.7). */
    public void setUsedEvent(int usedEvent) {
        ram.setShort(availRing + 4 + 2L * size, (short) usedEvent);
    }

    // ---- used ring

    /** The used ring's idx as the device last wrote it. */
    public int usedIndex() {
        return ram.getShort(usedRing + 2) & 0xffff;
    }

    /** The used ring's flags (VIRTQ_USED_F_NO_NOTIFY). */
    public int usedFlags() {
        return ram.getShort(usedRing) & 0xffff;
    }

    /** avail_event, the avail idx at which the device wants the next notification (EVENT_IDX, §2.7.10). */
    public int availEvent() {
        return ram.getShort(usedRing + 4 + 8L * size) & 0xffff;
    }

    /**
     * The used elements the device added since the last call, in ring order, each with the bytes it wrote;
     * their descriptors become free again.
     */
    public List<Used> usedEntries() {
        return usedEntries(true);
    }

    /**
     * As {@link #usedEntries()}, without reading back what the device wrote ({@link Used#written()} empty):
     * for tests that count allocations and need only ids and lengths.
     */
    public List<Used> usedEntriesWithoutData() {
        return usedEntries(false);
    }

    private List<Used> usedEntries(boolean readData) {
        int usedIdx = usedIndex();
        List<Used> out = new ArrayList<>();
        while (lastUsedIdx != (short) usedIdx) {
            long slot = usedRing + 4 + 8L * ((lastUsedIdx & 0xffff) % size);
            int id = ram.getInt(slot);
            int len = ram.getInt(slot + 4);
            lastUsedIdx++;
            Outstanding chain = outstanding.remove(id);
            if (chain == null) {
                out.add(new Used(id, len, new byte[0]));
                continue;
            }
            for (int d : chain.descriptors()) {
                freeDescriptors.add(d);
            }
            out.add(new Used(id, len, readData ? readWritten(chain, len) : new byte[0]));
        }
        return out;
    }

    private byte[] readWritten(Outstanding chain, int len) {
        long total = 0;
        for (int s : chain.writableSizes()) {
            total += s;
        }
        byte[] out = new byte[(int) Math.min(total, Integer.toUnsignedLong(len))];
        int done = 0;
        for (int i = 0; i < chain.writableSizes().length && done < out.length; i++) {
            int n = Math.min(chain.writableSizes()[i], out.length - done);
            ram.read(chain.writableAddresses()[i], out, done, n);
            done += n;
        }
        return out;
    }
}
