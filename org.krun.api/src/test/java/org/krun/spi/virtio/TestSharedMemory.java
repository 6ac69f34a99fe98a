package org.krun.spi.virtio;

import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.TreeMap;

/**
 * A {@link SharedMemory} for device tests, without a hypervisor: it keeps the host segments mapped at each
 * offset, refuses what the core refuses (not whole pages, outside the region, overlapping, more than
 * {@code maxMappings}), and lets a test read what the guest would see at an offset.
 */
public final class TestSharedMemory implements SharedMemory {

    private final int id;
    private final long guestAddress;
    private final long size;
    private final int maxMappings;
    private final TreeMap<Long, MemorySegment> mappings = new TreeMap<>();

    public TestSharedMemory(int id, long guestAddress, long size, int maxMappings) {
        this.id = id;
        this.guestAddress = guestAddress;
        this.size = size;
        this.maxMappings = maxMappings;
    }

    @Override
    public int id() {
        return id;
    }

    @Override
    public long guestAddress() {
        return guestAddress;
    }

    @Override
    public long size() {
        return size;
    }

    @Override
    public synchronized int mappings() {
        return mappings.size();
    }

    /** The host segment mapped at {@code offset}, or null. */
    public synchronized MemorySegment mappedAt(long offset) {
        return mappings.get(offset);
    }

    @Override
    public synchronized Mapping map(long offset, MemorySegment host) {
        long page = SharedMemoryRegion.PAGE_SIZE;
        long length = host.byteSize();
        if (offset < 0 || offset % page != 0 || length == 0 || length % page != 0 || host.address() % page != 0) {
            throw new IllegalArgumentException("not whole pages");
        }
        if (offset > size || length > size - offset) {
            throw new IllegalArgumentException("outside the region");
        }
        Map.Entry<Long, MemorySegment> before = mappings.floorEntry(offset + length - 1);
        if (before != null && before.getKey() + before.getValue().byteSize() > offset) {
            throw new IllegalArgumentException("overlaps a mapping");
        }
        if (mappings.size() >= maxMappings) {
            throw new IllegalStateException("every mapping is in use");
        }
        mappings.put(offset, host);
        return new Mapping() {
            private boolean closed;

            @Override
            public long offset() {
                return offset;
            }

            @Override
            public long size() {
                return length;
            }

            @Override
            public void close() {
                synchronized (TestSharedMemory.this) {
                    if (!closed) {
                        closed = true;
                        mappings.remove(offset);
                    }
                }
            }
        };
    }
}
