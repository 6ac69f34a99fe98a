package org.krun.cli.internal.oci;

import java.io.IOException;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.krun.cli.internal.oci.OciSpec.OciException;

/**
 * One container's state directory, {@code ROOT/ID}: {@code state.json} (what {@code state} reports, plus the
 * VMM process's start time, to tell it from a later process with its pid, and the exit status once known) and
 * the VMM process's control socket {@code ctl.sock}. {@code delete} removes the directory.
 *
 * <p>Status, as the OCI runtime spec has it: {@code creating} while {@code create} builds the VMM process,
 * {@code created} once it waits for {@code start}, {@code running} once the guest runs, {@code stopped} once the
 * VMM process ended, whoever ended it (a recorded {@code created} or {@code running} whose process is gone, even
 * by kill -9, reads as {@code stopped}).
 */
final class OciState {

    static final String OCI_VERSION = "1.0.2";
    static final String CREATING = "creating";
    static final String CREATED = "created";
    static final String RUNNING = "running";
    static final String PAUSED = "paused";
    static final String STOPPED = "stopped";

    /** Container ids as runc accepts them: a path component of the state directory, never {@code .} or {@code ..}. */
    private static final Pattern ID = Pattern.compile("[A-Za-z0-9][A-Za-z0-9_.+-]{0,1023}");

    /** What {@code state.json} holds. {@code pid} is 0 before the VMM process runs; {@code exitStatus} -1 until known. */
    record State(String id, String status, long pid, long pidStart, String bundle, Map<String, String> annotations,
            String created, int exitStatus) {

        State withStatus(String s) {
            return new State(id, s, pid, pidStart, bundle, annotations, created, exitStatus);
        }

        State withPid(long p, long start) {
            return new State(id, status, p, start, bundle, annotations, created, exitStatus);
        }

        State withExit(int status) {
            return new State(id, STOPPED, pid, pidStart, bundle, annotations, created, status);
        }
    }

    private final Path dir;
    private final String id;

    OciState(Path root, String id) {
        if (id == null || !ID.matcher(id).matches() || id.equals(".") || id.equals("..")) {
            throw new OciException("'" + id + "' is not a container id (letters, digits, _ . + -)");
        }
        this.id = id;
        this.dir = root.resolve(id);
    }

    /** /run/krun-oci for root, $XDG_RUNTIME_DIR/krun-oci otherwise (as runc and crun choose theirs). */
    static Path defaultRoot() {
        String xdg = System.getenv("XDG_RUNTIME_DIR");
        boolean root = "root".equals(System.getProperty("user.name"));
        return !root && xdg != null && !xdg.isEmpty() ? Path.of(xdg, "krun-oci") : Path.of("/run/krun-oci");
    }

    Path dir() {
        return dir;
    }

    String id() {
        return id;
    }

    Path socket() {
        return dir.resolve("ctl.sock");
    }

    /** The unix socket the VMM process maps to the guest's exec agent (ExecRelay). */
    static final String EXEC_SOCKET = "exec.sock";

    /** What a unix socket's path may hold (sun_path is 108 bytes, with its NUL). */
    static final int MAX_SOCKET_PATH = 107;

    /** Work on a path, which may fail with an I/O error. */
    interface PathAction<T> {
        T apply(Path p) throws IOException;
    }

    /**
     * Runs {@code action} with a path of the control socket short enough for a unix socket: the socket's own,
     * or, when that is too long (engines' ids are 64 characters, and --root may be long), the same file
     * reached through an O_PATH descriptor of the state directory, {@code /proc/self/fd/N/ctl.sock}.
     */
    <T> T withSocketPath(PathAction<T> action) throws IOException {
        return withSocketPath(socket().getFileName().toString(), action);
    }

    /** {@link #withSocketPath(PathAction)} for socket {@code name} of the state directory. */
    <T> T withSocketPath(String name, PathAction<T> action) throws IOException {
        Path p = dir.resolve(name);
        if (p.toString().getBytes(java.nio.charset.StandardCharsets.UTF_8).length <= MAX_SOCKET_PATH) {
            return action.apply(p);
        }
        int fd;
        try {
            fd = org.krun.posix.Posix.open(dir.toString(), org.krun.posix.PosixIo.O_PATH | org.krun.posix.PosixIo.O_DIRECTORY
                    | org.krun.posix.Posix.O_CLOEXEC);
        } catch (RuntimeException e) {
            throw new IOException("cannot open " + dir + ": " + e.getMessage(), e);
        }
        try {
            return action.apply(Path.of("/proc/self/fd/" + fd + "/" + name));
        } finally {
            org.krun.posix.Posix.close(fd);
        }
    }

    /** Where the VMM process leaves the reason it could not make the VM, for {@code create} to report. */
    Path errorFile() {
        return dir.resolve("error");
    }

    /** The cgroup directories {@code create} joined the VMM process to, one a line, for delete to remove. */
    Path cgroupsFile() {
        return dir.resolve("cgroups");
    }

    /** Removes the cgroup directories the VMM process was joined to (once it is gone; best effort). */
    void removeCgroups() {
        try {
            if (Files.isRegularFile(cgroupsFile())) {
                Cgroups.remove(Files.readAllLines(cgroupsFile()).stream().filter(l -> !l.isBlank()).map(Path::of).toList());
            }
        } catch (IOException e) {
            // nothing recorded
        }
    }

    boolean exists() {
        return Files.isDirectory(dir);
    }

    /** Makes the directory: fails when a container of this id exists. */
    void create(State initial) {
        try {
            Files.createDirectories(dir.getParent());
            Files.createDirectory(dir);
        } catch (FileAlreadyExistsException e) {
            throw new OciException("container " + id + " already exists");
        } catch (IOException e) {
            throw new OciException("cannot make state directory " + dir + ": " + e.getMessage());
        }
        write(initial);
    }

    State read() {
        String text;
        try {
            text = Files.readString(dir.resolve("state.json"));
        } catch (NoSuchFileException e) {
            throw new OciException("container " + id + " does not exist");
        } catch (IOException e) {
            throw new OciException("cannot read the state of container " + id + ": " + e.getMessage());
        }
        return parse(text);
    }

    /** The state as recorded, with a {@code created} or {@code running} whose VMM process is gone read as stopped. */
    State current() {
        State s = read();
        if ((s.status().equals(CREATED) || s.status().equals(RUNNING) || s.status().equals(PAUSED))
                && !alive(s.pid(), s.pidStart())) {
            return s.withStatus(STOPPED);
        }
        if (s.status().equals(CREATING) && s.pid() != 0 && !alive(s.pid(), s.pidStart())) {
            return s.withStatus(STOPPED);
        }
        return s;
    }

    /** Replaces state.json whole (written beside it and renamed, so a reader never sees half of it). */
    void write(State s) {
        Path tmp = dir.resolve("state.json.tmp" + ProcessHandle.current().pid());
        try {
            Files.writeString(tmp, OciJson.write(toJson(s, true)));
            try {
                Files.move(tmp, dir.resolve("state.json"), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(tmp, dir.resolve("state.json"), StandardCopyOption.REPLACE_EXISTING);
            }
        } catch (IOException e) {
            throw new OciException("cannot write the state of container " + id + ": " + e.getMessage());
        }
    }

    /** Removes the state directory and everything in it, and the cgroups the VMM process was joined to. */
    void delete() {
        if (!Files.exists(dir)) {
            return;
        }
        removeCgroups();
        try (Stream<Path> walk = Files.walk(dir)) {
            for (Path p : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        } catch (IOException e) {
            throw new OciException("cannot remove state directory " + dir + ": " + e.getMessage());
        }
    }

    /**
     * The state as the OCI runtime spec's {@code state} command reports it ({@code internal} adds krun's own
     * keys: the VMM process's start time and the exit status).
     */
    static Map<String, Object> toJson(State s, boolean internal) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("ociVersion", OCI_VERSION);
        m.put("id", s.id());
        m.put("status", s.status());
        if (s.pid() > 0 && (internal || !s.status().equals(STOPPED))) {
            m.put("pid", s.pid());
        } else if (!internal) {
            m.put("pid", 0L);
        }
        m.put("bundle", s.bundle());
        m.put("created", s.created());
        m.put("annotations", new LinkedHashMap<>(s.annotations()));
        if (internal) {
            m.put("org.krun.pidStart", s.pidStart());
            m.put("org.krun.exitStatus", (long) s.exitStatus());
        }
        return m;
    }

    static State parse(String text) {
        Object o;
        try {
            o = OciJson.parse(text);
        } catch (OciJson.JsonException e) {
            throw new OciException("state.json is damaged: " + e.getMessage());
        }
        if (!(o instanceof Map<?, ?> m)) {
            throw new OciException("state.json is damaged: not an object");
        }
        Map<String, String> annotations = new LinkedHashMap<>();
        if (m.get("annotations") instanceof Map<?, ?> a) {
            a.forEach((k, v) -> annotations.put(String.valueOf(k), String.valueOf(v)));
        }
        return new State(str(m.get("id")), str(m.get("status")), num(m.get("pid")), num(m.get("org.krun.pidStart")),
                str(m.get("bundle")), annotations, str(m.get("created")),
                m.get("org.krun.exitStatus") == null ? -1 : (int) num(m.get("org.krun.exitStatus")));
    }

    private static String str(Object o) {
        return o == null ? "" : String.valueOf(o);
    }

    private static long num(Object o) {
        return o instanceof Long l ? l : 0;
    }

    /**
     * The start time of process {@code pid} (field 22 of /proc/PID/stat, clock ticks since boot), or -1 when
     * there is no such process or it is a zombie (it has ended; its parent has not collected it yet).
     */
    static long startTime(long pid) {
        if (pid <= 0) {
            return -1;
        }
        String stat;
        try {
            stat = Files.readString(Path.of("/proc", Long.toString(pid), "stat"));
        } catch (IOException e) {
            return -1;
        }
        // The command name (field 2) is in parentheses and may hold anything: count from the last ')'.
        int close = stat.lastIndexOf(')');
        String[] f = stat.substring(close + 2).split(" ");
        if (f.length < 20 || f[0].equals("Z") || f[0].equals("X")) {
            return -1;
        }
        try {
            return Long.parseLong(f[19]);
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    /** Whether {@code pid} still is the process that was recorded (same start time). */
    static boolean alive(long pid, long recordedStart) {
        long now = startTime(pid);
        return now >= 0 && (recordedStart <= 0 || now == recordedStart);
    }
}
