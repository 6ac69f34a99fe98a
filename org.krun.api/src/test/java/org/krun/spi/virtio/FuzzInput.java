package org.krun.spi.virtio;

import java.util.Arrays;

/**
 * A fuzz input read as a stream of choices, the way a fuzz target decides what the hostile driver does
 * next. Reading never fails: past the end every value is 0 and every byte array is empty, so a short input
 * simply ends the scenario early. Values are little-endian. Plain bytes (not Jazzer's
 * {@code FuzzedDataProvider}) so that any input, a crash file included, can be replayed by a plain test.
 */
public final class FuzzInput {

    private final byte[] data;
    private int at;

    public FuzzInput(byte[] data) {
        this.data = data;
    }

    /** Bytes not yet read. */
    public int remaining() {
        return data.length - at;
    }

    public boolean exhausted() {
        return at >= data.length;
    }

    public int u8() {
        return at < data.length ? data[at++] & 0xff : 0;
    }

    public boolean bool() {
        return (u8() & 1) != 0;
    }

    public int u16() {
        return u8() | u8() << 8;
    }

    public int i32() {
        return u16() | u16() << 16;
    }

    public long i64() {
        return (i32() & 0xffffffffL) | (long) i32() << 32;
    }

    /** A value in {@code [0, bound)}, from one, two or four bytes. */
    public int below(int bound) {
        if (bound <= 0) {
            throw new IllegalArgumentException("bound " + bound);
        }
        return bound <= 256 ? u8() % bound : bound <= 65536 ? u16() % bound : Integer.remainderUnsigned(i32(), bound);
    }

    /** One of {@code values}. */
    public int pick(int... values) {
        return values[below(values.length)];
    }

    /** One of {@code values}. */
    public long pick(long... values) {
        return values[below(values.length)];
    }

    /** Up to {@code max} bytes (at most 65535), length first. */
    public byte[] bytes(int max) {
        int n = Math.min(below(Math.min(max, 65535) + 1), remaining());
        byte[] out = Arrays.copyOfRange(data, at, at + n);
        at += n;
        return out;
    }

    /** Exactly {@code n} bytes, zero-padded past the end of the input. */
    public byte[] fixed(int n) {
        byte[] out = new byte[n];
        int k = Math.min(n, remaining());
        System.arraycopy(data, at, out, 0, k);
        at += k;
        return out;
    }

    /** Everything left. */
    public byte[] rest() {
        byte[] out = Arrays.copyOfRange(data, at, data.length);
        at = data.length;
        return out;
    }
}
