package org.krun.spi.virtio;

import java.time.Duration;

/**
 * The requests of one device activation that run off the event loop, between submission and the end of
 * their work. Once closed (reset, close), requests not yet started never start, and
 * {@link #closeAndAwait} waits for the running ones, so nothing touches guest memory after the device let
 * go of it. Thread-safe.
 */
final class InFlight {
    private int queued;
    private int running;
    private boolean closed;

    synchronized void submitted() {
        queued++;
    }

    synchronized void rejected() {
        queued--;
        notifyIfIdle();
    }

    /** A worker picks a request up; false when the activation has ended (skip it). */
    synchronized boolean start() {
        queued--;
        if (closed) {
            notifyIfIdle();
            return false;
        }
        running++;
        return true;
    }

    synchronized void finish() {
        if (--running == 0) {
            notifyAll();
        }
    }

    private void notifyIfIdle() {
        if (queued + running == 0) {
            notifyAll();
        }
    }

    /**
     * Waits up to {@code timeout} until no request is queued or running (without closing: requests queued
     * meanwhile still run); whether that happened.
     */
    synchronized boolean awaitIdle(Duration timeout) {
        return awaitUntil(timeout, () -> queued + running == 0);
    }

    synchronized int count() {
        return queued + running;
    }

    synchronized int running() {
        return running;
    }

    /** Closes, then waits up to {@code timeout} for the running requests; whether they all finished. */
    synchronized boolean closeAndAwait(Duration timeout) {
        closed = true;
        return awaitUntil(timeout, () -> running == 0);
    }

    /**
     * Waits (holding this monitor between checks) until {@code done} holds or {@code timeout} passed; an
     * interrupt does not end the wait early and is restored for the caller. Whether {@code done} held.
     */
    private synchronized boolean awaitUntil(Duration timeout, java.util.function.BooleanSupplier done) {
        long deadline = System.nanoTime() + timeout.toNanos();
        boolean interrupted = false;
        try {
            while (!done.getAsBoolean()) {
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    return false;
                }
                try {
                    wait(Math.max(1, left / 1_000_000));
                } catch (InterruptedException e) {
                    interrupted = true;
                }
            }
            return true;
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
