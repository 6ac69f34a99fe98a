package org.krun.vmm.internal.snapshot;

import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32C;

/**
 * The snapshot's state file: {@code "KRUNSNAP"}, the format version (u32), the body's length (u32), the
 * body, and the body's CRC-32C (u32), all big-endian. The body holds, each string as u16 length + UTF-8
 * and each blob as u32 length + bytes: backend, CPU signature, shape, RAM size (u64), the VM blob, the
 * vCPU blobs (u32 count), the transport and device blobs (u32 count, a pair per device), the legacy blobs
 * (u32 count, name + blob each).
 *
 * <p>Reading checks the whole file's size, then the checksum, before it parses anything, and every count
 * and length against what is left: a truncated or corrupt file is one line of error, and never makes the
 * reader allocate more than the file's size.
 */
public final class SnapshotFile {
    public static final String STATE_FILE = "state";
    public static final String RAM_FILE = "ram";
    static final byte[] MAGIC = "KRUNSNAP".getBytes(StandardCharsets.US_ASCII);
    public static final int FORMAT_VERSION = 1;
    /** A state file is kilobytes (no guest RAM in it); anything this large is not one. */
    static final long MAX_STATE_FILE = 64L << 20;
    static final int MAX_COUNT = 4096;

    private SnapshotFile() {
    }

    /** Writes {@code state} to {@code file} through a temporary file and a rename. */
    public static void write(Path file, SnapshotState state) {
        byte[] bytes = encode(state);
        Path tmp = file.resolveSibling(file.getFileName() + ".tmp");
        try {
            Files.write(tmp, bytes);
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot write snapshot state " + file + ": " + e.getMessage(), e);
        }
    }

    /**
     * Reads the state file {@code file}.
     *
     * @throws SnapshotException (one line, naming the file) when it is missing, truncated, corrupt or of
     *         another format version
     */
    public static SnapshotState read(Path file) {
        byte[] bytes;
        try {
            long size = Files.size(file);
            if (size > MAX_STATE_FILE) {
                throw new SnapshotException("snapshot state " + file + " is " + size + " bytes: not a krun snapshot state file");
            }
            bytes = Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new SnapshotException("snapshot state " + file + " does not exist");
        } catch (IOException e) {
            throw new SnapshotException("cannot read snapshot state " + file + ": " + e.getMessage());
        }
        try {
            return decode(bytes);
        } catch (SnapshotException e) {
            throw new SnapshotException("snapshot state " + file + " " + e.getMessage());
        }
    }

    static byte[] encode(SnapshotState s) {
        try {
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            DataOutputStream out = new DataOutputStream(body);
            string(out, s.backend());
            string(out, s.cpuSignature());
            string(out, s.shape());
            out.writeLong(s.ramBytes());
            blob(out, s.vm());
            out.writeInt(s.vcpus().size());
            for (byte[] v : s.vcpus()) {
                blob(out, v);
            }
            out.writeInt(s.transports().size());
            for (int i = 0; i < s.transports().size(); i++) {
                blob(out, s.transports().get(i));
                blob(out, s.devices().get(i));
            }
            Map<String, byte[]> legacy = new TreeMap<>(s.legacy());
            out.writeInt(legacy.size());
            for (Map.Entry<String, byte[]> e : legacy.entrySet()) {
                string(out, e.getKey());
                blob(out, e.getValue());
            }
            out.flush();
            byte[] b = body.toByteArray();
            CRC32C crc = new CRC32C();
            crc.update(b);
            ByteBuffer file = ByteBuffer.allocate(MAGIC.length + 4 + 4 + b.length + 4);
            file.put(MAGIC).putInt(FORMAT_VERSION).putInt(b.length).put(b).putInt((int) crc.getValue());
            return file.array();
        } catch (IOException e) {
            throw new IllegalStateException(e); // a ByteArrayOutputStream does not fail
        }
    }

    private static void string(DataOutputStream out, String s) throws IOException {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        if (b.length > 0xffff) {
            throw new IllegalArgumentException("string too long for a snapshot state file");
        }
        out.writeShort(b.length);
        out.write(b);
    }

    private static void blob(DataOutputStream out, byte[] b) throws IOException {
        out.writeInt(b.length);
        out.write(b);
    }

    /** Parses a whole state file's bytes; errors say what is wrong, without the file name. */
    static SnapshotState decode(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes);
        if (bytes.length < MAGIC.length + 12) {
            throw new SnapshotException("is truncated (" + bytes.length + " bytes)");
        }
        byte[] magic = new byte[MAGIC.length];
        b.get(magic);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new SnapshotException("is not a krun snapshot state file");
        }
        int version = b.getInt();
        if (version != FORMAT_VERSION) {
            throw new SnapshotException("has format version " + version + "; this krun reads version " + FORMAT_VERSION);
        }
        int length = b.getInt();
        if (length < 0 || length > b.remaining() - 4) {
            throw new SnapshotException("is truncated (the body needs " + Integer.toUnsignedString(length) + " bytes, "
                    + Math.max(0, b.remaining() - 4) + " are there)");
        }
        if (length != b.remaining() - 4) {
            throw new SnapshotException("is corrupt (" + (b.remaining() - 4 - length) + " bytes after its end)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, b.position(), length);
        if ((int) crc.getValue() != b.getInt(b.position() + length)) {
            throw new SnapshotException("is corrupt (checksum mismatch)");
        }
        ByteBuffer body = b.slice(b.position(), length);
        try {
            String backend = string(body);
            String cpu = string(body);
            String shape = string(body);
            long ram = body.getLong();
            if (ram <= 0 || (ram & 0xfff) != 0) {
                throw new SnapshotException("is corrupt (RAM size " + ram + ")");
            }
            byte[] vm = blob(body);
            int vcpuCount = count(body, "vCPUs");
            List<byte[]> vcpus = new ArrayList<>(vcpuCount);
            for (int i = 0; i < vcpuCount; i++) {
                vcpus.add(blob(body));
            }
            int deviceCount = count(body, "devices");
            List<byte[]> transports = new ArrayList<>(deviceCount);
            List<byte[]> devices = new ArrayList<>(deviceCount);
            for (int i = 0; i < deviceCount; i++) {
                transports.add(blob(body));
                devices.add(blob(body));
            }
            int legacyCount = count(body, "legacy devices");
            Map<String, byte[]> legacy = new LinkedHashMap<>();
            for (int i = 0; i < legacyCount; i++) {
                legacy.put(string(body), blob(body));
            }
            if (body.hasRemaining()) {
                throw new SnapshotException("is corrupt (" + body.remaining() + " unread bytes)");
            }
            return new SnapshotState(backend, cpu, shape, ram, vm, vcpus, transports, devices, legacy);
        } catch (BufferUnderflowException e) {
            throw new SnapshotException("is corrupt (a field runs past the end)");
        }
    }

    private static int count(ByteBuffer b, String what) {
        int n = b.getInt();
        // Each element takes at least 4 bytes: a count beyond that is corrupt, whatever MAX_COUNT says.
        if (n < 0 || n > MAX_COUNT || n > b.remaining() / 4) {
            throw new SnapshotException("is corrupt (" + Integer.toUnsignedString(n) + " " + what + ")");
        }
        return n;
    }

    private static String string(ByteBuffer b) {
        int n = Short.toUnsignedInt(b.getShort());
        if (n > b.remaining()) {
            throw new SnapshotException("is corrupt (a string runs past the end)");
        }
        byte[] s = new byte[n];
        b.get(s);
        return new String(s, StandardCharsets.UTF_8);
    }

    private static byte[] blob(ByteBuffer b) {
        int n = b.getInt();
        if (n < 0 || n > b.remaining()) {
            throw new SnapshotException("is corrupt (a " + Integer.toUnsignedString(n) + "-byte field in " + b.remaining() + " bytes)");
        }
        byte[] s = new byte[n];
        b.get(s);
        return s;
    }
}
