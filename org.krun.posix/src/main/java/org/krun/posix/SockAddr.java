package org.krun.posix;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT_UNALIGNED;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.HexFormat;

/**
 * A socket address as the kernel takes it ({@code struct sockaddr_in}, {@code sockaddr_in6},
 * {@code sockaddr_un}): made from Java values, written into native memory for a call, and read back from
 * what a call filled in. Addresses are kept in network byte order, ports as plain numbers.
 */
public sealed interface SockAddr {

    int AF_UNIX = 1;
    int AF_INET = 2;
    int AF_INET6 = 10;
    /** sizeof(struct sockaddr_storage): room for any address a call may return. */
    int STORAGE_SIZE = 128;
    /** The most path bytes sockaddr_un holds (sun_path is 108 bytes, NUL included when there is room). */
    int UNIX_PATH_MAX = 108;

    int family();

    /** Writes this address into {@code arena}; returns the segment, sized as the call's addrlen. */
    MemorySegment encode(Arena arena);

    /** An IPv4 address and port ({@code struct sockaddr_in}). */
    record Inet4(byte[] address, int port) implements SockAddr {
        public Inet4 {
            if (address.length != 4 || port < 0 || port > 0xffff) {
                throw new IllegalArgumentException("IPv4 address of 4 bytes and port 0-65535");
            }
            address = address.clone();
        }

        @Override
        public int family() {
            return AF_INET;
        }

        @Override
        public MemorySegment encode(Arena arena) {
            MemorySegment s = arena.allocate(16, 4);
            s.set(JAVA_SHORT_UNALIGNED, 0, (short) AF_INET);
            s.set(JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 2, (short) port);
            MemorySegment.copy(address, 0, s, JAVA_BYTE, 4, 4);
            return s;
        }

        @Override
        public byte[] address() {
            return address.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Inet4 i && i.port == port && Arrays.equals(i.address, address);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(address) * 31 + port;
        }

        @Override
        public String toString() {
            return (address[0] & 0xff) + "." + (address[1] & 0xff) + "." + (address[2] & 0xff) + "." + (address[3] & 0xff)
                    + ":" + port;
        }
    }

    /** An IPv6 address and port ({@code struct sockaddr_in6}). */
    record Inet6(byte[] address, int port, int scopeId) implements SockAddr {
        public Inet6 {
            if (address.length != 16 || port < 0 || port > 0xffff) {
                throw new IllegalArgumentException("IPv6 address of 16 bytes and port 0-65535");
            }
            address = address.clone();
        }

        @Override
        public int family() {
            return AF_INET6;
        }

        @Override
        public MemorySegment encode(Arena arena) {
            MemorySegment s = arena.allocate(28, 4);
            s.set(JAVA_SHORT_UNALIGNED, 0, (short) AF_INET6);
            s.set(JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 2, (short) port);
            MemorySegment.copy(address, 0, s, JAVA_BYTE, 8, 16);
            s.set(JAVA_INT_UNALIGNED, 24, scopeId);
            return s;
        }

        @Override
        public byte[] address() {
            return address.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Inet6 i && i.port == port && i.scopeId == scopeId && Arrays.equals(i.address, address);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(address) * 31 + port;
        }

        @Override
        public String toString() {
            return "[" + HexFormat.of().formatHex(address) + "]:" + port;
        }
    }

    /** A unix socket path ({@code struct sockaddr_un}), as raw bytes without the NUL. */
    record Unix(byte[] path) implements SockAddr {
        public Unix {
            if (path.length == 0 || path.length > UNIX_PATH_MAX - 1) {
                throw new IllegalArgumentException("unix socket path of 1 to " + (UNIX_PATH_MAX - 1) + " bytes");
            }
            path = path.clone();
        }

        public static Unix of(String path) {
            return new Unix(path.getBytes(StandardCharsets.UTF_8));
        }

        @Override
        public int family() {
            return AF_UNIX;
        }

        @Override
        public MemorySegment encode(Arena arena) {
            MemorySegment s = arena.allocate(2L + path.length + 1, 2);
            s.set(JAVA_SHORT_UNALIGNED, 0, (short) AF_UNIX);
            MemorySegment.copy(path, 0, s, JAVA_BYTE, 2, path.length);
            return s;
        }

        @Override
        public byte[] path() {
            return path.clone();
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Unix u && Arrays.equals(u.path, path);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(path);
        }

        @Override
        public String toString() {
            return new String(path, StandardCharsets.UTF_8);
        }
    }

    /**
     * The address in the first {@code length} bytes of {@code s} (a sockaddr a call filled in), or null
     * for a family this does not know or an unnamed unix socket.
     */
    static SockAddr decode(MemorySegment s, long length) {
        if (length < 2) {
            return null;
        }
        int family = s.get(JAVA_SHORT_UNALIGNED, 0) & 0xffff;
        int port = length >= 4 ? s.get(JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.BIG_ENDIAN), 2) & 0xffff : 0;
        return switch (family) {
            case AF_INET -> length < 8 ? null : new Inet4(s.asSlice(4, 4).toArray(JAVA_BYTE), port);
            case AF_INET6 -> length < 24 ? null
                    : new Inet6(s.asSlice(8, 16).toArray(JAVA_BYTE), port, length >= 28 ? s.get(JAVA_INT_UNALIGNED, 24) : 0);
            case AF_UNIX -> {
                int n = (int) Math.min(length - 2, UNIX_PATH_MAX);
                byte[] raw = s.asSlice(2, n).toArray(JAVA_BYTE);
                int end = 0;
                while (end < raw.length && raw[end] != 0) {
                    end++;
                }
                yield end == 0 ? null : new Unix(Arrays.copyOf(raw, end));
            }
            default -> null;
        };
    }
}
