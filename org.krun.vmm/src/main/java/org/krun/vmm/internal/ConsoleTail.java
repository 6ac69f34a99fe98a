package org.krun.vmm.internal;

import java.io.IOException;
import java.io.OutputStream;

import org.krun.api.ConsoleSpec;

/**
 * A VM's most recent console output ({@link org.krun.api.VirtualMachine#consoleTail()}): a bounded ring
 * buffer fed by tee streams put around the streams of the VM's {@link ConsoleSpec}. Bytes enter the ring
 * before they go on to the embedder's stream, so a failing or blocking stream loses nothing here.
 */
final class ConsoleTail {
    private final byte[] ring;
    /** Bytes appended so far; the next byte goes to {@code ring[written % ring.length]}. */
    private long written;

    ConsoleTail(int capacity) {
        if (capacity <= 0) {
            throw new IllegalArgumentException("capacity must be positive: " + capacity);
        }
        this.ring = new byte[capacity];
    }

    /** A console spec like {@code spec} whose output streams also feed this tail. */
    ConsoleSpec tee(ConsoleSpec spec) {
        OutputStream stdout = tee(spec.stdout());
        // Terminal mode hands one stream for both: keep them one stream, so ordering stays the writer's.
        OutputStream stderr = spec.stderr() == spec.stdout() ? stdout : tee(spec.stderr());
        return spec.withStreams(stdout, stderr);
    }

    /** A stream that feeds this tail, then {@code target}. */
    OutputStream tee(OutputStream target) {
        return new Tee(target);
    }

    synchronized void append(byte[] b, int off, int len) {
        if (len >= ring.length) {
            off += len - ring.length;
            written += len - ring.length;
            len = ring.length;
        }
        int start = (int) (written % ring.length);
        int first = Math.min(len, ring.length - start);
        System.arraycopy(b, off, ring, start, first);
        System.arraycopy(b, off + first, ring, 0, len - first);
        written += len;
    }

    /** The retained bytes, oldest first. */
    synchronized byte[] snapshot() {
        int size = (int) Math.min(written, ring.length);
        byte[] out = new byte[size];
        int start = (int) ((written - size) % ring.length);
        int first = Math.min(size, ring.length - start);
        System.arraycopy(ring, start, out, 0, first);
        System.arraycopy(ring, 0, out, first, size - first);
        return out;
    }

    /** Copies everything written into the tail, then passes it on. */
    private final class Tee extends OutputStream {
        private final OutputStream target;

        Tee(OutputStream target) {
            this.target = target;
        }

        @Override
        public void write(int b) throws IOException {
            append(new byte[] {(byte) b}, 0, 1);
            target.write(b);
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            java.util.Objects.checkFromIndexSize(off, len, b.length);
            append(b, off, len);
            target.write(b, off, len);
        }

        @Override
        public void flush() throws IOException {
            target.flush();
        }

        @Override
        public void close() throws IOException {
            target.close();
        }
    }
}
