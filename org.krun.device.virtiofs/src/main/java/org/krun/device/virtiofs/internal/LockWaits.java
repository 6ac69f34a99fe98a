package org.krun.device.virtiofs.internal;

import java.util.ArrayDeque;
import java.util.HashSet;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

/**
 * The blocking lock waits in progress (SETLKW, and flock with wait), each by the unique of the request
 * that waits, so that each can end early: by FUSE INTERRUPT for its unique, and all at once by device
 * reset or close ({@link #cancelAll}).
 *
 * <p>A wait cannot block in the kernel (F_OFD_SETLKW, flock without LOCK_NB): in a JVM no signal can be
 * sent to end such a call. It tries without blocking and sleeps between tries ({@link Wait#pause}), with
 * a back-off from {@link #FIRST_PAUSE_NANOS} to {@link #LONGEST_PAUSE_NANOS}; an unlock made through this
 * server wakes every waiter at once ({@link #wakeAll}), so locks pass between guest processes without
 * delay, and cancelling wakes the waiter at once.
 *
 * <p>Interrupts that find no waiting request are remembered (the {@link #EARLY_INTERRUPTS} most recent):
 * an INTERRUPT on the hiprio queue can overtake its request on the request queue, and the FUSE rule is
 * that the request is then interrupted when it arrives (Documentation/filesystems/fuse.rst,
 * "Interrupting filesystem operations": the daemon may otherwise answer EAGAIN and have the kernel send
 * the INTERRUPT again; virtio-fs has no such resend, so remembering is the way).
 */
final class LockWaits {
    static final long FIRST_PAUSE_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    static final long LONGEST_PAUSE_NANOS = TimeUnit.MILLISECONDS.toNanos(100);
    /** Uniques of interrupts that came before their request, kept at most. */
    static final int EARLY_INTERRUPTS = 256;

    /** One request's wait. Close it when the request ends. */
    final class Wait implements AutoCloseable {
        private final long unique;
        private final Thread thread = Thread.currentThread();
        private volatile boolean cancelled;
        private volatile boolean woken;
        private long pause = FIRST_PAUSE_NANOS;

        private Wait(long unique) {
            this.unique = unique;
        }

        /** Whether the request was interrupted, or the device is resetting or closing. */
        boolean cancelled() {
            return cancelled;
        }

        /** Sleeps until the next try: after the current back-off, or sooner when woken or cancelled. */
        void pause() {
            if (!woken && !cancelled) {
                LockSupport.parkNanos(this, pause);
            }
            woken = false;
            pause = Math.min(pause * 2, LONGEST_PAUSE_NANOS);
        }

        private void cancel() {
            cancelled = true;
            wake();
        }

        private void wake() {
            woken = true;
            LockSupport.unpark(thread);
        }

        @Override
        public void close() {
            synchronized (LockWaits.this) {
                waiting.remove(this);
            }
        }
    }

    /** Every wait in progress; a guest may give several the same unique, and each must still end on reset. */
    private final Set<Wait> waiting = new HashSet<>();
    private final Set<Long> early = new HashSet<>();
    private final ArrayDeque<Long> earlyOrder = new ArrayDeque<>();
    private boolean closed;

    /** The calling thread starts waiting for request {@code unique}; cancelled already if it was interrupted or the device is closing. */
    synchronized Wait begin(long unique) {
        Wait w = new Wait(unique);
        if (closed || early.remove(unique)) {
            w.cancelled = true;
        }
        waiting.add(w);
        return w;
    }

    /** FUSE INTERRUPT for request {@code unique}: ends its wait, or ends the wait it starts later. */
    synchronized void interrupt(long unique) {
        boolean found = false;
        for (Wait w : waiting) {
            if (w.unique == unique) {
                w.cancel();
                found = true;
            }
        }
        if (found) {
            return;
        }
        if (early.add(unique)) {
            earlyOrder.add(unique);
            if (earlyOrder.size() > EARLY_INTERRUPTS) {
                early.remove(earlyOrder.poll());
            }
        }
    }

    /** A lock was released: every waiter tries again now. */
    synchronized void wakeAll() {
        waiting.forEach(Wait::wake);
    }

    /** Device reset or close: every wait ends now, and every later one at once. */
    synchronized void cancelAll() {
        closed = true;
        waiting.forEach(Wait::cancel);
    }

    synchronized int waiting() {
        return waiting.size();
    }
}
