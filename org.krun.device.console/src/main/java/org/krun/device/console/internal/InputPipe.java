package org.krun.device.console.internal;

import java.io.InterruptedIOException;
import java.io.OutputStream;

/**
 * A bounded byte pipe from the host (any thread) to the device (the event loop). Writers block while it
 * is full, which is how a guest that does not read pushes back on its feeder. {@link #close()} is
 * end-of-file; {@link #discard()} (the VM stopped) unblocks writers and drops everything after.
 */
final class InputPipe extends OutputStream {
    static final int CAPACITY = 64 * 1024;

    private final byte[] buf = new byte[CAPACITY];
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
        if (k > 0) {
            notifyAll();
        }
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
        notifyAll();
    }
}
