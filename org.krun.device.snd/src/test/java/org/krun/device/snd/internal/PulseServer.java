package org.krun.device.snd.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Assumptions;

/**
 * A PulseAudio server of the test's own (Debian's {@code pulseaudio}; tests that need it are skipped where it
 * is not installed): a unix socket in {@code dir}, anonymous access, and one sink {@code krun_test} of 44.1 kHz
 * S16LE stereo whose output the test reads: everything the sink renders, into a file on request. Both the
 * server and the reader end with {@link #close()}.
 *
 * <p>The sink is a {@code module-pipe-sink} timed by the system clock, writing into a FIFO the test drains
 * (its capacity raised to 1 MiB, 6 s of the sink's audio, so a starved reader does not make the sink drop;
 * the sink logs any drop). Not a null sink recorded through its monitor: a null sink rewinds when a stream
 * that ran dry gets data again, and its monitor's recording then lacks frames the stream gave it (55 to 1,763
 * frames per underrun, seen on PulseAudio 16.1 with parec at 20 ms and at 2 s of latency alike, while the
 * backend had written every byte; issue 17). The pipe sink never rewinds: what it writes is what it played.
 */
final class PulseServer implements AutoCloseable {

    private static final int O_RDONLY = 0;
    private static final int F_SETPIPE_SZ = 1031;
    private static final int PIPE_BYTES = 1 << 20;
    private static final MethodHandle OPEN;
    private static final MethodHandle FCNTL;
    private static final MethodHandle READ;
    private static final MethodHandle CLOSE;

    static {
        Linker linker = Linker.nativeLinker();
        var libc = linker.defaultLookup();
        OPEN = linker.downcallHandle(libc.findOrThrow("open"), FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT),
                Linker.Option.firstVariadicArg(2));
        FCNTL = linker.downcallHandle(libc.findOrThrow("fcntl"), FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT),
                Linker.Option.firstVariadicArg(2));
        READ = linker.downcallHandle(libc.findOrThrow("read"), FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG));
        CLOSE = linker.downcallHandle(libc.findOrThrow("close"), FunctionDescriptor.of(JAVA_INT, JAVA_INT));
    }

    final Path dir;
    final String address;
    private final Process server;
    private final Thread reader;
    private final int fifo;
    private OutputStream recording; // guarded by this
    private boolean sounded; // guarded by this: the recording has had a frame that is not silence

    PulseServer(Path dir) throws Exception {
        Assumptions.assumeTrue(Files.isExecutable(Path.of("/usr/bin/pulseaudio")),
                "PulseAudio (pulseaudio) is not installed: the pulse backend test is SKIPPED");
        Assumptions.assumeTrue(PulseSimple.unavailable() == null, PulseSimple.unavailable());
        this.dir = dir;
        Path socket = dir.resolve("native");
        Path sinkFifo = dir.resolve("sink.fifo");
        ProcessBuilder pb = new ProcessBuilder("pulseaudio", "-n", "--daemonize=no", "--exit-idle-time=-1",
                "--use-pid-file=no", "--log-level=debug",
                // PulseAudio 16 as root here loses memfd blocks ("Cannot send block reference with
                // non-registered memfd ID", its issue 824) and the monitor then records silence: no shared memory.
                "--disable-shm=yes", "-L", "module-native-protocol-unix socket=" + socket + " auth-anonymous=1",
                "-L", "module-pipe-sink sink_name=krun_test file=" + sinkFifo
                        + " rate=44100 format=s16le channels=2 use_system_clock_for_timing=yes")
                .redirectErrorStream(true).redirectOutput(dir.resolve("pulseaudio.log").toFile());
        Map<String, String> env = pb.environment();
        env.put("HOME", dir.toString());
        env.put("XDG_RUNTIME_DIR", dir.toString());
        env.put("PULSE_RUNTIME_PATH", dir.toString());
        server = pb.start();
        for (int i = 0; i < 100 && !(Files.exists(socket) && Files.exists(sinkFifo)); i++) {
            Thread.sleep(50);
        }
        if (!Files.exists(socket) || !Files.exists(sinkFifo)) {
            server.destroy();
            server.waitFor();
            throw new AssertionError("the server's socket and sink: " + Files.readString(dir.resolve("pulseaudio.log")));
        }
        address = "unix:" + socket;
        fifo = openFifo(sinkFifo);
        int size = libc(() -> (int) FCNTL.invokeExact(fifo, F_SETPIPE_SZ, PIPE_BYTES));
        assertTrue(size >= PIPE_BYTES, "the sink's FIFO holds " + size + " bytes");
        reader = Thread.ofPlatform().daemon(true).name("pulse-sink-reader").start(this::drain);
    }

    private interface IntCall {
        int call() throws Throwable;
    }

    private static int libc(IntCall call) {
        try {
            return call.call();
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static int openFifo(Path fifo) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment path = arena.allocateFrom(fifo.toString());
            int fd = libc(() -> (int) OPEN.invokeExact(path, O_RDONLY));
            assertTrue(fd >= 0, "open " + fifo);
            return fd;
        }
    }

    /** Reads the sink's FIFO until the server closes it, into the recording if there is one. */
    private void drain() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment buffer = arena.allocate(64 * 1024);
            byte[] bytes = new byte[(int) buffer.byteSize()];
            long read = 0;
            while (true) {
                long n = (long) READ.invokeExact(fifo, buffer, buffer.byteSize());
                if (n <= 0) {
                    return; // EOF: the server is gone (the test ends it; an error would show as missing frames)
                }
                MemorySegment.copy(buffer, java.lang.foreign.ValueLayout.JAVA_BYTE, 0, bytes, 0, (int) n);
                synchronized (this) {
                    if (recording != null) {
                        // The sink renders silence all along, idle too: a recording starts at its first sound.
                        // Frames are 4 bytes from the FIFO's start; a read may end inside one.
                        int from = 0;
                        if (!sounded) {
                            while (from < n && bytes[from] == 0) {
                                from++;
                            }
                            if (from < n) {
                                sounded = true;
                                from -= (int) ((read + from) % 4);
                                if (from < 0) {
                                    recording.write(new byte[-from]); // the frame's start, silent, came in the last read
                                    from = 0;
                                }
                            }
                        }
                        if (sounded) {
                            recording.write(bytes, from, (int) n - from);
                        }
                    }
                }
                read += n;
            }
        } catch (Throwable t) {
            throw new IllegalStateException("reading the sink's FIFO", t);
        }
    }

    /** Starts recording what the sink renders (S16LE stereo 44.1 kHz, raw) into {@code file}, from its first sound on. */
    synchronized void record(Path file) throws IOException {
        stopRecording();
        recording = Files.newOutputStream(file);
        sounded = false;
    }

    /** Ends the recording. */
    synchronized void stopRecording() throws IOException {
        if (recording != null) {
            recording.close();
            recording = null;
        }
    }

    /** The server log's lines where the sink dropped what it rendered (its FIFO full): none, for a recording to be whole. */
    List<String> sinkDrops() throws IOException {
        return Files.readAllLines(dir.resolve("pulseaudio.log")).stream().filter(l -> l.contains("Pipe-sink")
                && l.contains("dropped")).toList();
    }

    @Override
    public void close() throws Exception {
        try {
            server.destroy();
            server.waitFor();
            reader.join(5_000);
            stopRecording();
        } finally {
            libc(() -> (int) CLOSE.invokeExact(fifo));
        }
    }
}
