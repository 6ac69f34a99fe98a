package org.krun.device.rng.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.posix.Errno;
import org.krun.posix.PosixException;

/** The host's getrandom(2) through FFM, and the loop around it that copes with EINTR and short reads. */
class GetRandomTest {

    @Test
    void fillsNativeMemoryFromTheHost() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment a = arena.allocate(1 << 20);
            MemorySegment b = arena.allocate(1 << 20);
            MemorySegment zeros = arena.allocate(64);
            GetRandom.INSTANCE.fill(a);
            GetRandom.INSTANCE.fill(b);
            assertTrue(a.mismatch(b) >= 0, "two fills differ");
            assertTrue(a.asSlice(0, 64).mismatch(zeros) >= 0, "the head was filled");
            assertTrue(a.asSlice(a.byteSize() - 64).mismatch(zeros) >= 0, "the tail was filled too");
        }
    }

    @Test
    void emptyDestinationMakesNoCall() {
        GetRandom.fillFully(MemorySegment.NULL, (buffer, length) -> {
            throw new AssertionError("called for nothing");
        });
    }

    /** Scripted getrandom results; each positive one writes that many 0x5a bytes. */
    private static final class Script implements GetRandom.Call {
        final Deque<Long> results = new ArrayDeque<>();
        final List<Long> askedFor = new ArrayList<>();

        Script(long... results) {
            for (long r : results) {
                this.results.add(r);
            }
        }

        @Override
        public long invoke(MemorySegment buffer, long length) {
            askedFor.add(length);
            long r = results.isEmpty() ? length : results.poll();
            if (r > 0) {
                buffer.asSlice(0, Math.min(r, length)).fill((byte) 0x5a);
            }
            return r;
        }
    }

    @Test
    void retriesAfterEintrAndContinuesAfterShortReads() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment dst = arena.allocate(1000);
            Script script = new Script(-Errno.EINTR, 300, -Errno.EINTR, 1, 199);
            GetRandom.fillFully(dst, script);
            assertEquals(List.of(1000L, 1000L, 700L, 700L, 699L, 500L), script.askedFor);
            for (long i = 0; i < dst.byteSize(); i++) {
                assertEquals(0x5a, dst.get(JAVA_BYTE, i), "byte " + i);
            }
        }
    }

    @Test
    void otherErrorsFailNamingTheCallAndErrno() {
        try (Arena arena = Arena.ofConfined()) {
            PosixException e = assertThrows(PosixException.class,
                    () -> GetRandom.fillFully(arena.allocate(64), new Script(16, -Errno.EFAULT)));
            assertEquals(Errno.EFAULT, e.errno());
            assertEquals("getrandom: EFAULT", e.getMessage());
        }
    }

    @Test
    void noProgressOrAnImpossibleCountFailsInsteadOfLooping() {
        try (Arena arena = Arena.ofConfined()) {
            assertThrows(PosixException.class, () -> GetRandom.fillFully(arena.allocate(64), new Script(0)));
            assertThrows(PosixException.class, () -> GetRandom.fillFully(arena.allocate(64), new Script(65)));
        }
    }

    @Test
    void hostBytesAreNotConstant() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment dst = arena.allocate(256);
            GetRandom.INSTANCE.fill(dst);
            byte first = dst.get(JAVA_BYTE, 0);
            boolean allSame = true;
            for (long i = 1; i < dst.byteSize(); i++) {
                allSame &= dst.get(JAVA_BYTE, i) == first;
            }
            assertFalse(allSame);
        }
    }
}
