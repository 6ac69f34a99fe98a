package org.krun.spi.virtio;

import java.time.Duration;
import java.util.Objects;
import java.util.function.Consumer;

/**
 * Reports of the guest's mistakes, at most one per interval: a guest that repeats a malformed request in
 * a loop must not flood the host's log. Suppressed messages are counted and the count goes out with the
 * next message that passes. The sink is the device's own logger ({@code LOG::warn}). Thread-safe.
 */
public final class RateLimitedLog {
    private final Consumer<String> sink;
    private final long intervalNanos;
    private long nextAllowed;
    private boolean started;
    private long suppressed;

    public RateLimitedLog(Consumer<String> sink, Duration interval) {
        this.sink = Objects.requireNonNull(sink, "sink");
        this.intervalNanos = interval.toNanos();
    }

    /** Passes {@code message} to the sink unless another went out less than one interval ago. */
    public void warn(String message) {
        long held;
        synchronized (this) {
            long now = System.nanoTime();
            if (started && now - nextAllowed < 0) {
                suppressed++;
                return;
            }
            started = true;
            nextAllowed = now + intervalNanos;
            held = suppressed;
            suppressed = 0;
        }
        sink.accept(held == 0 ? message : message + " (" + held + " similar messages suppressed)");
    }

    /** Messages held back since the last one that went out. */
    public synchronized long suppressed() {
        return suppressed;
    }
}
