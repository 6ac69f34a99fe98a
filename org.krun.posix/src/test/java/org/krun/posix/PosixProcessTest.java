package org.krun.posix;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

import org.junit.jupiter.api.Test;

class PosixProcessTest {

    @Test
    void exitStatusIsTheChildsCode() {
        try (PosixProcess p = PosixProcess.spawn(List.of("sh", "-c", "exit 3"), Map.of())) {
            assertEquals(OptionalInt.of(3), p.waitFor(Duration.ofSeconds(30)));
            assertFalse(p.isAlive());
        }
    }

    @Test
    void theChildGetsOurDescriptorAtItsNumber() {
        int[] pair = PosixNet.socketPair(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM);
        try (PosixProcess p = PosixProcess.spawn(List.of("sh", "-c", "echo hello >&3"), Map.of(3, pair[1]));
                Arena a = Arena.ofConfined()) {
            Posix.close(pair[1]);
            pair[1] = -1;
            assertEquals(OptionalInt.of(0), p.waitFor(Duration.ofSeconds(30)));
            MemorySegment buf = a.allocate(64);
            long n = Posix.read(pair[0], buf, 64);
            assertEquals("hello\n", new String(buf.asSlice(0, n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII));
        } finally {
            Posix.close(pair[0]);
            if (pair[1] >= 0) {
                Posix.close(pair[1]);
            }
        }
    }

    @Test
    void ourCloseOnExecDescriptorsStayOurs() {
        int[] pair = PosixNet.socketPair(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM);
        try (PosixProcess p = PosixProcess.spawn(List.of("sh", "-c", "ls /proc/self/fd >&3"), Map.of(3, pair[1]));
                Arena a = Arena.ofConfined()) {
            assertEquals(OptionalInt.of(0), p.waitFor(Duration.ofSeconds(30)));
            MemorySegment buf = a.allocate(256);
            long n = Posix.read(pair[0], buf, 256);
            String fds = new String(buf.asSlice(0, n).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE), StandardCharsets.US_ASCII);
            // 0-2, the mapped 3, and the directory ls reads: none of the JVM's own descriptors
            assertEquals(List.of("0", "1", "2", "3", "4"), fds.lines().toList(), fds);
        } finally {
            Posix.close(pair[0]);
            Posix.close(pair[1]);
        }
    }

    @Test
    void childDescriptorsRunFromThreeWithoutGaps() {
        assertThrows(IllegalArgumentException.class, () -> PosixProcess.spawn(List.of("true"), Map.of(5, 1)));
    }

    @Test
    void aMissingProgramIsENOENT() {
        PosixException e = assertThrows(PosixException.class,
                () -> PosixProcess.spawn(List.of("krun-no-such-program"), Map.of()));
        assertEquals(Errno.ENOENT, e.errno());
        assertTrue(e.getMessage().contains("krun-no-such-program"), e.getMessage());
    }

    @Test
    void stopEndsAndReapsTheChild() {
        PosixProcess p = PosixProcess.spawn(List.of("sleep", "100"), Map.of());
        assertTrue(p.isAlive());
        p.close();
        assertEquals(OptionalInt.of(128 + PosixProcess.SIGTERM), p.exitStatus());
        p.close(); // idempotent
    }

    @Test
    void aChildIgnoringSigtermIsKilled() {
        PosixProcess p = PosixProcess.spawn(List.of("sh", "-c", "trap '' TERM; exec sleep 100"), Map.of());
        p.waitFor(Duration.ofMillis(200));
        p.stop(Duration.ofMillis(300));
        assertEquals(OptionalInt.of(128 + PosixProcess.SIGKILL), p.exitStatus());
    }
}
