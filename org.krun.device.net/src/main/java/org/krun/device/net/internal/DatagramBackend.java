package org.krun.device.net.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import org.krun.api.VmConfigException;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;

/**
 * One frame per datagram over a unix datagram socket, as gvproxy ({@code --listen-vfkit}), vmnet-helper and
 * vfkit speak it. krun binds a socket of its own (in a directory of its own, removed on close) so the peer
 * can answer, and connects it to the peer's path: only the peer's datagrams reach it. With the vfkit
 * handshake the first datagram is {@code VFKT}.
 *
 * <p>Bounds: one receive buffer, one byte longer than the largest frame so a longer datagram shows (it is
 * dropped, as are datagrams shorter than an Ethernet header).
 */
final class DatagramBackend implements Backend {

    /** vfkit's handshake datagram: "VFKT". */
    static final byte[] VFKIT_MAGIC = "VFKT".getBytes(StandardCharsets.US_ASCII);

    private final int fd;
    private final Path peer;
    private final Path ownDir;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment rx;
    private int frameLength = -1;
    private long droppedLong;
    private long droppedShort;
    private long droppedRefused;
    private boolean closed;

    private DatagramBackend(int fd, Path peer, Path ownDir) {
        this.fd = fd;
        this.peer = peer;
        this.ownDir = ownDir;
        this.rx = arena.allocate(VnetHeader.MAX_FRAME + 1L, 64);
    }

    /** Binds krun's socket, connects it to {@code peer} and, with {@code vfkit}, says hello. */
    static DatagramBackend connect(Path peer, boolean vfkit) {
        Path dir;
        try {
            dir = Files.createTempDirectory("krun-net-", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx--x--x")));
            // the peer may be another user: it needs to pass through the directory to answer
            Files.setPosixFilePermissions(dir, PosixFilePermissions.fromString("rwx--x--x"));
        } catch (IOException e) {
            throw new UncheckedIOException("unixgram " + peer + ": no directory for krun's own socket", e);
        }
        int fd = PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_DGRAM, 0);
        if (fd < 0) {
            deleteQuietly(dir);
            throw new VmConfigException("unixgram " + peer + ": no socket: " + Errno.name(-fd));
        }
        try {
            Path own = dir.resolve("krun.sock");
            int r = PosixNet.bind(fd, SockAddr.Unix.of(own.toString()));
            if (r < 0) {
                throw new VmConfigException("unixgram " + peer + ": cannot bind " + own + ": " + Errno.name(-r));
            }
            r = PosixNet.connect(fd, SockAddr.Unix.of(peer.toString()));
            if (r < 0) {
                throw new VmConfigException("unixgram " + peer + ": " + (r == -Errno.ENOENT || r == -Errno.ECONNREFUSED
                        ? "nothing listens there (start gvproxy or the peer first)" : "cannot connect: " + Errno.name(-r)));
            }
            // big frames and bursts: as much buffer as the host grants
            PosixNet.setIntOption(fd, PosixNet.SOL_SOCKET, PosixNet.SO_SNDBUF, 1 << 20);
            PosixNet.setIntOption(fd, PosixNet.SOL_SOCKET, PosixNet.SO_RCVBUF, 4 << 20);
            if (vfkit) {
                try (Arena a = Arena.ofConfined()) {
                    long n = PosixNet.send(fd, a.allocateFrom(java.lang.foreign.ValueLayout.JAVA_BYTE, VFKIT_MAGIC), PosixNet.MSG_DONTWAIT);
                    if (n != VFKIT_MAGIC.length) {
                        throw new VmConfigException("unixgram " + peer + ": the vfkit handshake failed: " + (n < 0 ? Errno.name((int) -n) : "short"));
                    }
                }
            }
            return new DatagramBackend(fd, peer, dir);
        } catch (RuntimeException e) {
            Posix.close(fd);
            deleteQuietly(dir.resolve("krun.sock"));
            deleteQuietly(dir);
            throw e;
        }
    }

    @Override
    public int fd() {
        return fd;
    }

    @Override
    public boolean send(MemorySegment buf, long offset, int length) {
        long n = PosixNet.send(fd, buf.asSlice(offset, length), PosixNet.MSG_DONTWAIT);
        if (n >= 0) {
            return true;
        }
        int errno = (int) -n;
        return switch (errno) {
            case Errno.EAGAIN -> false;
            case Errno.ECONNREFUSED -> {
                // The peer's socket went away (it restarts, say): the frame is lost, as on a wire.
                droppedRefused++;
                yield true;
            }
            case Errno.EMSGSIZE, Errno.ENOBUFS -> {
                droppedLong++;
                yield true;
            }
            default -> throw new PeerException("unixgram " + peer + ": send: " + Errno.name(errno));
        };
    }

    @Override
    public int receive() {
        if (frameLength >= 0) {
            return frameLength;
        }
        while (true) {
            long n = PosixNet.recv(fd, rx, PosixNet.MSG_DONTWAIT | PosixNet.MSG_TRUNC);
            if (n == -Errno.EAGAIN) {
                return -1;
            }
            if (n < 0) {
                if (n == -Errno.ECONNREFUSED || n == -Errno.ECONNRESET) {
                    throw new PeerException("unixgram " + peer + ": the peer is gone (" + Errno.name((int) -n) + ")");
                }
                throw new PeerException("unixgram " + peer + ": receive: " + Errno.name((int) -n));
            }
            if (n > VnetHeader.MAX_FRAME) {
                droppedLong++;
            } else if (n < VnetHeader.ETH_HLEN) {
                droppedShort++;
            } else {
                frameLength = (int) n;
                return frameLength;
            }
        }
    }

    @Override
    public MemorySegment frameBuffer() {
        return rx;
    }

    @Override
    public long frameOffset() {
        return 0;
    }

    @Override
    public void consumed() {
        frameLength = -1;
    }

    @Override
    public String dropped() {
        if (droppedLong + droppedShort + droppedRefused == 0) {
            return null;
        }
        String s = "unixgram " + peer + ": dropped " + droppedLong + " frames too long, " + droppedShort
                + " shorter than an Ethernet header, " + droppedRefused + " the peer refused";
        droppedLong = droppedShort = droppedRefused = 0;
        return s;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        Posix.close(fd);
        deleteQuietly(ownDir.resolve("krun.sock"));
        deleteQuietly(ownDir);
        arena.close();
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // a temporary file left behind; nothing else to do
        }
    }

    @Override
    public String toString() {
        return "unixgram " + peer;
    }
}
