package org.krun.device.blk.internal;

import java.util.Arrays;

/**
 * The pattern and hash blkcheck (src/test/guest/blkcheck.c) uses inside the guest, so the host can check
 * what the guest wrote and the guest what the host prepared.
 */
final class GuestPatterns {
    static final long FNV_BASIS = 0xcbf29ce484222325L;

    /** blkcheck's pattern step: 64 KiB chunks at these offsets, a discard and a zeroed range. */
    static final int CHUNK = 64 << 10;
    static final long[] PATTERN_OFFSETS = {0, (1 << 20) + 4096, 10 << 20, 3 << 20, (64 << 20) - CHUNK};
    static final long DISCARD_AT = 3 << 20;
    static final long DISCARD_LEN = 1 << 20;
    static final long ZERO_AT = (10 << 20) + 4096;
    static final long ZERO_LEN = 8192;

    private GuestPatterns() {
    }

    static long splitmix64(long x) {
        x += 0x9e3779b97f4a7c15L;
        x = (x ^ (x >>> 30)) * 0xbf58476d1ce4e5b9L;
        x = (x ^ (x >>> 27)) * 0x94d049bb133111ebL;
        return x ^ (x >>> 31);
    }

    static byte patternByte(long seed, long offset) {
        return (byte) (splitmix64(seed * 0x100000001b3L ^ (offset >>> 3)) >>> (8 * (offset & 7)));
    }

    static byte[] pattern(long seed, long offset, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = patternByte(seed, offset + i);
        }
        return b;
    }

    static long fnv1a(byte[] data) {
        long h = FNV_BASIS;
        for (byte b : data) {
            h ^= b & 0xff;
            h *= 0x100000001b3L;
        }
        return h;
    }

    /** blkcheck's "hash:length" of a file's content. */
    static String fileHash(byte[] data) {
        return String.format("%016x:%d", fnv1a(data), data.length);
    }

    /** What a disk of {@code size} bytes holds after blkcheck's pattern step (on a disk that read as zeroes). */
    static byte[] afterPatternStep(int size) {
        byte[] disk = new byte[size];
        for (long off : PATTERN_OFFSETS) {
            System.arraycopy(pattern(2, off, CHUNK), 0, disk, (int) off, CHUNK);
        }
        Arrays.fill(disk, (int) DISCARD_AT, (int) (DISCARD_AT + DISCARD_LEN), (byte) 0);
        Arrays.fill(disk, (int) ZERO_AT, (int) (ZERO_AT + ZERO_LEN), (byte) 0);
        return disk;
    }
}
