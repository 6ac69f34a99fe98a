package org.krun.hv.kvm.internal;

import java.io.ByteArrayOutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.Map;

/**
 * The KVM backend's state blobs: a magic naming what the blob holds, a version, then sections of
 * (tag, length, the bytes of one KVM structure as KVM_GET_* filled it). Read back with every length
 * checked against what is left, so a corrupt blob is one line of error, never a large allocation.
 */
final class KvmStateBlob {
    static final int VERSION = 1;
    /** "KVMC": one vCPU. */
    static final int VCPU_MAGIC = 0x4b564d43;
    /** "KVMV": the VM's interrupt controllers, PIT and clock. */
    static final int VM_MAGIC = 0x4b564d56;
    /** No KVM structure krun saves is larger (XSAVE2 with AMX state is about 11 KiB). */
    static final int MAX_SECTION = 1 << 20;

    private KvmStateBlob() {
    }

    static final class Writer {
        private final ByteArrayOutputStream out = new ByteArrayOutputStream();

        Writer(int magic) {
            putInt(magic);
            putInt(VERSION);
        }

        Writer put(int tag, MemorySegment bytes) {
            return put(tag, bytes.toArray(ValueLayout.JAVA_BYTE));
        }

        Writer put(int tag, byte[] bytes) {
            putInt(tag);
            putInt(bytes.length);
            out.writeBytes(bytes);
            return this;
        }

        private void putInt(int v) {
            out.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putInt(v).array());
        }

        byte[] toBytes() {
            return out.toByteArray();
        }
    }

    /** The sections of {@code blob} by tag, after checking magic and version. */
    static Map<Integer, byte[]> read(byte[] blob, int magic, String what) {
        ByteBuffer b = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 8 || b.getInt() != magic) {
            throw new IllegalArgumentException(what + " state is not a KVM " + what + " state");
        }
        int version = b.getInt();
        if (version != VERSION) {
            throw new IllegalArgumentException(what + " state has version " + version + "; this backend reads " + VERSION);
        }
        Map<Integer, byte[]> sections = new HashMap<>();
        while (b.hasRemaining()) {
            if (b.remaining() < 8) {
                throw new IllegalArgumentException(what + " state is truncated");
            }
            int tag = b.getInt();
            int length = b.getInt();
            if (length < 0 || length > MAX_SECTION || length > b.remaining()) {
                throw new IllegalArgumentException(what + " state is truncated or corrupt (section " + tag + ", " + length + " bytes)");
            }
            byte[] data = new byte[length];
            b.get(data);
            sections.put(tag, data);
        }
        return sections;
    }

    /** The section {@code tag}, which must be exactly {@code size} bytes. */
    static byte[] require(Map<Integer, byte[]> sections, int tag, long size, String what) {
        byte[] s = sections.get(tag);
        if (s == null) {
            throw new IllegalArgumentException(what + " state lacks section " + tag);
        }
        if (s.length != size) {
            throw new IllegalArgumentException(what + " state section " + tag + " has " + s.length + " bytes, not " + size);
        }
        return s;
    }
}
