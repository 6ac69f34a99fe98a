package org.krun.device.snd.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

/**
 * PulseAudio's simple API ({@code libpulse-simple.so.0}, which PipeWire's pulse server also serves) through
 * FFM: one blocking playback or record connection per stream. Every call blocks; only a backend's own
 * threads make them. Linked once, when first used; {@link #unavailable()} says why it cannot be.
 */
final class PulseSimple implements AutoCloseable {

    // pulse/def.h, pulse/sample.h
    static final int PA_STREAM_PLAYBACK = 1;
    static final int PA_STREAM_RECORD = 2;
    static final int PA_SAMPLE_U8 = 0;
    static final int PA_SAMPLE_S16LE = 3;
    static final int PA_SAMPLE_FLOAT32LE = 5;
    static final int PA_SAMPLE_S32LE = 7;

    /** pulse/sample.h struct pa_sample_spec: format, rate, channels. */
    static final StructLayout SAMPLE_SPEC = MemoryLayout.structLayout(JAVA_INT.withName("format"),
            JAVA_INT.withName("rate"), JAVA_BYTE.withName("channels"), MemoryLayout.paddingLayout(3));
    /** pulse/def.h struct pa_buffer_attr: maxlength, tlength, prebuf, minreq, fragsize. */
    static final StructLayout BUFFER_ATTR = MemoryLayout.structLayout(JAVA_INT.withName("maxlength"),
            JAVA_INT.withName("tlength"), JAVA_INT.withName("prebuf"), JAVA_INT.withName("minreq"),
            JAVA_INT.withName("fragsize"));

    private static final MethodHandle NEW;
    private static final MethodHandle WRITE;
    private static final MethodHandle READ;
    private static final MethodHandle DRAIN;
    private static final MethodHandle FREE;
    private static final MethodHandle STRERROR;
    private static final String UNAVAILABLE;

    static {
        MethodHandle n = null, w = null, r = null, d = null, f = null, s = null;
        String why = null;
        try {
            Linker linker = Linker.nativeLinker();
            SymbolLookup lib = SymbolLookup.libraryLookup("libpulse-simple.so.0", Arena.global());
            n = linker.downcallHandle(lib.findOrThrow("pa_simple_new"), FunctionDescriptor.of(ADDRESS, ADDRESS, ADDRESS,
                    JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
            w = linker.downcallHandle(lib.findOrThrow("pa_simple_write"),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
            r = linker.downcallHandle(lib.findOrThrow("pa_simple_read"),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS));
            d = linker.downcallHandle(lib.findOrThrow("pa_simple_drain"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
            f = linker.downcallHandle(lib.findOrThrow("pa_simple_free"), FunctionDescriptor.ofVoid(ADDRESS));
            s = linker.downcallHandle(lib.findOrThrow("pa_strerror"), FunctionDescriptor.of(ADDRESS, JAVA_INT));
        } catch (IllegalArgumentException | java.util.NoSuchElementException e) {
            why = "PulseAudio's client library (libpulse-simple.so.0) is not installed: " + e.getMessage();
        }
        NEW = n;
        WRITE = w;
        READ = r;
        DRAIN = d;
        FREE = f;
        STRERROR = s;
        UNAVAILABLE = why;
    }

    /** Why the library cannot be used, or null. */
    static String unavailable() {
        return UNAVAILABLE;
    }

    /** A connection failed: PulseAudio's reason. */
    static final class PulseException extends Exception {
        private static final long serialVersionUID = 1L;

        PulseException(String message) {
            super(message);
        }
    }

    private final Arena arena = Arena.ofShared();
    private final MemorySegment error = arena.allocate(JAVA_INT);
    private MemorySegment handle;

    /**
     * Connects a playback or record stream in {@code params}' format to {@code server} (null: the default
     * server, or {@code $PULSE_SERVER}), with about {@code latencyMillis} of buffering.
     */
    PulseSimple(String server, int direction, PcmParams params, String streamName, int latencyMillis) throws PulseException {
        if (UNAVAILABLE != null) {
            arena.close();
            throw new PulseException(UNAVAILABLE);
        }
        MemorySegment spec = arena.allocate(SAMPLE_SPEC);
        spec.set(JAVA_INT, 0, switch (params.format()) {
            case Snd.FMT_U8 -> PA_SAMPLE_U8;
            case Snd.FMT_S16 -> PA_SAMPLE_S16LE;
            case Snd.FMT_S32 -> PA_SAMPLE_S32LE;
            default -> PA_SAMPLE_FLOAT32LE;
        });
        spec.set(JAVA_INT, 4, params.rateHz());
        spec.set(JAVA_BYTE, 8, (byte) params.channels());
        int latencyBytes = (int) Math.min(Integer.MAX_VALUE, params.bytesPerSecond() * latencyMillis / 1000);
        MemorySegment attr = arena.allocate(BUFFER_ATTR);
        attr.set(JAVA_INT, 0, -1); // maxlength: the server's default
        attr.set(JAVA_INT, 4, direction == PA_STREAM_PLAYBACK ? latencyBytes : -1);
        attr.set(JAVA_INT, 8, -1);
        attr.set(JAVA_INT, 12, -1);
        attr.set(JAVA_INT, 16, direction == PA_STREAM_RECORD ? latencyBytes : -1);
        try {
            MemorySegment serverName = server == null ? MemorySegment.NULL : arena.allocateFrom(server);
            handle = (MemorySegment) NEW.invokeExact(serverName, arena.allocateFrom("krun"), direction,
                    MemorySegment.NULL, arena.allocateFrom(streamName), spec, MemorySegment.NULL, attr, error);
        } catch (Throwable t) {
            arena.close();
            throw new IllegalStateException("pa_simple_new", t);
        }
        if (handle.equals(MemorySegment.NULL)) {
            String reason = strerror(error.get(JAVA_INT, 0));
            arena.close();
            throw new PulseException(reason);
        }
    }

    private static String strerror(int code) {
        try {
            MemorySegment s = (MemorySegment) STRERROR.invokeExact(code);
            return s.equals(MemorySegment.NULL) ? "error " + code : s.reinterpret(256).getString(0);
        } catch (Throwable t) {
            return "error " + code;
        }
    }

    /** Writes all of {@code data} (blocks while the server's buffer is full). */
    void write(MemorySegment data) throws PulseException {
        int rc;
        try {
            rc = (int) WRITE.invokeExact(handle, data, data.byteSize(), error);
        } catch (Throwable t) {
            throw new IllegalStateException("pa_simple_write", t);
        }
        if (rc < 0) {
            throw new PulseException("pa_simple_write: " + strerror(error.get(JAVA_INT, 0)));
        }
    }

    /** Reads exactly {@code into.byteSize()} bytes (blocks until recorded). */
    void read(MemorySegment into) throws PulseException {
        int rc;
        try {
            rc = (int) READ.invokeExact(handle, into, into.byteSize(), error);
        } catch (Throwable t) {
            throw new IllegalStateException("pa_simple_read", t);
        }
        if (rc < 0) {
            throw new PulseException("pa_simple_read: " + strerror(error.get(JAVA_INT, 0)));
        }
    }

    /** Waits until everything written has been played. */
    void drain() {
        try {
            int rc = (int) DRAIN.invokeExact(handle, error);
        } catch (Throwable t) {
            throw new IllegalStateException("pa_simple_drain", t);
        }
    }

    @Override
    public void close() {
        if (handle != null && !handle.equals(MemorySegment.NULL)) {
            try {
                FREE.invokeExact(handle);
            } catch (Throwable t) {
                throw new IllegalStateException("pa_simple_free", t);
            }
            handle = null;
        }
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}
