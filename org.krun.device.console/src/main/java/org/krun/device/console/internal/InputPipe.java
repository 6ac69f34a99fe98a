package org.krun.device.console.internal;

import java.io.InterruptedIOException;
import java.io.OutputStream;

/**
 * A bounded byte pipe from the host (any thread) to the device (the event loop). Writers block while it
 * is full, which is how a guest that does not read pushes back on its feeder. {@link #close()} is
 * end-of-file; {@link #discard()} (the VM stopped) unblocks writers and drops everything after. The buffer
 * exists only while bytes wait in it: a VM whose input is idle (most of thousands in one JVM) holds none.
 */
final class InputPipe extends OutputStream {
    static final int CAPACITY = 64 * 1024;

    /** The ring, made by the first write that finds it absent and dropped whenever it empties. */
    private byte[] buf;
    private final Runnable onData;
    private int head;
    private int count;
    private boolean closed;
    private boolean discarding;

    /** @param onData called (outside the lock) after bytes arrive or the pipe closes */
    InputPipe(Runnable onData) {
        this.onData = onData;
    }

    @Override
    public void write(int b) throws InterruptedIOException {
        write(new byte[] {(byte) b}, 0, 1);
    }

    @Override
    public void write(byte[] b, int off, int len) throws InterruptedIOException {
        java.util.Objects.checkFromIndexSize(off, len, b.length);
        int done = 0;
        while (done < len) {
            synchronized (this) {
                while (count == CAPACITY && !discarding && !closed) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                        throw new InterruptedIOException("console input interrupted");
                    }
                }
                if (discarding || closed) {
                    return; // the VM is gone, or input already ended: drop
                }
                if (buf == null) {
                    buf = new byte[CAPACITY];
                    head = 0;
                }
                int tail = (head + count) % CAPACITY;
                int n = Math.min(len - done, Math.min(CAPACITY - count, CAPACITY - tail));
                System.arraycopy(b, off + done, buf, tail, n);
                count += n;
                done += n;
            }
            onData.run();
        }
    }

    /** Takes up to {@code max} bytes without blocking; an empty array when none are buffered. */
    synchronized byte[] take(int max) {
        byte[] out = peek(max);
        consume(out.length);
        return out;
    }

    /** Copies up to {@code max} buffered bytes without removing them. */
    synchronized byte[] peek(int max) {
        int n = Math.min(max, count);
        byte[] out = new byte[n];
        if (n == 0) {
            return out;
        }
        int first = Math.min(n, CAPACITY - head);
        System.arraycopy(buf, head, out, 0, first);
        System.arraycopy(buf, 0, out, first, n - first);
        return out;
    }

    /** Removes {@code n} bytes (at most those buffered) from the front. */
    synchronized void consume(int n) {
        int k = Math.min(n, count);
        head = (head + k) % CAPACITY;
        count -= k;
        if (count == 0) {
            buf = null;
        }
        if (k > 0) {
            notifyAll();
        }
    }

    /** Whether the ring is allocated now (tests). */
    synchronized boolean holdsBuffer() {
        return buf != null;
    }

    synchronized int available() {
        return count;
    }

    /** Closed by the writer and fully taken. */
    synchronized boolean atEof() {
        return closed && count == 0;
    }

    @Override
    public void close() {
        synchronized (this) {
            if (closed) {
                return;
            }
            closed = true;
            notifyAll();
        }
        onData.run();
    }

    synchronized void discard() {
        discarding = true;
        count = 0;
        buf = null;
        notifyAll();
    }
}
