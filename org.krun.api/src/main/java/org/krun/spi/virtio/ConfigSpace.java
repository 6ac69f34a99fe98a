package org.krun.spi.virtio;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A device's configuration space (virtio 1.2 §2.5): little-endian bytes the driver reads from vCPU
 * threads while the device may update them from its own. Read-only to the driver except for the ranges a
 * device opens with {@link #driverWritable(int, int)}; writes elsewhere are ignored, as the spec asks of
 * read-only fields. Thread-safe.
 */
public final class ConfigSpace {

    private final ByteBuffer bytes;
    private final boolean[] writable;

    public ConfigSpace(int size) {
        if (size < 0 || size > 0xf00) {
            throw new IllegalArgumentException("configuration space size " + size + " out of range");
        }
        this.bytes = ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
        this.writable = new boolean[size];
    }

    public int size() {
        return writable.length;
    }

    /** Lets the driver write {@code [offset, offset + length)}. */
    public synchronized ConfigSpace driverWritable(int offset, int length) {
        Arrays.fill(writable, offset, offset + length, true);
        return this;
    }

    /** The driver reads {@code data.length} bytes at {@code offset} (the transport keeps the range inside). */
    public synchronized void read(int offset, byte[] data) {
        bytes.get(offset, data);
    }

    /** The driver writes: bytes that fall on writable ranges change, the rest are dropped. */
    public synchronized void write(int offset, byte[] data) {
        for (int i = 0; i < data.length; i++) {
            int at = offset + i;
            if (at >= 0 && at < writable.length && writable[at]) {
                bytes.put(at, data[i]);
            }
        }
    }

    public synchronized ConfigSpace putByte(int offset, int value) {
        bytes.put(offset, (byte) value);
        return this;
    }

    public synchronized ConfigSpace putShort(int offset, int value) {
        bytes.putShort(offset, (short) value);
        return this;
    }

    public synchronized ConfigSpace putInt(int offset, int value) {
        bytes.putInt(offset, value);
        return this;
    }

    public synchronized ConfigSpace putLong(int offset, long value) {
        bytes.putLong(offset, value);
        return this;
    }

    public synchronized ConfigSpace putBytes(int offset, byte[] value) {
        bytes.put(offset, value);
        return this;
    }

    /** The unsigned 16-bit value at {@code offset}. */
    public synchronized int getShort(int offset) {
        return bytes.getShort(offset) & 0xffff;
    }

    public synchronized int getInt(int offset) {
        return bytes.getInt(offset);
    }

    public synchronized long getLong(int offset) {
        return bytes.getLong(offset);
    }
}
