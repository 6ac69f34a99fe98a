package org.krun.device.rng.internal;

import java.util.concurrent.TimeUnit;

import org.slf4j.Logger;

/**
 * Warnings about the guest's mistakes, at most one per interval: a guest that repeats a malformed request
 * in a loop must not flood the host's log. Suppressed messages are counted and the count is logged with
 * the next message that gets through.
 */
final class RateLimitedLog {
    private final Logger log;
    private final long intervalNanos;
    private long nextAllowed;
    private boolean started;
    private long suppressed;

    RateLimitedLog(Logger log, long interval, TimeUnit unit) {
        this.log = log;
        this.intervalNanos = unit.toNanos(interval);
    }

    /** Logs {@code message} at WARN unless another message went out less than one interval ago. */
    synchronized void warn(String message) {
        long now = System.nanoTime();
        if (started && now - nextAllowed < 0) {
            suppressed++;
            return;
        }
        started = true;
        nextAllowed = now + intervalNanos;
        if (suppressed > 0) {
            log.warn("{} ({} similar messages suppressed)", message, suppressed);
            suppressed = 0;
        } else {
            log.warn(message);
        }
    }

    /** Messages dropped since the last one logged. */
    synchronized long suppressed() {
        return suppressed;
    }
}
