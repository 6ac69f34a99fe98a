package org.krun.api;

import java.nio.file.Path;
import java.util.Objects;

/**
 * A vsock port of the guest tied to a unix socket of the host, as libkrun's {@code krun_add_vsock_port2}:
 * without {@code listen}, a guest connecting to vsock {@code port} (host CID 2) reaches the unix socket at
 * {@code path}; with {@code listen}, krun listens on {@code path} and each connection there becomes a
 * connection to the guest's vsock {@code port}.
 */
public record VsockPort(long port, Path path, boolean listen) {

    /** vsock ports the device keeps for itself (transparent socket impersonation). */
    public static final long RESERVED_FIRST = 0x40000;
    public static final long RESERVED_LAST = 0x400ff;

    public VsockPort {
        Objects.requireNonNull(path, "path");
        if (port < 1 || port > 0xffff_fffeL) {
            throw new VmConfigException("vsock port " + port + " is out of range (1 to 4294967294)");
        }
        if (port >= RESERVED_FIRST && port <= RESERVED_LAST) {
            throw new VmConfigException("vsock ports " + RESERVED_FIRST + " to " + RESERVED_LAST + " are krun's own");
        }
    }

    /** Parses {@code PORT:PATH} or {@code PORT:PATH,listen}. */
    public static VsockPort parse(String text) {
        int colon = text.indexOf(':');
        if (colon <= 0 || colon == text.length() - 1) {
            throw new VmConfigException("vsock '" + text + "' is not PORT:PATH[,listen]");
        }
        String path = text.substring(colon + 1);
        boolean listen = false;
        if (path.endsWith(",listen")) {
            listen = true;
            path = path.substring(0, path.length() - ",listen".length());
        }
        if (path.isEmpty() || path.indexOf(',') >= 0) {
            throw new VmConfigException("vsock '" + text + "' is not PORT:PATH[,listen]");
        }
        try {
            return new VsockPort(Long.parseLong(text.substring(0, colon)), Path.of(path).toAbsolutePath(), listen);
        } catch (NumberFormatException e) {
            throw new VmConfigException("vsock '" + text + "': '" + text.substring(0, colon) + "' is not a port number");
        }
    }
}
