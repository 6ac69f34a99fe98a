package org.krun.posix;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;

/**
 * Sockets on the host for devices that relay the guest's traffic (vsock port maps, transparent socket
 * impersonation, network backends): non-blocking descriptors driven by the VM's event loop. Every call
 * returns its result or {@code -errno}.
 */
public final class PosixNet {

    public static final int SOCK_STREAM = 1;
    public static final int SOCK_DGRAM = 2;
    public static final int SOCK_SEQPACKET = 5;
    public static final int SOCK_NONBLOCK = 0x800;
    public static final int SOCK_CLOEXEC = 0x80000;

    public static final int SOL_SOCKET = 1;
    public static final int SO_REUSEADDR = 2;
    public static final int SO_ERROR = 4;
    public static final int SO_SNDBUF = 7;
    public static final int SO_RCVBUF = 8;
    public static final int IPPROTO_TCP = 6;
    public static final int IPPROTO_IPV6 = 41;
    public static final int TCP_NODELAY = 1;
    public static final int IPV6_V6ONLY = 26;

    public static final int SHUT_RD = 0;
    public static final int SHUT_WR = 1;
    public static final int SHUT_RDWR = 2;

    public static final int MSG_DONTWAIT = 0x40;
    public static final int MSG_NOSIGNAL = 0x4000;
    public static final int MSG_TRUNC = 0x20;

    private static final MethodHandle SOCKET = Libc.downcall("socket", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle BIND = Libc.downcall("bind", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle LISTEN = Libc.downcall("listen", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle ACCEPT4 = Libc.downcall("accept4",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS, JAVA_INT));
    private static final MethodHandle CONNECT = Libc.downcall("connect", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle SHUTDOWN = Libc.downcall("shutdown", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));
    private static final MethodHandle GETSOCKOPT = Libc.downcall("getsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SETSOCKOPT = Libc.downcall("setsockopt",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle GETSOCKNAME = Libc.downcall("getsockname",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle GETPEERNAME = Libc.downcall("getpeername",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SEND = Libc.downcall("send",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle RECV = Libc.downcall("recv",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT));
    private static final MethodHandle SENDTO = Libc.downcall("sendto",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle RECVFROM = Libc.downcall("recvfrom",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_LONG, JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle SOCKETPAIR = Libc.downcall("socketpair",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));

    /** Ancillary data carrying descriptors (SOL_SOCKET level). */
    public static final int SCM_RIGHTS = 1;
    private static final MethodHandle SENDMSG = Libc.downcall("sendmsg",
            FunctionDescriptor.of(JAVA_LONG, JAVA_INT, ADDRESS, JAVA_INT));

    private PosixNet() {
    }

    /**
     * sendmsg(2) of {@code data} (at least one byte) with descriptor {@code passed} as SCM_RIGHTS ancillary
     * data, without SIGPIPE, as an OCI runtime hands a terminal's master end to a console socket; bytes sent or
     * -errno.
     *
     * @since 1.2
     */
    public static long sendWithDescriptor(int fd, byte[] data, int passed) {
        if (data.length == 0) {
            throw new IllegalArgumentException("a message carrying a descriptor needs at least one byte");
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment buf = a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_BYTE, data);
            MemorySegment iov = a.allocate(16, 8); // struct iovec { void *base; size_t len; }
            iov.set(ADDRESS, 0, buf);
            iov.set(JAVA_LONG, 8, data.length);
            MemorySegment control = a.allocate(24, 8); // CMSG_SPACE(sizeof(int)): cmsghdr (16) + int, aligned
            control.set(JAVA_LONG, 0, 20); // CMSG_LEN(sizeof(int))
            control.set(JAVA_INT, 8, SOL_SOCKET);
            control.set(JAVA_INT, 12, SCM_RIGHTS);
            control.set(JAVA_INT, 16, passed);
            MemorySegment msg = a.allocate(56, 8); // struct msghdr on x86-64 and aarch64
            msg.set(ADDRESS, 0, MemorySegment.NULL);
            msg.set(JAVA_INT, 8, 0);
            msg.set(ADDRESS, 16, iov);
            msg.set(JAVA_LONG, 24, 1);
            msg.set(ADDRESS, 32, control);
            msg.set(JAVA_LONG, 40, 24);
            msg.set(JAVA_INT, 48, 0);
            return Libc.call(() -> (long) SENDMSG.invokeExact(fd, msg, MSG_NOSIGNAL));
        }
    }

    /** A new non-blocking, close-on-exec socket; a descriptor or -errno. */
    public static int socket(int family, int type, int protocol) {
        int t = type | SOCK_NONBLOCK | SOCK_CLOEXEC;
        return Libc.call(() -> (int) SOCKET.invokeExact(family, t, protocol));
    }

    public static int bind(int fd, SockAddr address) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = address.encode(a);
            int len = (int) s.byteSize();
            return Libc.call(() -> (int) BIND.invokeExact(fd, s, len));
        }
    }

    public static int listen(int fd, int backlog) {
        return Libc.call(() -> (int) LISTEN.invokeExact(fd, backlog));
    }

    /** accept4(2), non-blocking and close-on-exec; a descriptor or -errno (-EAGAIN when none waits). */
    public static int accept(int fd) {
        return Libc.call(() -> (int) ACCEPT4.invokeExact(fd, MemorySegment.NULL, MemorySegment.NULL,
                SOCK_NONBLOCK | SOCK_CLOEXEC));
    }

    /** connect(2); 0, -EINPROGRESS for a non-blocking connect under way, or -errno. */
    public static int connect(int fd, SockAddr address) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = address.encode(a);
            int len = (int) s.byteSize();
            return Libc.call(() -> (int) CONNECT.invokeExact(fd, s, len));
        }
    }

    public static int shutdown(int fd, int how) {
        return Libc.call(() -> (int) SHUTDOWN.invokeExact(fd, how));
    }

    /** An int socket option's value, or -errno (for SO_ERROR: the pending error, 0 when none). */
    public static int getIntOption(int fd, int level, int option) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment value = a.allocate(JAVA_INT);
            MemorySegment len = a.allocateFrom(JAVA_INT, 4);
            int r = Libc.call(() -> (int) GETSOCKOPT.invokeExact(fd, level, option, value, len));
            return r < 0 ? r : value.get(JAVA_INT, 0);
        }
    }

    public static int setIntOption(int fd, int level, int option, int value) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocateFrom(JAVA_INT, value);
            return Libc.call(() -> (int) SETSOCKOPT.invokeExact(fd, level, option, v, 4));
        }
    }

    /** The socket's own address, or null when the call fails. */
    public static SockAddr localAddress(int fd) {
        return name(fd, GETSOCKNAME);
    }

    /** The connected peer's address, or null when there is none. */
    public static SockAddr peerAddress(int fd) {
        return name(fd, GETPEERNAME);
    }

    private static SockAddr name(int fd, MethodHandle call) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(SockAddr.STORAGE_SIZE, 8);
            MemorySegment len = a.allocateFrom(JAVA_INT, SockAddr.STORAGE_SIZE);
            int r = Libc.call(() -> (int) call.invokeExact(fd, s, len));
            return r < 0 ? null : SockAddr.decode(s, len.get(JAVA_INT, 0));
        }
    }

    /** The most one call copies through native memory for a heap segment. */
    private static final long HEAP_CHUNK = 256 * 1024;

    /**
     * send(2) of {@code buf} without SIGPIPE; bytes sent or -errno. A heap segment (a Java array or heap
     * buffer) is copied through native memory, at most 256 KiB per call, as a short send.
     */
    public static long send(int fd, MemorySegment buf, int flags) {
        int f = flags | MSG_NOSIGNAL;
        if (!buf.isNative()) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment copy = a.allocate(Math.max(1, Math.min(buf.byteSize(), HEAP_CHUNK)));
                long n = Math.min(buf.byteSize(), HEAP_CHUNK);
                MemorySegment.copy(buf, 0, copy, 0, n);
                return Libc.call(() -> (long) SEND.invokeExact(fd, copy, n, f));
            }
        }
        return Libc.call(() -> (long) SEND.invokeExact(fd, buf, buf.byteSize(), f));
    }

    /**
     * recv(2) into {@code buf}; bytes received (0 at end of stream) or -errno. A heap segment receives
     * through native memory, at most 256 KiB per call.
     */
    public static long recv(int fd, MemorySegment buf, int flags) {
        if (!buf.isNative()) {
            try (Arena a = Arena.ofConfined()) {
                long room = Math.min(buf.byteSize(), HEAP_CHUNK);
                MemorySegment tmp = a.allocate(Math.max(1, room));
                long n = Libc.call(() -> (long) RECV.invokeExact(fd, tmp, room, flags));
                if (n > 0) {
                    MemorySegment.copy(tmp, 0, buf, 0, n);
                }
                return n;
            }
        }
        return Libc.call(() -> (long) RECV.invokeExact(fd, buf, buf.byteSize(), flags));
    }

    /** sendto(2) of {@code buf} to {@code to} (null: the connected peer) without SIGPIPE. */
    public static long sendTo(int fd, MemorySegment buf, SockAddr to) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment addr = to == null ? MemorySegment.NULL : to.encode(a);
            int len = to == null ? 0 : (int) addr.byteSize();
            return Libc.call(() -> (long) SENDTO.invokeExact(fd, buf, buf.byteSize(), MSG_NOSIGNAL, addr, len));
        }
    }

    /** What one recvfrom(2) got: its byte count (or -errno) and the sender. */
    public record Received(long bytes, SockAddr from) {
    }

    /** recvfrom(2) into {@code buf}; with MSG_TRUNC the count is the datagram's real length. */
    public static Received recvFrom(int fd, MemorySegment buf, int flags) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(SockAddr.STORAGE_SIZE, 8);
            MemorySegment len = a.allocateFrom(JAVA_INT, SockAddr.STORAGE_SIZE);
            long r = Libc.call(() -> (long) RECVFROM.invokeExact(fd, buf, buf.byteSize(), flags, s, len));
            return new Received(r, r < 0 ? null : SockAddr.decode(s, len.get(JAVA_INT, 0)));
        }
    }

    /** A connected pair of non-blocking, close-on-exec sockets: {fd0, fd1}, or throws. */
    public static int[] socketPair(int family, int type) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment fds = a.allocate(JAVA_INT, 2);
            int t = type | SOCK_NONBLOCK | SOCK_CLOEXEC;
            Posix.check("socketpair", Libc.call(() -> (int) SOCKETPAIR.invokeExact(family, t, 0, fds)));
            return new int[] {fds.getAtIndex(JAVA_INT, 0), fds.getAtIndex(JAVA_INT, 1)};
        }
    }
}
