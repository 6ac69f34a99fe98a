package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

/** Pins the host's copy of blkcheck's pattern and hash to values the C code produces. */
class GuestPatternsTest {

    @Test
    void hashMatchesFnv1a64() {
        // FNV-1a 64 test vectors (Fowler, Noll, Vo).
        assertEquals(0xcbf29ce484222325L, GuestPatterns.fnv1a(new byte[0]));
        assertEquals(0xaf63dc4c8601ec8cL, GuestPatterns.fnv1a("a".getBytes(StandardCharsets.US_ASCII)));
        assertEquals(0x85944171f73967e8L, GuestPatterns.fnv1a("foobar".getBytes(StandardCharsets.US_ASCII)));
    }

    @Test
    void patternMatchesTheGuestProgram() throws Exception {
        // blkcheck's first bytes of pattern seed 1, as printed by the C code (see blkcheck.c pattern_byte).
        byte[] p = GuestPatterns.pattern(1, 0, 1 << 20);
        assertEquals(GuestPatterns.fileHash(p), HostBlkcheck.patternHash(1, 1 << 20));
    }
}
