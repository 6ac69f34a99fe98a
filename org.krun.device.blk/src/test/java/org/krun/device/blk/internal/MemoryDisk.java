package org.krun.device.blk.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/** A {@link DiskBackend} in a byte array that records every call, for device tests. */
final class MemoryDisk implements DiskBackend {
    final byte[] bytes;
    final List<String> calls = new ArrayList<>();
    final List<String> violations = new ArrayList<>();
    boolean failNext;
    boolean closed;

    MemoryDisk(int size) {
        this.bytes = new byte[size];
    }

    /**
     * The device must never pass a range outside the disk: an Error, and recorded in {@link #violations} for
     * callers whose worker catches every Throwable (a request's failure answers the guest, it does not end a test).
     */
    private void inside(long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > bytes.length || offset % 512 != 0) {
            String v = "device passed range " + offset + "+" + length + " of a " + bytes.length + "-byte disk";
            synchronized (this) {
                violations.add(v);
            }
            throw new AssertionError(v);
        }
    }

    private synchronized void record(String call) throws IOException {
        calls.add(call);
        if (failNext) {
            failNext = false;
            throw new IOException("injected failure of " + call);
        }
    }

    synchronized List<String> calls() {
        return List.copyOf(calls);
    }

    @Override
    public long capacity() {
        return bytes.length;
    }

    @Override
    public void read(long offset, List<MemorySegment> dst) throws IOException {
        inside(offset, Segments.size(dst));
        record("read " + offset + "+" + Segments.size(dst));
        int at = (int) offset;
        for (MemorySegment s : dst) {
            MemorySegment.copy(bytes, at, s, JAVA_BYTE, 0, (int) s.byteSize());
            at += (int) s.byteSize();
        }
    }

    @Override
    public void write(long offset, List<MemorySegment> src) throws IOException {
        inside(offset, Segments.size(src));
        record("write " + offset + "+" + Segments.size(src));
        int at = (int) offset;
        for (MemorySegment s : src) {
            MemorySegment.copy(s, JAVA_BYTE, 0, bytes, at, (int) s.byteSize());
            at += (int) s.byteSize();
        }
    }

    @Override
    public void flush() throws IOException {
        record("flush");
    }

    @Override
    public void discard(long offset, long length) throws IOException {
        inside(offset, length);
        record("discard " + offset + "+" + length);
    }

    @Override
    public void writeZeroes(long offset, long length, boolean mayUnmap) throws IOException {
        inside(offset, length);
        record("write-zeroes " + offset + "+" + length + (mayUnmap ? " unmap" : ""));
        java.util.Arrays.fill(bytes, (int) offset, (int) (offset + length), (byte) 0);
    }

    @Override
    public int discardGranularity() {
        return 4096;
    }

    @Override
    public void close() {
        closed = true;
    }

    /** Calls other than reads and writes, in order. */
    synchronized List<String> otherCalls() {
        List<String> out = new ArrayList<>();
        for (String c : calls) {
            if (!c.startsWith("read ") && !c.startsWith("write ")) {
                out.add(c);
            }
        }
        return out;
    }
}
