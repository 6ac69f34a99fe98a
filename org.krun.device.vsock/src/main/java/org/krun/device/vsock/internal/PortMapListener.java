package org.krun.device.vsock.internal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import org.krun.api.VmConfigException;
import org.krun.api.VsockPort;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;

/**
 * A unix socket krun listens on for a {@code listen} port map: each host connection there becomes a
 * connection to the guest's vsock port. Bound when the VM is created, so a path that cannot be used is a
 * one-line error before anything starts; removed when the VM closes.
 */
final class PortMapListener implements AutoCloseable {

    private final VsockPort map;
    private final int fd;
    private boolean closed;

    private PortMapListener(VsockPort map, int fd) {
        this.map = map;
        this.fd = fd;
    }

    static PortMapListener bind(VsockPort map) {
        Path path = map.path();
        if (Files.exists(path) && !Files.isDirectory(path)) {
            // A socket file left by a VM that is gone can be replaced; one in use cannot.
            if (inUse(path)) {
                throw new VmConfigException("vsock port " + map.port() + ": " + path + " is in use by another listener");
            }
            try {
                Files.delete(path);
            } catch (IOException e) {
                throw new VmConfigException("vsock port " + map.port() + ": cannot replace " + path + ": " + e.getMessage());
            }
        }
        SockAddr.Unix address;
        try {
            address = SockAddr.Unix.of(path.toString());
        } catch (IllegalArgumentException e) {
            throw new VmConfigException("vsock port " + map.port() + ": path " + path + " is too long for a unix socket");
        }
        int fd = Posix.check("socket", PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM, 0));
        int r = PosixNet.bind(fd, address);
        if (r == 0) {
            r = PosixNet.listen(fd, 64);
        }
        if (r < 0) {
            Posix.close(fd);
            throw new VmConfigException("vsock port " + map.port() + ": cannot listen on " + path + ": "
                    + Errno.describe(-r));
        }
        return new PortMapListener(map, fd);
    }

    private static boolean inUse(Path path) {
        int probe = PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM, 0);
        if (probe < 0) {
            return false;
        }
        try {
            int r = PosixNet.connect(probe, SockAddr.Unix.of(path.toString()));
            return r == 0 || r == -Errno.EAGAIN || r == -Errno.EINPROGRESS;
        } catch (IllegalArgumentException e) {
            return false;
        } finally {
            Posix.close(probe);
        }
    }

    VsockPort map() {
        return map;
    }

    int fd() {
        return fd;
    }

    /** The next waiting host connection, or -1 when none waits (or on a transient error). */
    int accept() {
        int r = PosixNet.accept(fd);
        return r < 0 ? -1 : r;
    }

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            Posix.close(fd);
            try {
                Files.deleteIfExists(map.path());
            } catch (IOException e) {
                // best effort: a stale socket file is replaced by the next VM that maps it
            }
        }
    }
}
