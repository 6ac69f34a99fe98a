package org.krun.device.vsock.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

import org.krun.posix.SockAddr;

/**
 * The messages of krun's transparent socket impersonation protocol (TSI.md): parsing of what the guest
 * sends, encoding of what the device answers. Pure: no sockets here.
 */
final class TsiMessages {

    static final int VERSION = 1;
    static final int OP_CONNECT = 1;
    static final int OP_DGRAM = 2;
    static final int OP_LISTEN = 3;
    static final int OP_ACCEPT = 4;
    static final int FLAG_BIND = 1;

    static final int REQUEST_HEADER = 16;
    static final int RESPONSE_HEADER = 12;
    static final int FRAME_HEADER = 12;
    static final int RECORD_HEADER = 12;
    /** Longest address: a unix socket path (sun_path). */
    static final int MAX_ADDR = SockAddr.UNIX_PATH_MAX;
    /** Largest datagram payload (IPv6 UDP over a 64 KiB packet). */
    static final int MAX_DATAGRAM = 65527;

    static final int FRAME_DATA = 0;
    static final int FRAME_CONNECT = 1;
    static final int FRAME_ERROR = 2;

    private TsiMessages() {
    }

    /** A request, as the guest sent it (the address still raw). */
    record Request(int op, int family, int port, byte[] addr, long id, int flags) {
        boolean bind() {
            return (flags & FLAG_BIND) != 0;
        }
    }

    /** Why a request is refused before any socket is made. */
    static final class Malformed extends Exception {
        private static final long serialVersionUID = 1L;

        Malformed(String message) {
            super(message, null, false, false);
        }
    }

    /**
     * The request at the start of {@code buf} (position 0, limit = bytes received), or null when more bytes
     * are needed.
     */
    static Request parseRequest(ByteBuffer buf) throws Malformed {
        ByteBuffer b = buf.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < REQUEST_HEADER) {
            return null;
        }
        int version = b.get() & 0xff;
        int op = b.get() & 0xff;
        int family = b.getShort() & 0xffff;
        int port = b.getShort() & 0xffff;
        int addrlen = b.getShort() & 0xffff;
        long id = Integer.toUnsignedLong(b.getInt());
        int flags = b.getInt();
        if (version != VERSION) {
            throw new Malformed("version " + version);
        }
        if (op < OP_CONNECT || op > OP_ACCEPT) {
            throw new Malformed("op " + op);
        }
        if (addrlen > MAX_ADDR) {
            throw new Malformed("address of " + addrlen + " bytes");
        }
        if (b.remaining() < addrlen) {
            return null;
        }
        byte[] addr = new byte[addrlen];
        b.get(addr);
        return new Request(op, family, port, addr, id, flags);
    }

    /** Bytes of the request at the start of {@code buf} once it is complete (header and address). */
    static int requestLength(Request r) {
        return REQUEST_HEADER + r.addr().length;
    }

    /**
     * The socket address a request names: AF_INET needs 4 address bytes (or none: any), AF_INET6 16 (or
     * none), AF_UNIX a path. Null for a family or length that does not fit.
     */
    static SockAddr address(int family, int port, byte[] addr) {
        return switch (family) {
            case SockAddr.AF_INET -> addr.length == 4 ? new SockAddr.Inet4(addr, port)
                    : addr.length == 0 ? new SockAddr.Inet4(new byte[4], port) : null;
            case SockAddr.AF_INET6 -> addr.length == 16 ? new SockAddr.Inet6(addr, port, 0)
                    : addr.length == 0 ? new SockAddr.Inet6(new byte[16], port, 0) : null;
            case SockAddr.AF_UNIX -> addr.length == 0 || addr.length >= SockAddr.UNIX_PATH_MAX ? null : unix(addr);
            default -> null;
        };
    }

    private static SockAddr unix(byte[] path) {
        for (byte c : path) {
            if (c == 0) {
                return null;
            }
        }
        return new SockAddr.Unix(path);
    }

    /** A response: status (0 or an errno) and the local address the host socket got (may be null). */
    static ByteBuffer response(int status, SockAddr local) {
        return withAddress(RESPONSE_HEADER, local, h -> h.putInt(status));
    }

    /** An incoming-connection record of a LISTEN connection. */
    static ByteBuffer record(long id, SockAddr peer) {
        return withAddress(RECORD_HEADER, peer, h -> h.putInt((int) id));
    }

    /** A datagram frame for the guest: {@code data} from {@code source}. */
    static ByteBuffer frame(int kind, SockAddr source, ByteBuffer data) {
        byte[] addr = rawAddress(source);
        ByteBuffer b = ByteBuffer.allocate(FRAME_HEADER + addr.length + data.remaining()).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort((short) data.remaining()).put((byte) kind).put((byte) 0);
        b.putShort((short) (source == null ? 0 : source.family())).putShort((short) port(source))
                .putShort((short) addr.length).putShort((short) 0);
        b.put(addr).put(data).flip();
        return b;
    }

    /** An ERROR frame (an asynchronous error of a datagram socket, the errno in the port field). */
    static ByteBuffer errorFrame(int errno) {
        ByteBuffer b = ByteBuffer.allocate(FRAME_HEADER).order(ByteOrder.LITTLE_ENDIAN);
        b.putShort((short) 0).put((byte) FRAME_ERROR).put((byte) 0).putShort((short) 0).putShort((short) errno)
                .putShort((short) 0).putShort((short) 0).flip();
        return b;
    }

    /** A datagram frame the guest sent, parsed; null when more bytes are needed. */
    record Frame(int kind, int family, int port, byte[] addr, int dataOffset, int dataLength, int length) {
    }

    static Frame parseFrame(ByteBuffer buf) throws Malformed {
        ByteBuffer b = buf.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < FRAME_HEADER) {
            return null;
        }
        int len = b.getShort() & 0xffff;
        int kind = b.get() & 0xff;
        b.get();
        int family = b.getShort() & 0xffff;
        int port = b.getShort() & 0xffff;
        int addrlen = b.getShort() & 0xffff;
        b.getShort();
        if (len > MAX_DATAGRAM) {
            throw new Malformed("datagram of " + len + " bytes");
        }
        if (kind != FRAME_DATA && kind != FRAME_CONNECT) {
            throw new Malformed("frame kind " + kind);
        }
        if (addrlen > MAX_ADDR) {
            throw new Malformed("address of " + addrlen + " bytes");
        }
        if (b.remaining() < addrlen + len) {
            return null;
        }
        byte[] addr = new byte[addrlen];
        b.get(addr);
        return new Frame(kind, family, port, addr, FRAME_HEADER + addrlen, len, FRAME_HEADER + addrlen + len);
    }

    private interface Head {
        void put(ByteBuffer b);
    }

    private static ByteBuffer withAddress(int headerSize, SockAddr a, Head head) {
        byte[] addr = rawAddress(a);
        ByteBuffer b = ByteBuffer.allocate(headerSize + addr.length).order(ByteOrder.LITTLE_ENDIAN);
        head.put(b);
        b.putShort((short) (a == null ? 0 : a.family())).putShort((short) port(a)).putShort((short) addr.length)
                .putShort((short) 0).put(addr).flip();
        return b;
    }

    static byte[] rawAddress(SockAddr a) {
        return switch (a) {
            case null -> new byte[0];
            case SockAddr.Inet4 i -> i.address();
            case SockAddr.Inet6 i -> i.address();
            case SockAddr.Unix u -> u.path();
        };
    }

    static int port(SockAddr a) {
        return switch (a) {
            case SockAddr.Inet4 i -> i.port();
            case SockAddr.Inet6 i -> i.port();
            case null, default -> 0;
        };
    }

    static boolean isAny(byte[] addr) {
        for (byte b : addr) {
            if (b != 0) {
                return false;
            }
        }
        return true;
    }

    static byte[] copy(byte[] a) {
        return Arrays.copyOf(a, a.length);
    }
}
