package org.krun.cli.internal.oci;

import java.io.BufferedReader;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.krun.api.ConsoleSpec;
import org.krun.api.Krun;
import org.krun.api.VsockSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.cli.internal.oci.OciSpec.OciException;
import org.krun.cli.internal.oci.OciState.State;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;
import org.krun.posix.Termios;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.ParentCommand;

/**
 * {@code krun oci}: an OCI runtime (runtime-spec 1.x command line, as runc's and crun's): container engines
 * (podman, containerd) call it, through the {@code krun-oci} wrapper, to run containers in krun microVMs.
 *
 * <p>{@code create} starts the container's process, which is the VMM: a second krun process ({@code krun oci
 * vmm ID}, in the container's network namespace) that makes the VM and waits on its control socket;
 * {@code start} tells it to boot; {@code kill} passes signals on to the guest command; the process's exit status
 * is the command's. docs/oci.md has the design and the mapping of config.json.
 */
@Command(name = "oci", mixinStandardHelpOptions = true, versionProvider = OciCommand.Version.class,
        description = {"An OCI runtime: runs containers in krun microVMs (point a container engine at krun-oci)."},
        subcommands = {OciCommand.Create.class, OciCommand.Start.class, OciCommand.StateCommand.class,
            OciCommand.Kill.class, OciCommand.Delete.class, OciCommand.Run.class, OciCommand.Features.class,
            OciCommand.Ps.class, OciCommand.Pause.class, OciCommand.Resume.class, OciCommand.Exec.class, OciCommand.ExecRelayCommand.class,
            OciCommand.Vmm.class})
public final class OciCommand implements Runnable {

    @Option(names = "--root", paramLabel = "DIR", description = "State directory (default: /run/krun-oci).")
    Path root;

    @Option(names = "--log", paramLabel = "FILE", description = "Also write errors to FILE.")
    Path log;

    @Option(names = "--log-format", paramLabel = "text|json", description = "Format of --log (default: text).")
    String logFormat;

    @Option(names = "--systemd-cgroup", description = "Accepted for compatibility: cgroupsPath is joined as a path.")
    boolean systemdCgroup;

    @Option(names = "--debug", description = "Accepted for compatibility.")
    boolean debug;

    @Option(names = "--rootless", paramLabel = "true|false|auto", description = "Accepted for compatibility.")
    String rootless;

    /** How long {@code create} waits for the VMM process to have its VM ready. */
    static final long CREATE_TIMEOUT_SECONDS = 120;

    private final Krun krun;

    public OciCommand(Krun krun) {
        this.krun = krun;
    }

    @Override
    public void run() {
        throw new OciException("missing a command: create, start, state, kill, delete, run or features");
    }

    Path stateRoot() {
        return root != null ? root.toAbsolutePath() : OciState.defaultRoot();
    }

    /** Writes {@code message} to --log when given (as runc does: engines read it when a command fails). */
    void log(String message) {
        log("error", message);
    }

    /**
     * A note that is no error (what was left out, a cgroup not joined): once, to --log when given, to the
     * state directory's {@code notes} file, and to stderr only when that is a terminal: the engine hands a
     * runtime the container's own output streams, where a note would read as the container's output.
     */
    void note(OciState st, String message) {
        log("warning", message);
        try {
            Files.writeString(st.dir().resolve("notes"), message + "\n", StandardCharsets.UTF_8,
                    java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException e) {
            // the state directory is going away
        }
        if (org.krun.posix.Posix.isatty(2)) {
            System.err.println("krun: note: " + message);
        }
    }

    private void log(String level, String message) {
        if (log == null) {
            return;
        }
        String line = "json".equals(logFormat)
                ? OciJson.write(Map.of("level", level, "msg", message, "time", Instant.now().toString()))
                : "krun: " + level + ": " + message;
        try {
            Files.writeString(log, line + "\n", StandardCharsets.UTF_8, java.nio.file.StandardOpenOption.CREATE,
                    java.nio.file.StandardOpenOption.APPEND);
        } catch (IOException e) {
            // the error still goes to stderr
        }
    }

    /** Runs {@code body}, logging what fails to --log too. */
    <T> T logged(Callable<T> body) throws Exception {
        try {
            return body.call();
        } catch (Exception e) {
            log(e.getMessage() == null ? e.toString() : e.getMessage());
            throw e;
        }
    }

    static final class Version implements picocli.CommandLine.IVersionProvider {
        @Override
        public String[] getVersion() {
            return new String[] {"krun version 0.1.0", "spec: " + OciState.OCI_VERSION};
        }
    }

    // ---- create and run

    /** What create and run share: making the state, starting the VMM process, waiting until it is ready. */
    abstract static class Creating {
        @ParentCommand
        OciCommand oci;

        @Option(names = {"--bundle", "-b"}, paramLabel = "DIR", description = "The bundle (default: the current directory).")
        Path bundle;

        @Option(names = "--pid-file", paramLabel = "FILE", description = "Write the container process's pid here.")
        Path pidFile;

        @Option(names = "--console-socket", paramLabel = "SOCKET",
                description = "Unix socket to send the terminal's master end to (process.terminal).")
        Path consoleSocket;

        @Option(names = "--no-pivot", description = "Accepted for compatibility.")
        boolean noPivot;

        @Option(names = "--no-new-keyring", description = "Accepted for compatibility.")
        boolean noNewKeyring;

        @Option(names = "--preserve-fds", paramLabel = "N", description = "Accepted when 0: krun passes no extra fds.")
        int preserveFds;

        @Parameters(index = "0", paramLabel = "ID", description = "The container id.")
        String id;

        /** Creates the container; returns its VMM process. */
        Process create() {
            Path b = (bundle != null ? bundle : Path.of("")).toAbsolutePath().normalize();
            OciSpec spec = OciSpec.load(b);
            if (preserveFds > 0) {
                throw new OciException("--preserve-fds: krun cannot pass host file descriptors into a VM");
            }
            if (spec.terminal() && consoleSocket == null) {
                throw new OciException("process.terminal needs --console-socket: where to send the terminal's master end");
            }
            if (!spec.terminal() && consoleSocket != null) {
                throw new OciException("--console-socket is for process.terminal, which this config.json does not ask for");
            }
            if (!Files.isDirectory(spec.root())) {
                throw new OciException("root.path " + spec.root() + " is not a directory");
            }
            if (spec.rootReadOnly()) {
                makeMountPoints(spec);
            }
            OciState st = new OciState(oci.stateRoot(), id);
            st.create(new State(id, OciState.CREATING, 0, 0, b.toString(), spec.annotations(), Instant.now().toString(), -1));
            Process p = null;
            Termios.Pty pty = null;
            try {
                if (spec.terminal()) {
                    pty = Termios.openPty();
                }
                p = spawnVmm(st, spec, pty);
                if (pty != null) {
                    sendMaster(consoleSocket, pty);
                    Posix.close(pty.master()); // the engine has its own copy now; the VMM process has the slave
                    pty = null;
                }
                spec.notes().forEach(n -> oci.note(st, n));
                List<Path> joined = new ArrayList<>();
                Cgroups.join(spec.cgroupsPath(), p.pid(), joined).ifPresent(n -> oci.note(st, n));
                if (!joined.isEmpty()) {
                    Files.write(st.cgroupsFile(), joined.stream().map(Path::toString).toList());
                }
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(CREATE_TIMEOUT_SECONDS);
                while (true) {
                    if (!p.isAlive()) {
                        String why = readError(st);
                        throw new OciException(why != null ? why
                                : "the VMM process ended before the VM was ready (status " + p.exitValue() + ")");
                    }
                    State s = st.read();
                    if (s.status().equals(OciState.CREATED)) {
                        break;
                    }
                    if (System.nanoTime() > deadline) {
                        throw new OciException("the VMM process did not have the VM ready within " + CREATE_TIMEOUT_SECONDS + " s");
                    }
                    Thread.sleep(20);
                }
                if (pidFile != null) {
                    writePidFile(pidFile.toAbsolutePath(), p.pid());
                }
                return p;
            } catch (RuntimeException | InterruptedException | IOException e) {
                if (pty != null) {
                    Posix.close(pty.master());
                    pty = null;
                }
                if (p != null) {
                    p.destroyForcibly();
                    try {
                        p.waitFor(10, TimeUnit.SECONDS);
                    } catch (InterruptedException ie) {
                        Thread.currentThread().interrupt();
                    }
                }
                st.delete();
                if (e instanceof InterruptedException) {
                    throw new OciException("interrupted");
                }
                if (e instanceof PosixException) {
                    throw new OciException("terminal: " + e.getMessage());
                }
                if (e instanceof IOException) {
                    throw new OciException("cannot record the cgroups of container " + id + ": " + e.getMessage());
                }
                throw (RuntimeException) e;
            }
        }

        private static String readError(OciState st) {
            try {
                return Files.isRegularFile(st.errorFile()) ? Files.readString(st.errorFile()).strip() : null;
            } catch (IOException e) {
                return null;
            }
        }

        /**
         * The VMM process: this very JVM's command line (the launcher's {@code java ... -jar JAR}) running
         * {@code krun oci --root DIR vmm ID}, in the container's network namespace (nsenter execs, so the pid is
         * the JVM's), with this process's standard streams (the engine's for the container).
         */
        /**
         * Hands the terminal's master end to the engine over its console socket, as runc does: one message
         * carrying the descriptor (SCM_RIGHTS), whose bytes name the terminal.
         */
        private static void sendMaster(Path socket, Termios.Pty pty) {
            int fd = PosixNet.socket(1 /* AF_UNIX */, PosixNet.SOCK_STREAM, 0);
            if (fd < 0) {
                throw new OciException("console socket: cannot make a socket (errno " + -fd + ")");
            }
            try {
                int rc = PosixNet.connect(fd, SockAddr.Unix.of(socket.toString()));
                if (rc < 0) {
                    throw new OciException("cannot connect to console socket " + socket + " (errno " + -rc + ")");
                }
                long sent = PosixNet.sendWithDescriptor(fd, pty.slavePath().getBytes(StandardCharsets.UTF_8), pty.master());
                if (sent < 0) {
                    throw new OciException("cannot send the terminal to console socket " + socket + " (errno " + -sent + ")");
                }
            } finally {
                Posix.close(fd);
            }
        }

        private Process spawnVmm(OciState st, OciSpec spec, Termios.Pty pty) {
            List<String> cmd = new ArrayList<>();
            if (spec.netns() != null) {
                if (!Files.exists(spec.netns())) {
                    throw new OciException("network namespace " + spec.netns() + " does not exist");
                }
                cmd.addAll(List.of("nsenter", "--net=" + spec.netns()));
            } else if (spec.newNetns()) {
                // A network namespace of its own (containerd's default without --net-host), its loopback up as
                // runc brings it up; unshare and sh exec, so the pid stays the JVM's.
                cmd.addAll(List.of("unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec \"$@\"", "krun-oci-netns"));
            }
            cmd.addAll(launcherCommand());
            cmd.addAll(List.of("oci", "--root", oci.stateRoot().toString(), "vmm", st.id()));
            ProcessBuilder pb = new ProcessBuilder(cmd).inheritIO();
            if (pty != null) {
                // The container's terminal: the pty's slave end as all three streams (opened by path).
                java.io.File slave = new java.io.File(pty.slavePath());
                pb.redirectInput(ProcessBuilder.Redirect.from(slave)).redirectOutput(ProcessBuilder.Redirect.appendTo(slave))
                        .redirectError(ProcessBuilder.Redirect.appendTo(slave));
            }
            try {
                return pb.start();
            } catch (IOException e) {
                throw new OciException("cannot start the VMM process: " + e.getMessage());
            }
        }
    }

    /**
     * The mount points of a read-only root's shares and tmpfs mounts, made in the root on the host before the
     * guest mounts it read-only (as runc makes them before it remounts a root read-only). Each missing
     * directory is made inside the root; a path that meets a symlink or a non-directory is left to the guest,
     * whose mount then fails with one line.
     */
    static void makeMountPoints(OciSpec spec) {
        List<String> targets = new ArrayList<>();
        spec.shares().forEach(sh -> targets.add(sh.guest()));
        spec.mounts().forEach(m -> targets.add(m.target()));
        for (String target : targets) {
            Path at = spec.root();
            for (Path part : Path.of("/").relativize(Path.of(target).normalize())) {
                if (part.toString().equals("..")) {
                    break;
                }
                at = at.resolve(part);
                try {
                    if (Files.isSymbolicLink(at) || (Files.exists(at, java.nio.file.LinkOption.NOFOLLOW_LINKS)
                            && !Files.isDirectory(at, java.nio.file.LinkOption.NOFOLLOW_LINKS))) {
                        break;
                    }
                    if (!Files.exists(at, java.nio.file.LinkOption.NOFOLLOW_LINKS)) {
                        Files.createDirectory(at);
                    }
                } catch (IOException e) {
                    break;
                }
            }
        }
    }

    /** This JVM's command line up to the launcher's jar: {@code java [options] -jar JAR}, from /proc/self/cmdline. */
    static List<String> launcherCommand() {
        List<String> args;
        try {
            byte[] raw = Files.readAllBytes(Path.of("/proc/self/cmdline"));
            args = new ArrayList<>(List.of(new String(raw, StandardCharsets.UTF_8).split("\0")));
        } catch (IOException e) {
            throw new OciException("cannot read this process's command line: " + e.getMessage());
        }
        return launcherPrefix(args);
    }

    /** {@code args} up to and including the jar after {@code -jar}, with the JVM's path made absolute. */
    static List<String> launcherPrefix(List<String> args) {
        int jar = args.indexOf("-jar");
        if (jar < 0 || jar + 1 >= args.size()) {
            throw new OciException("krun oci must run from krun's launcher (java ... -jar krun-launcher.jar)");
        }
        List<String> prefix = new ArrayList<>(args.subList(0, jar + 2));
        String java = ProcessHandle.current().info().command().orElse(prefix.get(0));
        prefix.set(0, java);
        return prefix;
    }

    static void writePidFile(Path file, long pid) {
        Path tmp = file.resolveSibling("." + file.getFileName() + ".krun-tmp");
        try {
            Files.writeString(tmp, Long.toString(pid));
            Files.move(tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new OciException("cannot write pid file " + file + ": " + e.getMessage());
        }
    }

    @Command(name = "create", mixinStandardHelpOptions = true,
            description = "Creates container ID from a bundle: the VMM process waits for start.")
    static final class Create extends Creating implements Callable<Integer> {
        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                create();
                return 0;
            });
        }
    }

    @Command(name = "run", mixinStandardHelpOptions = true,
            description = "Creates and starts container ID; waits for it and deletes it unless --detach.")
    static final class Run extends Creating implements Callable<Integer> {
        @Option(names = {"--detach", "-d"}, description = "Return once the container runs.")
        boolean detach;

        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                Process p = create();
                OciState st = new OciState(oci.stateRoot(), id);
                try {
                    control(st, "start");
                } catch (RuntimeException e) {
                    p.destroyForcibly();
                    p.waitFor(10, TimeUnit.SECONDS);
                    st.delete();
                    throw e;
                }
                if (detach) {
                    return 0;
                }
                int status = p.waitFor();
                st.delete();
                return status;
            });
        }
    }

    // ---- start, state, kill, delete, features

    @Command(name = "start", mixinStandardHelpOptions = true, description = "Starts created container ID: the VM boots.")
    static final class Start implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Override
        public Integer call() throws Exception {
            return controlIn(oci, id, OciState.CREATED, "start");
        }
    }

    @Command(name = "state", mixinStandardHelpOptions = true, description = "Prints the state of container ID (JSON).")
    static final class StateCommand implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                State s = new OciState(oci.stateRoot(), id).current();
                System.out.println(OciJson.write(OciState.toJson(s, false)));
                System.out.flush();
                return 0;
            });
        }
    }

    @Command(name = "kill", mixinStandardHelpOptions = true,
            description = "Sends SIGNAL (default TERM) to container ID's process: the guest command.")
    static final class Kill implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Option(names = {"--all", "-a"}, description = "Accepted: the guest command is the container's one process tree.")
        boolean all;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Parameters(index = "1", paramLabel = "SIGNAL", arity = "0..1", defaultValue = "TERM")
        String signal;

        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                int sig = Signals.parse(signal);
                OciState st = new OciState(oci.stateRoot(), id);
                State s = st.current();
                if (s.status().equals(OciState.STOPPED)) {
                    throw new OciException("container " + id + " is not running");
                }
                if (s.status().equals(OciState.CREATING) && s.pid() <= 0) {
                    throw new OciException("container " + id + " is being created");
                }
                try {
                    control(st, "kill " + sig);
                } catch (OciException e) {
                    if (!OciState.alive(s.pid(), s.pidStart())) {
                        throw new OciException("container " + id + " is not running");
                    }
                    // The VMM process does not answer: signal it directly (it ends, and the container with it).
                    Signals.send(s.pid(), sig);
                }
                return 0;
            });
        }
    }

    @Command(name = "delete", mixinStandardHelpOptions = true,
            description = "Deletes container ID (stopped or created; any with --force) and its state.")
    static final class Delete implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Option(names = {"--force", "-f"}, description = "Kill the container first if it runs.")
        boolean force;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                OciState st = new OciState(oci.stateRoot(), id);
                if (!st.exists()) {
                    if (force) {
                        return 0; // as runc: --force deletes what is there, and nothing is (the shim's clean-up asks twice)
                    }
                    throw new OciException("container " + id + " does not exist");
                }
                State s;
                try {
                    s = st.current();
                } catch (OciException e) {
                    st.delete(); // a state directory without its state (create died halfway): nothing runs
                    return 0;
                }
                boolean alive = s.pid() > 0 && OciState.alive(s.pid(), s.pidStart());
                if (alive && (s.status().equals(OciState.RUNNING) || s.status().equals(OciState.PAUSED)) && !force) {
                    throw new OciException("container " + id + " is " + s.status() + ": stop it first, or delete --force");
                }
                if (alive) {
                    // A created container (runc deletes those too) or --force: its VMM process goes first.
                    Signals.send(s.pid(), Signals.SIGKILL);
                    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                    while (OciState.alive(s.pid(), s.pidStart()) && System.nanoTime() < deadline) {
                        Thread.sleep(10);
                    }
                }
                st.delete();
                return 0;
            });
        }
    }

    @Command(name = "features", mixinStandardHelpOptions = true, description = "Prints what this runtime supports (JSON).")
    static final class Features implements Callable<Integer> {
        @Override
        public Integer call() {
            Map<String, Object> f = new LinkedHashMap<>();
            f.put("ociVersionMin", "1.0.0");
            f.put("ociVersionMax", "1.1.0");
            f.put("hooks", List.of());
            f.put("mountOptions", List.of("bind", "rbind", "ro", "rw", "size", "mode"));
            Map<String, Object> linux = new LinkedHashMap<>();
            linux.put("namespaces", List.of("network", "pid", "ipc", "uts", "mount", "cgroup"));
            linux.put("capabilities", List.of());
            Map<String, Object> cgroup = new LinkedHashMap<>();
            cgroup.put("v1", true);
            cgroup.put("v2", true);
            cgroup.put("systemd", false);
            linux.put("cgroup", cgroup);
            f.put("linux", linux);
            Map<String, Object> ann = new LinkedHashMap<>();
            ann.put("org.krun.vm", "true");
            ann.put("org.krun.annotations", OciSpec.CPUS + "," + OciSpec.RAM_MIB);
            f.put("annotations", ann);
            System.out.println(OciJson.write(f));
            return 0;
        }
    }

    @Command(name = "ps", mixinStandardHelpOptions = true,
            description = "Lists container ID's host processes: its VMM process (the guest's own are inside the VM).")
    static final class Ps implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Option(names = {"--format", "-f"}, paramLabel = "table|json", defaultValue = "table",
                description = "json: an array of pids; table: ps(1)'s lines of them (default).")
        String format;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        /** What follows the id, options included ({@code runc ps ID -ef}): ps(1)'s options in table format (default -ef). */
        @picocli.CommandLine.Unmatched
        List<String> psOptions = new ArrayList<>();

        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                State s = new OciState(oci.stateRoot(), id).current();
                List<Long> pids = s.status().equals(OciState.STOPPED) || s.pid() <= 0 ? List.of() : List.of(s.pid());
                if ("json".equals(format)) {
                    System.out.println(OciJson.write(pids));
                } else if ("table".equals(format)) {
                    printTable(pids, psOptions.isEmpty() ? List.of("-ef") : psOptions);
                } else {
                    throw new OciException("ps --format: 'table' or 'json', not '" + format + "'");
                }
                System.out.flush();
                return 0;
            });
        }

        /** As runc: ps(1) with the given options, its header and the lines whose PID column is one of {@code pids}. */
        private static void printTable(List<Long> pids, List<String> options) throws IOException, InterruptedException {
            List<String> cmd = new ArrayList<>(List.of("ps"));
            cmd.addAll(options);
            Process p = new ProcessBuilder(cmd).redirectError(ProcessBuilder.Redirect.INHERIT).start();
            List<String> lines = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).lines().toList();
            if (p.waitFor() != 0 || lines.isEmpty()) {
                throw new OciException("ps " + String.join(" ", options) + " failed (status " + p.exitValue() + ")");
            }
            int column = List.of(lines.get(0).trim().split("\\s+")).indexOf("PID");
            if (column < 0) {
                throw new OciException("ps " + String.join(" ", options) + " prints no PID column");
            }
            System.out.println(lines.get(0));
            for (String line : lines.subList(1, lines.size())) {
                String[] fields = line.trim().split("\\s+");
                if (fields.length > column && pids.stream().anyMatch(pid -> fields[column].equals(Long.toString(pid)))) {
                    System.out.println(line);
                }
            }
        }
    }

    @Command(name = "pause", mixinStandardHelpOptions = true,
            description = "Pauses running container ID: the VM's vCPUs stop (its clock with them) until resume.")
    static final class Pause implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Override
        public Integer call() throws Exception {
            return controlIn(oci, id, OciState.RUNNING, "pause");
        }
    }

    @Command(name = "resume", mixinStandardHelpOptions = true, description = "Resumes paused container ID.")
    static final class Resume implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Override
        public Integer call() throws Exception {
            return controlIn(oci, id, OciState.PAUSED, "resume");
        }
    }

    /** The guest vsock port krun's init serves exec requests on (VmConfig.execPort; below krun's own ports). */
    static final long EXEC_PORT = 0x3fff0;

    @Command(name = "exec", mixinStandardHelpOptions = true,
            description = {"Runs another process in running container ID (podman exec, ctr task exec).",
                "The process is described by --process FILE (the runtime spec's process object) or by COMMAND and"
                        + " the options. With --detach a relay process stays behind, named by --pid-file: it lives as"
                        + " long as the guest process, passes its streams and signals, and exits with its status."})
    static final class Exec implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Option(names = {"--process", "-p"}, paramLabel = "FILE", description = "The process to run (process.json).")
        Path process;

        @Option(names = {"--detach", "-d"}, description = "Return once the process runs; a relay process stays.")
        boolean detach;

        @Option(names = "--pid-file", paramLabel = "FILE", description = "Write the relay process's pid here.")
        Path pidFile;

        @Option(names = "--console-socket", paramLabel = "SOCKET",
                description = "Unix socket to send the terminal's master end to (a process with a terminal).")
        Path consoleSocket;

        @Option(names = {"--tty", "-t"}, description = "Give the process a terminal (without --process).")
        boolean tty;

        @Option(names = "--cwd", paramLabel = "DIR", description = "Its working directory (without --process).")
        String cwd;

        @Option(names = {"--env", "-e"}, paramLabel = "NAME=VALUE", description = "More environment (without --process).")
        List<String> env = new ArrayList<>();

        @Option(names = {"--user", "-u"}, paramLabel = "UID[:GID]", description = "Its credentials (without --process).")
        String user;

        @Option(names = {"--additional-gids", "-g"}, paramLabel = "GID", description = "Supplementary groups (without --process).")
        List<Long> additionalGids = new ArrayList<>();

        @Option(names = "--preserve-fds", paramLabel = "N", description = "Accepted when 0: krun passes no extra fds.")
        int preserveFds;

        @Option(names = {"--process-label", "--apparmor", "--cgroup", "--cap", "-c"}, paramLabel = "VALUE", hidden = true,
                description = "Accepted for compatibility: the process runs in the VM.")
        List<String> ignoredValues = new ArrayList<>();

        @Option(names = {"--no-new-privs", "--ignore-paused", "--no-subreaper"}, hidden = true,
                description = "Accepted for compatibility.")
        boolean ignoredFlag;

        @Parameters(index = "0", paramLabel = "ID", description = "The container id.")
        String id;

        @Parameters(index = "1..*", paramLabel = "COMMAND", description = "The command and its arguments (without --process).")
        List<String> command = new ArrayList<>();

        @Override
        public Integer call() throws Exception {
            return oci.logged(() -> {
                if (preserveFds > 0) {
                    throw new OciException("--preserve-fds: krun cannot pass host file descriptors into a VM");
                }
                OciState st = new OciState(oci.stateRoot(), id);
                State s = st.current();
                if (!s.status().equals(OciState.RUNNING)) {
                    throw new OciException("container " + id + " is " + s.status() + ", not running: it cannot exec");
                }
                ExecRequest request = request(s);
                boolean foregroundTty = request.terminal() && consoleSocket == null && !detach;
                if (request.terminal() && consoleSocket == null && !foregroundTty) {
                    throw new OciException("a process with a terminal needs --console-socket: where to send its master end");
                }
                if (!request.terminal() && consoleSocket != null) {
                    throw new OciException("--console-socket is for a process with a terminal, which this one is not");
                }
                if (foregroundTty && !Posix.isatty(0)) {
                    throw new OciException("a process with a terminal needs one: stdin is not a terminal (or give --console-socket)");
                }
                Termios.Pty pty = request.terminal() && consoleSocket != null ? Termios.openPty() : null;
                int slave = -1;
                try {
                    if (pty != null) {
                        slave = Posix.check("open " + pty.slavePath(), Posix.open(pty.slavePath(), Posix.O_RDWR | 0x100 /* O_NOCTTY */));
                        if (request.columns() > 0 && request.rows() > 0) {
                            setWindowSize(slave, request.columns(), request.rows());
                        }
                    }
                    ExecRelay relay = ExecRelay.start(st, request, CREATE_TIMEOUT_SECONDS);
                    if (pty != null) {
                        Creating.sendMaster(consoleSocket, pty);
                        Posix.close(pty.master());
                        pty = null;
                    }
                    if (!detach) {
                        relay.forwardSignals();
                        return relayHere(relay, request.terminal(), slave);
                    }
                    int io = slave >= 0 ? slave : -1;
                    Map<Integer, Integer> fds = new LinkedHashMap<>();
                    fds.put(0, io >= 0 ? io : 0);
                    fds.put(1, io >= 0 ? io : 1);
                    fds.put(2, io >= 0 ? io : 2);
                    fds.put(3, relay.fd());
                    List<String> cmd = new ArrayList<>(launcherCommand());
                    cmd.addAll(List.of("oci", "--root", oci.stateRoot().toString(), "exec-relay"));
                    if (request.terminal()) {
                        cmd.add("--terminal");
                    }
                    cmd.add(id);
                    org.krun.posix.PosixProcess child;
                    try {
                        child = org.krun.posix.PosixProcess.spawn(cmd, fds);
                    } catch (RuntimeException e) {
                        relay.close();
                        throw new OciException("cannot start the exec relay process: " + e.getMessage());
                    }
                    // The relay has its own copy: the connection lives as long as it does. Not reaped here: the
                    // engine's monitor (a subreaper) inherits it when this process ends, and waits for it.
                    relay.close();
                    if (pidFile != null) {
                        writePidFile(pidFile.toAbsolutePath(), child.pid());
                    }
                    return 0;
                } finally {
                    if (pty != null) {
                        Posix.close(pty.master());
                    }
                    if (slave >= 0) {
                        Posix.close(slave);
                    }
                }
            });
        }

        /** The process: --process FILE, or COMMAND with the container's own environment, user and cwd as defaults. */
        private ExecRequest request(State s) {
            if (process != null) {
                if (!command.isEmpty()) {
                    throw new OciException("exec: give the command in --process or on the command line, not both");
                }
                return ExecRequest.load(process);
            }
            if (command.isEmpty()) {
                throw new OciException("exec: no command (give COMMAND or --process FILE)");
            }
            OciSpec spec = OciSpec.load(Path.of(s.bundle()));
            List<String> environment = new ArrayList<>();
            spec.env().forEach((k, v) -> environment.add(k + "=" + v));
            environment.addAll(env);
            org.krun.api.GuestUser u = spec.user() != null ? spec.user() : new org.krun.api.GuestUser(0, 0);
            if (user != null) {
                String[] parts = user.split(":", 2);
                try {
                    long uid = Long.parseLong(parts[0]);
                    long gid = parts.length > 1 ? Long.parseLong(parts[1]) : 0;
                    u = new org.krun.api.GuestUser(uid, gid, additionalGids);
                } catch (RuntimeException e) {
                    throw new OciException("--user '" + user + "' is not UID[:GID]" + (e.getMessage() == null ? "" : ": " + e.getMessage()));
                }
            } else if (!additionalGids.isEmpty()) {
                u = new org.krun.api.GuestUser(u.uid(), u.gid(), additionalGids);
            }
            Termios.Size size = tty ? Termios.size(0).orElse(null) : null;
            return new ExecRequest(command, environment, cwd != null ? cwd : spec.cwd(), u, tty,
                    size == null ? 0 : size.columns(), size == null ? 0 : size.rows());
        }

        /** The foreground: this process is the relay; a terminal of our own is made raw while it runs. */
        private static int relayHere(ExecRelay relay, boolean terminal, int slave) {
            if (slave >= 0) {
                // --console-socket without --detach: the engine has the master end; we talk through the slave
                Termios.enterRawMode(slave);
                return relay.relay(new FileInputStream(fdOf(slave)), new FileOutputStream(fdOf(slave)),
                        new FileOutputStream(fdOf(slave)), true, slave);
            }
            java.util.Optional<Termios.RawMode> raw = terminal ? Termios.enterRawMode(0) : java.util.Optional.empty();
            try {
                return relay.relay(new FileInputStream(FileDescriptor.in), new FileOutputStream(FileDescriptor.out),
                        new FileOutputStream(FileDescriptor.err), terminal, 0);
            } finally {
                raw.ifPresent(Termios.RawMode::close);
            }
        }
    }

    /** TIOCSWINSZ of the terminal on {@code fd} (struct winsize: rows, columns, unused pixels). */
    private static void setWindowSize(int fd, int columns, int rows) {
        try (java.lang.foreign.Arena a = java.lang.foreign.Arena.ofConfined()) {
            java.lang.foreign.MemorySegment ws = a.allocate(8);
            ws.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 0, (short) rows);
            ws.set(java.lang.foreign.ValueLayout.JAVA_SHORT, 2, (short) columns);
            Posix.ioctl(fd, 0x5414 /* TIOCSWINSZ */, ws);
        }
    }

    /** A descriptor of ours as a Java stream's, through /proc (a pty's slave end can be opened again). */
    private static FileDescriptor fdOf(int fd) {
        try {
            return new java.io.RandomAccessFile("/proc/self/fd/" + fd, "rw").getFD();
        } catch (IOException e) {
            throw new OciException("cannot use descriptor " + fd + ": " + e.getMessage());
        }
    }

    @Command(name = "exec-relay", hidden = true,
            description = "The relay of a detached exec session on descriptor 3 (started by exec --detach).")
    static final class ExecRelayCommand implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Option(names = "--terminal", description = "The process has a terminal: stdin is its host end.")
        boolean terminal;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        @Override
        public Integer call() {
            ExecRelay relay = ExecRelay.adopt(3);
            relay.forwardSignals();
            java.util.Optional<Termios.RawMode> raw = terminal ? Termios.enterRawMode(0) : java.util.Optional.empty();
            try {
                return relay.relay(new FileInputStream(FileDescriptor.in), new FileOutputStream(FileDescriptor.out),
                        new FileOutputStream(FileDescriptor.err), terminal, 0);
            } finally {
                raw.ifPresent(Termios.RawMode::close);
            }
        }
    }

    // ---- the control socket

    /** Sends one request to the VMM process and returns its answer, or fails with the VMM's error. */
    /**
     * Asks container {@code id}'s VMM process for {@code request} (start, pause, resume), which only a container
     * in state {@code status} takes: 0, or a one-line error naming the state it is in.
     */
    private static int controlIn(OciCommand oci, String id, String status, String request) throws Exception {
        return oci.logged(() -> {
            OciState st = new OciState(oci.stateRoot(), id);
            State s = st.current();
            if (!s.status().equals(status)) {
                throw new OciException("container " + id + " is " + s.status() + ", not " + status + ": it cannot " + request);
            }
            control(st, request);
            return 0;
        });
    }

    static String control(OciState st, String request) {
        try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
            st.withSocketPath(p -> ch.connect(UnixDomainSocketAddress.of(p)));
            ch.write(ByteBuffer.wrap((request + "\n").getBytes(StandardCharsets.UTF_8)));
            BufferedReader r = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
            String answer = r.readLine();
            if (answer == null) {
                throw new OciException("container " + st.id() + ": the VMM process closed its control socket");
            }
            if (!answer.startsWith("ok")) {
                throw new OciException(answer.startsWith("error: ") ? answer.substring(7) : answer);
            }
            return answer;
        } catch (IOException e) {
            throw new OciException("container " + st.id() + ": cannot reach the VMM process (" + e.getMessage() + ")");
        }
    }

    // ---- the VMM process

    @Command(name = "vmm", hidden = true, description = "The VMM process of container ID (started by create).")
    static final class Vmm implements Callable<Integer> {
        @ParentCommand
        OciCommand oci;

        @Parameters(index = "0", paramLabel = "ID")
        String id;

        private VirtualMachine vm;
        private boolean started;
        private boolean terminal;
        /** The signal that ended the container from the host's side (KILL, or one before start), or 0. */
        private volatile int killedBy;
        private final CompletableFuture<Integer> done = new CompletableFuture<>();

        @Override
        public Integer call() throws Exception {
            OciState st = new OciState(oci.stateRoot(), id);
            State s = st.read();
            long pid = ProcessHandle.current().pid();
            State mine = s.withPid(pid, OciState.startTime(pid));
            PrintStream err = new PrintStream(new FileOutputStream(FileDescriptor.err), true);
            ServerSocketChannel server;
            try {
                OciSpec spec = OciSpec.load(Path.of(s.bundle()));
                OutputStream stdout = new FileOutputStream(FileDescriptor.out);
                OutputStream stderr = new FileOutputStream(FileDescriptor.err);
                terminal = spec.terminal() && Posix.isatty(0) && Posix.isatty(1);
                Termios.Size size = terminal ? Termios.size(1).orElse(null) : null;
                ConsoleSpec console = terminal
                        ? ConsoleSpec.terminal(stdout, size == null ? 0 : size.columns(), size == null ? 0 : size.rows())
                        : ConsoleSpec.pipes(stdout, stderr, true);
                String kernel = System.getProperty("krun.kernel");
                if (kernel == null || kernel.isEmpty()) {
                    throw new OciException("no guest kernel: system property krun.kernel is not set (run through krun-oci)");
                }
                // signals: the engine's kill (podman stop) reaches the container's process.
                VmConfig.Builder b = spec.apply(VmConfig.builder()).kernel(Path.of(kernel))
                        .console(console).signals(true);
                // TSI for IPv4 and IPv6 (not unix sockets: the host's paths are not the container's), in the
                // container's network namespace: every port the guest listens on is the namespace's, so the engine's
                // port forwarding (-p, to the container's address) reaches it.
                // The exec agent (krun oci exec): its vsock port mapped to exec.sock in the state directory.
                b.device(VsockSpec.create().withTsi(VsockSpec.Tsi.INET).withPublishAll(true)
                        .withPort(new org.krun.api.VsockPort(EXEC_PORT, execSocket(st), true)));
                b.execPort(EXEC_PORT);
                vm = oci.krun.create(b.build());
                server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                ServerSocketChannel bound = server;
                st.withSocketPath(p -> bound.bind(UnixDomainSocketAddress.of(p)));
            } catch (RuntimeException | IOException e) {
                String why = e.getMessage() == null ? e.toString() : e.getMessage();
                Files.writeString(st.errorFile(), why + "\n");
                if (vm != null) {
                    vm.close();
                }
                return 1;
            }
            st.write(mine.withStatus(OciState.CREATED));
            Thread.ofPlatform().daemon(true).name("krun-oci-control").start(() -> serve(server, st, mine));
            int status = done.get();
            try {
                server.close();
                Files.deleteIfExists(st.socket());
                st.write(mine.withExit(status));
            } catch (IOException | RuntimeException e) {
                // delete may have removed the directory already
            }
            err.flush();
            return status;
        }

        private void serve(ServerSocketChannel server, OciState st, State mine) {
            while (!done.isDone()) {
                try (SocketChannel ch = server.accept()) {
                    BufferedReader r = new BufferedReader(new InputStreamReader(Channels.newInputStream(ch), StandardCharsets.UTF_8));
                    String request = r.readLine();
                    String answer;
                    try {
                        answer = handle(request == null ? "" : request, st, mine);
                    } catch (RuntimeException e) {
                        answer = "error: " + (e.getMessage() == null ? e.toString() : e.getMessage());
                    }
                    ch.write(ByteBuffer.wrap((answer.replace('\n', ' ') + "\n").getBytes(StandardCharsets.UTF_8)));
                } catch (IOException e) {
                    if (!server.isOpen()) {
                        return;
                    }
                }
            }
        }

        private synchronized String handle(String request, OciState st, State mine) {
            if (request.equals("start")) {
                if (started) {
                    throw new OciException("container " + id + " has started already");
                }
                if (done.isDone()) {
                    throw new OciException("container " + id + " has stopped");
                }
                try {
                    vm.start();
                } catch (RuntimeException e) {
                    // The VM cannot run (the host refused what it needs): the container ends, as one that exits.
                    System.err.println("krun: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
                    done.complete(1);
                    throw e;
                }
                started = true;
                st.write(mine.withStatus(OciState.RUNNING));
                if (terminal) {
                    // The guest's terminal does the line discipline: the host's end passes bytes as they are.
                    Termios.enterRawMode(0);
                    watchWindowSize(vm);
                }
                org.krun.cli.internal.StdinPump.start(new FileInputStream(FileDescriptor.in), vm.consoleInput());
                vm.exit().whenComplete((exit, ex) -> done.complete(status(exit)));
                return "ok";
            }
            if (request.equals("pause") || request.equals("resume")) {
                if (!started || done.isDone()) {
                    throw new OciException("container " + id + " is not running");
                }
                if (request.equals("pause")) {
                    vm.pause(); // returns once every vCPU is at a safe point
                    st.write(mine.withStatus(OciState.PAUSED));
                } else {
                    vm.resume();
                    st.write(mine.withStatus(OciState.RUNNING));
                }
                return "ok";
            }
            if (request.startsWith("kill ")) {
                int sig = Signals.parse(request.substring(5).trim());
                if (!started) {
                    killedBy = sig;
                    vm.close();
                    done.complete(128 + sig);
                } else if (sig == Signals.SIGKILL) {
                    killedBy = sig;
                    vm.kill();
                } else {
                    try {
                        vm.signal(sig);
                    } catch (IllegalStateException e) {
                        throw new OciException("container " + id + " is not running");
                    }
                }
                return "ok";
            }
            throw new OciException("unknown request '" + request + "'");
        }

        private int status(VmExit exit) {
            if (killedBy > 0) {
                return 128 + killedBy;
            }
            if (exit == null) {
                return 1;
            }
            if (exit.reason() != VmExit.Reason.COMMAND_EXITED) {
                System.err.println("krun: " + exit.detail());
            }
            return exit.status();
        }

        /**
         * Where the vsock device listens for exec sessions: {@code exec.sock} in the state directory, reached
         * through a descriptor of the directory kept open for this process's life when its path is too long for
         * a unix socket (the device binds it now and removes it when the VM closes, through the same path).
         */
        private static Path execSocket(OciState st) {
            Path p = st.dir().resolve(OciState.EXEC_SOCKET);
            if (p.toString().getBytes(StandardCharsets.UTF_8).length <= OciState.MAX_SOCKET_PATH) {
                return p;
            }
            int dir = Posix.open(st.dir().toString(), org.krun.posix.PosixIo.O_PATH | org.krun.posix.PosixIo.O_DIRECTORY
                    | Posix.O_CLOEXEC);
            if (dir < 0) {
                throw new OciException("cannot open " + st.dir() + ": " + org.krun.posix.Errno.describe(-dir));
            }
            return Path.of("/proc/self/fd/" + dir + "/" + OciState.EXEC_SOCKET);
        }

        /** Passes the terminal's size changes (the engine resizes its master end) to the guest. */
        private static void watchWindowSize(VirtualMachine vm) {
            Thread.ofPlatform().daemon(true).name("krun-winsize").start(() -> {
                Termios.Size last = Termios.size(1).orElse(null);
                while (vm.state() != org.krun.api.VmState.STOPPED) {
                    try {
                        Thread.sleep(200);
                    } catch (InterruptedException e) {
                        return;
                    }
                    Termios.Size now = Termios.size(1).orElse(null);
                    if (now != null && !now.equals(last)) {
                        vm.resizeConsole(now.columns(), now.rows());
                        last = now;
                    }
                }
            });
        }
    }

    /** Signal names and numbers (Linux x86-64), and sending one to a host process. */
    static final class Signals {
        static final int SIGKILL = 9;
        private static final List<String> NAMES = List.of("", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE",
                "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN",
                "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS");

        /** {@code TERM}, {@code SIGTERM}, {@code 15}, {@code RTMIN+N}: a signal number 1 to 64. */
        static int parse(String text) {
            String t = text.trim().toUpperCase(Locale.ROOT);
            if (t.startsWith("SIG")) {
                t = t.substring(3);
            }
            int n = -1;
            if (!t.isEmpty() && t.chars().allMatch(Character::isDigit) && t.length() <= 2) {
                n = Integer.parseInt(t);
            } else if (NAMES.contains(t) && !t.isEmpty()) {
                n = NAMES.indexOf(t);
            } else if (t.equals("IOT")) {
                n = 6;
            } else if (t.equals("POLL")) {
                n = 29;
            } else if (t.startsWith("RTMIN")) {
                n = 34 + offset(t.substring(5));
            } else if (t.startsWith("RTMAX")) {
                n = 64 + offset(t.substring(5));
            }
            if (n < 1 || n > 64) {
                throw new OciException("'" + text + "' is not a signal");
            }
            return n;
        }

        private static int offset(String s) {
            if (s.isEmpty()) {
                return 0;
            }
            try {
                return Integer.parseInt(s.startsWith("+") ? s.substring(1) : s);
            } catch (NumberFormatException e) {
                return -1000;
            }
        }

        /** kill(2) of a host process, through kill(1): the JVM's own API offers TERM and KILL only. */
        static void send(long pid, int sig) {
            try {
                Process p = new ProcessBuilder("kill", "-" + sig, Long.toString(pid)).redirectErrorStream(true).start();
                p.getInputStream().transferTo(OutputStream.nullOutputStream());
                p.waitFor(10, TimeUnit.SECONDS);
            } catch (IOException e) {
                throw new OciException("cannot signal process " + pid + ": " + e.getMessage());
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
