package org.krun.device.blk.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Host-side helpers for backend tests: commands, allocated blocks, descriptor flags, native buffers. */
final class HostFiles {

    private HostFiles() {
    }

    /** Runs a command; returns its exit status and combined output. */
    record Run(int status, String output) {
    }

    static Run run(String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            throw new AssertionError(String.join(" ", command) + " did not finish");
        }
        return new Run(p.exitValue(), out);
    }

    /** Runs a command that must succeed; returns its output. */
    static String ok(String... command) throws IOException, InterruptedException {
        Run r = run(command);
        if (r.status() != 0) {
            throw new AssertionError(String.join(" ", command) + " failed (" + r.status() + "): " + r.output());
        }
        return r.output();
    }

    /** 512-byte blocks the host file system has allocated to {@code file} (stat %b). */
    static long allocatedBlocks(Path file) throws IOException, InterruptedException {
        return Long.parseLong(ok("stat", "-c", "%b", file.toString()).trim());
    }

    /** The open flags of descriptor {@code fd} of this process, from /proc/self/fdinfo (octal). */
    static int openFlags(int fd) throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/fdinfo/" + fd))) {
            if (line.startsWith("flags:")) {
                return Integer.parseInt(line.substring(6).trim(), 8);
            }
        }
        throw new AssertionError("no flags for fd " + fd);
    }

    /** Open descriptors of this process. */
    static int openDescriptors() throws IOException {
        try (var s = Files.list(Path.of("/proc/self/fd"))) {
            return (int) s.count();
        }
    }

    /** {@code data} in native memory of {@code arena}, split into pieces of {@code piece} bytes. */
    static List<MemorySegment> nativeCopy(Arena arena, byte[] data, int piece) {
        MemorySegment all = arena.allocate(Math.max(1, data.length), 4096).asSlice(0, data.length);
        MemorySegment.copy(data, 0, all, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, data.length);
        List<MemorySegment> out = new ArrayList<>();
        for (int at = 0; at < data.length; at += piece) {
            out.add(all.asSlice(at, Math.min(piece, data.length - at)));
        }
        return out;
    }

    static byte[] bytes(List<MemorySegment> segments) {
        byte[] out = new byte[(int) Segments.size(segments)];
        int at = 0;
        for (MemorySegment s : segments) {
            MemorySegment.copy(s, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, out, at, (int) s.byteSize());
            at += (int) s.byteSize();
        }
        return out;
    }

    /** A buffer of {@code length} bytes in native memory, in {@code piece}-byte parts. */
    static List<MemorySegment> buffer(Arena arena, int length, int piece) {
        return nativeCopy(arena, new byte[length], piece);
    }
}
