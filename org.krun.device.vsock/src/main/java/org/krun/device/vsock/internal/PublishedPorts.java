package org.krun.device.vsock.internal;

import java.io.IOException;
import java.net.BindException;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.ServerSocket;

import org.krun.api.PortForward;
import org.krun.api.VmConfigException;

/**
 * Published ports are bound on the host when the guest listens on them (TSI.md, LISTEN), which may be long
 * after the VM starts; a host port already taken is found when the VM is made instead, so the user gets a
 * one-line error and no VM rather than a guest whose server cannot listen.
 */
final class PublishedPorts {
    private PublishedPorts() {
    }

    /** Throws a {@link VmConfigException} when another socket holds the forward's host port. */
    static void checkFree(PortForward forward) {
        InetSocketAddress any = new InetSocketAddress(forward.hostPort());
        try {
            if (forward.protocol() == PortForward.Protocol.TCP) {
                try (ServerSocket s = new ServerSocket()) {
                    // as the listener will: a port whose old connections linger in TIME_WAIT is free
                    s.setReuseAddress(true);
                    s.bind(any);
                }
            } else {
                try (DatagramSocket s = new DatagramSocket(null)) {
                    s.bind(any);
                }
            }
        } catch (BindException e) {
            String why = String.valueOf(e.getMessage()).contains("ermission") ? "needs privileges" : "is in use";
            throw new VmConfigException("cannot publish port " + forward + ": host port " + forward.hostPort()
                    + " (" + forward.protocol().name().toLowerCase(java.util.Locale.ROOT) + ") " + why);
        } catch (IOException e) {
            throw new VmConfigException("cannot publish port " + forward + ": " + e.getMessage());
        }
    }
}
