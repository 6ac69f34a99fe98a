package org.krun.spi.virtio;

import java.lang.invoke.VarHandle;

import org.krun.spi.memory.GuestMemory;

/**
 * The device side of a split virtqueue (virtio 1.2 §2.7). Holds only the ring addresses and size the
 * driver chose (fixed: a device cannot move or resize the queue the transport gave it) and the device's
 * indices; every call that touches the rings takes the guest memory. Not thread-safe: a queue is used from
 * one thread at a time (the VM's event loop, or a device's own worker).
 */
public final class Virtqueue {

    static final int DESC_SIZE = 16;
    static final int DESC_F_NEXT = 1;
    static final int DESC_F_WRITE = 2;
    static final int DESC_F_INDIRECT = 4;
    /** avail ring flag: the driver does not want interrupts (without EVENT_IDX). */
    static final int AVAIL_F_NO_INTERRUPT = 1;
    /** used ring flag: the device does not want notifications (without EVENT_IDX). */
    static final int USED_F_NO_NOTIFY = 1;

    /** The most descriptors one chain may hold, indirect tables included, whatever the queue size. */
    static final int MAX_CHAIN_DESCRIPTORS = 4096;

    private static final Virtqueue DISABLED = new Virtqueue();

    private final boolean ready;
    private final int size;
    private final long descTable;
    private final long availRing;
    private final long usedRing;
    private final boolean eventIdx;

    private short nextAvail;
    private short nextUsed;
    /** The used index when the driver was last interrupted (EVENT_IDX) or last asked. */
    private short signalledUsed;

    /**
     * The queue at {@code layout}, which the transport has checked ({@link QueueLayout#problem}), with
     * VIRTIO_F_RING_EVENT_IDX negotiated or not.
     *
     * @throws IllegalArgumentException when the size is not a power of 2 up to {@link QueueLayout#MAX_SIZE}
     */
    public Virtqueue(QueueLayout layout, boolean eventIdx) {
        int n = layout.size();
        if (n <= 0 || n > QueueLayout.MAX_SIZE || Integer.bitCount(n) != 1) {
            throw new IllegalArgumentException("queue size must be a power of 2 up to 32768, not " + n);
        }
        this.ready = true;
        this.size = n;
        this.descTable = layout.descTable();
        this.availRing = layout.availRing();
        this.usedRing = layout.usedRing();
        this.eventIdx = eventIdx;
    }

    private Virtqueue() {
        this.ready = false;
        this.size = 0;
        this.descTable = 0;
        this.availRing = 0;
        this.usedRing = 0;
        this.eventIdx = false;
    }

    /** A queue the driver did not enable: not {@link #ready()}, nothing to pop. */
    public static Virtqueue disabled() {
        return DISABLED;
    }

    /** Whether the driver enabled this queue. */
    public boolean ready() {
        return ready;
    }

    public int size() {
        return size;
    }

    public QueueLayout layout() {
        return new QueueLayout(size, descTable, availRing, usedRing);
    }

    long descTableAddress() {
        return descTable;
    }

    /**
     * The device's indices, for a snapshot: the next available ring entry it will take, the next used ring
     * entry it will fill, and the used index when the driver was last interrupted (each 0-65535).
     *
     * @since 1.2
     */
    public Indices indices() {
        return new Indices(nextAvail & 0xffff, nextUsed & 0xffff, signalledUsed & 0xffff);
    }

    /**
     * Puts the device's indices back where a snapshot found them, on a queue made for the same layout and
     * before the device uses it.
     *
     * @throws IllegalStateException on a disabled queue
     * @since 1.2
     */
    public void restoreIndices(Indices indices) {
        if (!ready) {
            throw new IllegalStateException("a disabled queue has no indices");
        }
        nextAvail = (short) indices.nextAvail();
        nextUsed = (short) indices.nextUsed();
        signalledUsed = (short) indices.signalledUsed();
    }

    /**
     * A queue's device-side indices (virtio 1.2 §2.7: free-running 16-bit counters).
     *
     * @since 1.2
     */
    public record Indices(int nextAvail, int nextUsed, int signalledUsed) {
        public Indices {
            if ((nextAvail | nextUsed | signalledUsed) >>> 16 != 0) {
                throw new IllegalArgumentException("queue indices are 16-bit: " + nextAvail + ", " + nextUsed + ", " + signalledUsed);
            }
        }
    }

    /** Whether VIRTIO_F_RING_EVENT_IDX was negotiated. */
    public boolean eventIdx() {
        return eventIdx;
    }

    private int availIdx(GuestMemory mem) {
        int idx = mem.getShort(availRing + 2) & 0xffff;
        VarHandle.acquireFence(); // read ring entries only after the index that publishes them
        return idx;
    }

    /** Number of chains the driver has made available that the device has not taken. */
    public int pending(GuestMemory mem) {
        if (!ready) {
            return 0;
        }
        return (availIdx(mem) - nextAvail) & 0xffff;
    }

    /**
     * Takes the next available descriptor chain, or returns null when there is none.
     *
     * @throws InvalidChainException when the chain is malformed; its head, when valid, has been consumed
     *         and should be returned with {@link #addUsed} and length 0
     */
    public DescriptorChain pop(GuestMemory mem) {
        if (!ready) {
            return null;
        }
        int pending = pending(mem);
        if (pending == 0) {
            return null;
        }
        if (pending > size) {
            throw new InvalidChainException(-1, "driver moved avail idx by " + pending + " on a queue of " + size);
        }
        int head = mem.getShort(availRing + 4 + 2L * ((nextAvail & 0xffff) % size)) & 0xffff;
        nextAvail++;
        if (eventIdx) {
            // virtio 1.2 §2.7.10: ask to be notified when the driver makes the next buffer available.
            mem.setShort(usedRing + 4 + 8L * size, nextAvail);
        }
        if (head >= size) {
            throw new InvalidChainException(-1, "chain head " + head + " out of range (queue size " + size + ")");
        }
        return DescriptorChain.parse(mem, this, head);
    }

    /**
     * Takes the next well-formed chain, as every device wants it: a malformed chain goes back to the
     * driver at once, as used with length 0, and {@code malformed} hears why; a queue the driver broke
     * (its avail ring or a head out of range) asks {@code context} for a device reset, and this returns
     * null, as it does when nothing is available.
     */
    public DescriptorChain popValid(GuestMemory mem, DeviceContext context, java.util.function.Consumer<String> malformed) {
        while (true) {
            try {
                return pop(mem);
            } catch (InvalidChainException e) {
                if (e.head() < 0) {
                    context.needsReset(e.getMessage());
                    return null;
                }
                malformed.accept(e.getMessage());
                addUsed(mem, e.head(), 0);
            }
        }
    }

    /** Returns chain {@code head} to the driver with {@code length} bytes written into it. */
    public void addUsed(GuestMemory mem, int head, int length) {
        if (!ready) {
            throw new IllegalStateException("queue not enabled");
        }
        long slot = usedRing + 4 + 8L * ((nextUsed & 0xffff) % size);
        mem.setInt(slot, head);
        mem.setInt(slot + 4, length);
        nextUsed++;
        VarHandle.releaseFence(); // the element before the index that publishes it
        mem.setShort(usedRing + 2, nextUsed);
    }

    /**
     * Whether the driver wants an interrupt for the used buffers added since the last call (virtio 1.2
     * §2.7.7 Used Buffer Notification Suppression).
     */
    public boolean needsInterrupt(GuestMemory mem) {
        if (!ready) {
            return false;
        }
        VarHandle.fullFence(); // the used idx store must be visible before reading the driver's wishes
        short old = signalledUsed;
        short now = nextUsed;
        if (old == now) {
            return false;
        }
        signalledUsed = now;
        if (eventIdx) {
            int usedEvent = mem.getShort(availRing + 4 + 2L * size) & 0xffff;
            // vring_need_event: notify if used_event lies in [old, now).
            return ((now - usedEvent - 1) & 0xffff) < ((now - old) & 0xffff);
        }
        return (mem.getShort(availRing) & AVAIL_F_NO_INTERRUPT) == 0;
    }

    /**
     * Asks the driver to notify (or not) when it adds buffers. Without EVENT_IDX this is the used ring's
     * NO_NOTIFY flag; with EVENT_IDX the device always asks via avail_event, set in {@link #pop}.
     *
     * @return whether buffers are available now (check again after enabling, to close the race)
     */
    public boolean enableNotification(GuestMemory mem, boolean enable) {
        if (!ready) {
            return false;
        }
        if (eventIdx) {
            if (enable) {
                mem.setShort(usedRing + 4 + 8L * size, nextAvail);
            }
        } else {
            mem.setShort(usedRing, (short) (enable ? 0 : USED_F_NO_NOTIFY));
        }
        VarHandle.fullFence();
        return pending(mem) != 0;
    }

    /** The device's next avail index (for state inspection and tests). */
    public int nextAvail() {
        return nextAvail & 0xffff;
    }

    /** The device's next used index. */
    public int nextUsed() {
        return nextUsed & 0xffff;
    }
}
