package org.krun.device.net.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.ValueLayout;
import java.io.UncheckedIOException;
import java.net.BindException;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

import org.krun.api.NetSpec;
import org.krun.api.PortForward;
import org.krun.api.VmConfigException;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;
import org.krun.posix.PosixIo;
import org.krun.posix.PosixNet;
import org.krun.posix.PosixProcess;
import org.krun.posix.SockAddr;

/**
 * Debian's passt, started by krun for a card on one end of a socket pair ({@code --fd}), as podman and krunvm
 * start it: user-mode networking without privileges. krun gives the guest a fixed network, as QEMU's user
 * networking does, so a guest sees the same addresses on every host: {@value #GUEST_ADDRESS}/24, its gateway
 * {@value #GATEWAY} standing for the host's own loopback (passt's gateway mapping), and name server
 * {@value #NAME_SERVER}, which passt forwards to the host's first resolver. passt ends with its socket, so it
 * never outlives the VM, not even a killed JVM; krun stops it with the VM all the same.
 */
final class Passt {

    static final String PROGRAM = "passt";
    static final String GUEST_ADDRESS = "10.0.2.15";
    static final int PREFIX_LENGTH = 24;
    static final String GATEWAY = "10.0.2.2";
    static final String NAME_SERVER = "10.0.2.3";
    /** The descriptor number passt gets its end of the socket pair at. */
    static final int CHILD_FD = 3;
    /** asm-generic/ioctls.h: set or clear a descriptor's O_NONBLOCK. */
    private static final long FIONBIO = 0x5421;

    private Passt() {
    }

    /** The guest's address: the card's static one, or krun's default network. */
    static NetSpec.Ipv4 address(NetSpec spec) {
        return spec.ipv4().orElseGet(() -> NetSpec.Ipv4.parse(GUEST_ADDRESS + "/" + PREFIX_LENGTH, GATEWAY));
    }

    /** The name servers the guest uses: the card's, or passt's forwarder to the host's resolver. */
    static List<InetAddress> nameServers(NetSpec spec) {
        return spec.dns().isEmpty() ? List.of(InetAddress.ofLiteral(NAME_SERVER)) : spec.dns();
    }

    /** passt's arguments for {@code spec}, after the program name. */
    static List<String> arguments(NetSpec spec) {
        List<String> a = new ArrayList<>(List.of("--foreground", "--quiet", "--fd", String.valueOf(CHILD_FD)));
        NetSpec.Ipv4 ip = address(spec);
        a.addAll(List.of("--address", ip.address().getHostAddress(), "--netmask", String.valueOf(ip.prefixLength())));
        ip.gateway().ifPresent(g -> a.addAll(List.of("--gateway", g.getHostAddress())));
        if (spec.dns().isEmpty()) {
            // Debian 12's passt (2023-03-09) keeps one list of name servers for both what DHCP hands out and
            // where --dns-forward sends queries (its first entry). Given --dns 10.0.2.3, it forwarded the
            // guest's queries to the host's 127.0.0.1:53 and answered from the gateway address, which a
            // resolver drops. Without --dns the list is the host's /etc/resolv.conf: queries to 10.0.2.3 reach
            // the host's first resolver and the answers come back from 10.0.2.3. DHCP would hand out that
            // host resolver's own address instead (the gateway address for one on the host's loopback, which
            // maps to 127.0.0.1, not to 127.0.0.53): it hands out none, and the guest's init writes 10.0.2.3
            // to its resolv.conf (nameServers).
            a.addAll(List.of("--dns-forward", NAME_SERVER, "--no-dhcp-dns"));
        } else {
            spec.dns().forEach(d -> a.addAll(List.of("--dns", d.getHostAddress())));
        }
        spec.mtu().ifPresent(m -> a.addAll(List.of("--mtu", String.valueOf(m))));
        for (PortForward f : spec.published()) {
            a.add(f.protocol() == PortForward.Protocol.TCP ? "--tcp-ports" : "--udp-ports");
            a.add(f.hostPort() + ":" + f.guestPort());
        }
        return a;
    }

    /** Starts passt for {@code spec}: the backend that speaks to it, or a one-line error. */
    static StreamBackend start(NetSpec spec) {
        return start(spec, List.of());
    }

    /**
     * Starts passt for {@code spec} through {@code wrapper}, a command that ends by running the rest of its
     * arguments (passt's path and arguments): for tests, which run passt in a mount namespace of their own.
     */
    static StreamBackend start(NetSpec spec, List<String> wrapper) {
        Path program = find(PROGRAM).orElseThrow(() -> new VmConfigException(
                "--net passt needs passt, which is not installed: apt-get install passt (Debian's package)"));
        for (PortForward f : spec.published()) {
            checkFree(f);
        }
        Path dir;
        Path log;
        try {
            dir = Files.createTempDirectory("krun-passt-", PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
            log = Files.createFile(dir.resolve("passt.log"));
        } catch (IOException e) {
            throw new UncheckedIOException("passt: no directory for its log", e);
        }
        int logFd = Posix.open(log.toString(), Posix.O_WRONLY | PosixIo.O_APPEND | Posix.O_CLOEXEC);
        int[] pair = null;
        PosixProcess process = null;
        try {
            Posix.check("open " + log, logFd);
            pair = PosixNet.socketPair(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM);
            blocking(pair[1]);
            List<String> argv = new ArrayList<>(wrapper);
            argv.add(program.toString());
            argv.addAll(arguments(spec));
            try {
                process = PosixProcess.spawn(argv, Map.of(2, logFd, CHILD_FD, pair[1]));
            } catch (PosixException e) {
                throw new VmConfigException("cannot start " + program + ": " + Errno.describe(e.errno()));
            }
            Posix.close(pair[1]);
            pair[1] = -1;
            Posix.close(logFd);
            logFd = -1;
            PosixProcess p = process;
            return new StreamBackend(pair[0], "passt", () -> state(p, log), () -> {
                p.close();
                deleteQuietly(log);
                deleteQuietly(dir);
            });
        } catch (RuntimeException e) {
            if (process != null) {
                process.close();
            }
            if (pair != null) {
                Posix.close(pair[0]);
                if (pair[1] >= 0) {
                    Posix.close(pair[1]);
                }
            }
            if (logFd >= 0) {
                Posix.close(logFd);
            }
            deleteQuietly(log);
            deleteQuietly(dir);
            throw e;
        }
    }

    /**
     * Makes passt's end of the pair blocking, as passt takes for granted: it sends the rest of a frame it
     * could only partly send, and reads the rest of a frame it partly read, with blocking calls. On a
     * non-blocking descriptor those fail whenever krun reads slower than the host sends (a slow guest), and
     * the stream loses the middle of a frame (the card went down on a bogus length prefix). Our end stays
     * non-blocking: the two ends are separate open files.
     */
    static void blocking(int fd) {
        try (Arena a = Arena.ofConfined()) {
            Posix.check("ioctl FIONBIO", Posix.ioctl(fd, FIONBIO, a.allocateFrom(ValueLayout.JAVA_INT, 0)));
        }
    }

    /** How passt is doing, for the message when its socket ends: its exit status and its last words. */
    private static String state(PosixProcess p, Path log) {
        OptionalInt status = p.waitFor(java.time.Duration.ZERO); // on the event loop: never wait
        String last = lastLine(log);
        return (status.isPresent() ? "passt exited with status " + status.getAsInt() : "passt still runs")
                + (last == null ? "" : ": " + last);
    }

    /** The last line of passt's log that says something (not its complaints about a missing syslog). */
    static String lastLine(Path log) {
        try {
            List<String> lines = Files.readAllLines(log, StandardCharsets.UTF_8);
            for (int i = lines.size() - 1; i >= 0; i--) {
                String l = lines.get(i).strip();
                if (!l.isEmpty() && !l.startsWith("Failed to send") && !l.contains("syslog")) {
                    return l.length() > 200 ? l.substring(0, 200) : l;
                }
            }
        } catch (IOException | UncheckedIOException e) {
            // no log: say nothing
        }
        return null;
    }

    /** The program {@code name} on the PATH, as posix_spawnp would find it. */
    static Optional<Path> find(String name) {
        String path = System.getenv().getOrDefault("PATH", "/usr/local/bin:/usr/bin:/bin");
        for (String d : path.split(":")) {
            if (d.isEmpty()) {
                continue;
            }
            Path p = Path.of(d, name);
            if (Files.isRegularFile(p) && Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        return Optional.empty();
    }

    /**
     * passt cannot say that a port it was asked to forward is taken (it goes on without it): a host port
     * in use is found here, so the user gets a one-line error and no VM.
     */
    static void checkFree(PortForward forward) {
        InetSocketAddress any = new InetSocketAddress(forward.hostPort());
        try {
            if (forward.protocol() == PortForward.Protocol.TCP) {
                try (ServerSocket s = new ServerSocket()) {
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
            throw new VmConfigException("cannot publish port " + forward + ": host port " + forward.hostPort() + " ("
                    + forward.protocol().name().toLowerCase(java.util.Locale.ROOT) + ") " + why);
        } catch (IOException e) {
            throw new VmConfigException("cannot publish port " + forward + ": " + e.getMessage());
        }
    }

    private static void deleteQuietly(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            // a temporary file left behind
        }
    }
}
