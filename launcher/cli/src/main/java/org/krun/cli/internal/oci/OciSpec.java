package org.krun.cli.internal.oci;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;

import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.GuestUser;
import org.krun.api.Rlimit;
import org.krun.api.VmConfig;

/**
 * What krun makes of an OCI bundle's {@code config.json} (runtime-spec 1.x): the microVM that runs the
 * container's process. docs/oci.md has the whole mapping; in short:
 * <ul>
 * <li>{@code process}: args, env, cwd, user (uid, gid, additionalGids), rlimits (set by the guest init, so
 * the host's hard limits do not bound them) and terminal;</li>
 * <li>{@code root}: the rootfs is the guest's root over virtio-fs, shared live, read-only when asked;</li>
 * <li>{@code mounts}: bind mounts of directories become virtio-fs shares; tmpfs mounts are made in the guest;
 * proc, sysfs, devpts, mqueue, cgroup and the usual /dev mounts are the guest's own; a bind mount of a
 * single file cannot be shared (virtio-fs shares directories) and is left out, with a note;</li>
 * <li>{@code hostname}; the VM's size from annotations {@code krun.cpus} and {@code krun.ram_mib} (as crun's
 * krun handler names them), else the memory limit of {@code linux.resources}, else 1 vCPU and 512 MiB;</li>
 * <li>{@code linux.namespaces}: the VMM process joins the network namespace given by path (the guest's
 * sockets are made there by TSI), or runs in a new one (only its loopback, up, as runc makes it) when the
 * entry has no path; without a network entry it stays in the engine's (the host's network); the other
 * namespaces need nothing, the VM is its own;</li>
 * <li>{@code linux.cgroupsPath}: joined by the VMM process where the host allows.</li>
 * </ul>
 * What a VM cannot honour fails with one line ({@link OciException}): a user namespace, hooks, a mount type
 * it does not know.
 */
record OciSpec(List<String> args, Map<String, String> env, String cwd, GuestUser user, boolean terminal,
        List<Rlimit> rlimits, Path root, boolean rootReadOnly, List<Share> shares, List<GuestMount> mounts,
        String hostname, int cpus, int memoryMib, Path netns, boolean newNetns, String cgroupsPath, Map<String, String> annotations,
        List<String> notes) {

    /** A host directory shared at a guest path. */
    record Share(Path host, String guest, boolean readOnly) {
    }

    /** The annotation that sets the number of vCPUs. */
    static final String CPUS = "krun.cpus";
    /** The annotation that sets the guest's memory, in MiB. */
    static final String RAM_MIB = "krun.ram_mib";
    static final int DEFAULT_CPUS = 1;
    static final int DEFAULT_MEMORY_MIB = 512;
    /** Below this crun's krun handler ignores krun.ram_mib; a guest this small does not boot a container anyway. */
    static final int MIN_MEMORY_MIB = 128;

    /** Mount points the guest init makes itself (its own proc, sysfs, devtmpfs, devpts, shm, and what is in them). */
    private static final Set<String> GUEST_OWN = Set.of("/proc", "/sys", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue",
            "/sys/fs/cgroup");
    /** Files a container engine binds in that the guest has otherwise: TSI's resolv.conf and hosts, init's hostname. */
    private static final Set<String> ENGINE_FILES = Set.of("/etc/resolv.conf", "/etc/hosts", "/etc/hostname",
            "/run/.containerenv");

    /** Thrown for a configuration krun cannot run: one line, for the engine to show. */
    static final class OciException extends RuntimeException {
        OciException(String message) {
            super(message);
        }
    }

    /** Reads {@code bundle/config.json}. */
    static OciSpec load(Path bundle) {
        Path file = bundle.resolve("config.json");
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new OciException("cannot read " + file + ": " + e.getMessage());
        }
        Object parsed;
        try {
            parsed = OciJson.parse(text);
        } catch (OciJson.JsonException e) {
            throw new OciException(file + " is not JSON: " + e.getMessage());
        }
        return from(parsed, bundle);
    }

    /** The mapping of a parsed config.json, with relative paths resolved against {@code bundle}. */
    static OciSpec from(Object config, Path bundle) {
        Map<String, Object> c = object(config, "config.json");
        Map<String, Object> process = object(c.get("process"), "process");
        if (process == null) {
            throw new OciException("config.json has no process: nothing to run");
        }
        List<String> args = strings(process.get("args"), "process.args");
        if (args.isEmpty() || args.get(0).isEmpty()) {
            throw new OciException("process.args is empty: nothing to run");
        }
        Map<String, String> env = new LinkedHashMap<>();
        for (String e : strings(process.get("env"), "process.env")) {
            int eq = e.indexOf('=');
            if (eq <= 0) {
                throw new OciException("process.env entry '" + e + "' is not NAME=VALUE");
            }
            env.put(e.substring(0, eq), e.substring(eq + 1));
        }
        String cwd = process.get("cwd") instanceof String s && !s.isEmpty() ? s : "/";
        if (!cwd.startsWith("/")) {
            throw new OciException("process.cwd '" + cwd + "' is not an absolute path");
        }
        GuestUser user = user(object(process.get("user"), "process.user"));
        boolean terminal = Boolean.TRUE.equals(process.get("terminal"));
        List<Rlimit> rlimits = rlimits(process.get("rlimits"));

        Map<String, Object> rootObj = object(c.get("root"), "root");
        if (rootObj == null || !(rootObj.get("path") instanceof String rootPath) || rootPath.isEmpty()) {
            throw new OciException("config.json has no root.path: a VM needs the container's root filesystem");
        }
        Path root = bundle.resolve(rootPath).normalize();
        boolean rootReadOnly = Boolean.TRUE.equals(rootObj.get("readonly"));

        List<String> notes = new ArrayList<>();
        List<Share> shares = new ArrayList<>();
        List<GuestMount> mounts = new ArrayList<>();
        Object ms = c.get("mounts");
        if (ms != null) {
            for (Object o : list(ms, "mounts")) {
                mount(object(o, "mounts entry"), bundle, shares, mounts, notes);
            }
        }
        String hostname = c.get("hostname") instanceof String h && !h.isEmpty() ? h : null;

        if (c.get("hooks") instanceof Map<?, ?> hooks && hooks.values().stream().anyMatch(v -> v instanceof List<?> l && !l.isEmpty())) {
            throw new OciException("config.json has hooks: krun runs none (a hook expects the container's processes on the host)");
        }
        Map<String, String> annotations = new LinkedHashMap<>();
        Map<String, Object> ann = object(c.get("annotations"), "annotations");
        if (ann != null) {
            ann.forEach((k, v) -> annotations.put(k, String.valueOf(v)));
        }
        Path netns = null;
        boolean newNetns = false;
        String cgroupsPath = null;
        Long memoryLimit = null;
        Map<String, Object> linux = object(c.get("linux"), "linux");
        if (linux != null) {
            Object nss = linux.get("namespaces");
            if (nss != null) {
                for (Object o : list(nss, "linux.namespaces")) {
                    Map<String, Object> ns = object(o, "linux.namespaces entry");
                    String type = ns.get("type") instanceof String t ? t : "";
                    Object path = ns.get("path");
                    if (type.equals("user")) {
                        throw new OciException("config.json asks for a user namespace: krun cannot map ids (run the engine as root, without --userns)");
                    }
                    if (type.equals("network")) {
                        if (path instanceof String p && !p.isEmpty()) {
                            netns = Path.of(p);
                        } else {
                            newNetns = true;
                        }
                    }
                }
            }
            if (linux.get("cgroupsPath") instanceof String cg && !cg.isEmpty()) {
                cgroupsPath = cg;
            }
            Map<String, Object> resources = object(linux.get("resources"), "linux.resources");
            Map<String, Object> memory = resources == null ? null : object(resources.get("memory"), "linux.resources.memory");
            if (memory != null && memory.get("limit") instanceof Long l && l > 0) {
                memoryLimit = l;
            }
        }
        int cpus = annotations.containsKey(CPUS) ? number(annotations.get(CPUS), CPUS, 1, VmConfig.MAX_CPUS) : DEFAULT_CPUS;
        int memoryMib;
        if (annotations.containsKey(RAM_MIB)) {
            memoryMib = number(annotations.get(RAM_MIB), RAM_MIB, MIN_MEMORY_MIB, VmConfig.MAX_MEMORY_MIB);
        } else if (memoryLimit != null) {
            memoryMib = (int) Math.max(MIN_MEMORY_MIB, Math.min(VmConfig.MAX_MEMORY_MIB, memoryLimit >> 20));
        } else {
            memoryMib = DEFAULT_MEMORY_MIB;
        }
        return new OciSpec(List.copyOf(args), env, cwd, user, terminal, rlimits, root, rootReadOnly, List.copyOf(shares),
                List.copyOf(mounts), hostname, cpus, memoryMib, netns, newNetns && netns == null, cgroupsPath, annotations, List.copyOf(notes));
    }

    /**
     * Everything of the VM but its kernel and console (the caller's): root, shares and mounts, the command and
     * its environment, user, rlimits, host name and size. Networking is left to the caller (TSI by default).
     */
    VmConfig.Builder apply(VmConfig.Builder b) {
        b.cpus(cpus).memoryMib(memoryMib).command(args).env(env).workdir(cwd);
        b.root(root);
        if (rootReadOnly) {
            // The root share offered read-only, mounted read-only: the guest cannot write its root at all.
            b.device(new FsShareSpec(FsShareSpec.ROOT_TAG, root, true));
            b.rootMount(new GuestMount(FsShareSpec.ROOT_TAG, "/", "virtiofs", "ro"));
        }
        for (int i = 0; i < shares.size(); i++) {
            Share s = shares.get(i);
            String tag = "krun-oci" + i;
            b.device(new FsShareSpec(tag, s.host(), s.readOnly()));
            b.mount(new GuestMount(tag, s.guest(), "virtiofs", s.readOnly() ? "ro" : ""));
        }
        mounts.forEach(b::mount);
        if (user != null) {
            b.user(user);
        }
        rlimits.forEach(b::rlimit);
        if (hostname != null) {
            b.hostname(hostname);
        }
        return b;
    }

    private static void mount(Map<String, Object> m, Path bundle, List<Share> shares, List<GuestMount> mounts,
            List<String> notes) {
        if (!(m.get("destination") instanceof String dest) || !dest.startsWith("/")) {
            throw new OciException("a mount's destination must be an absolute path, not " + m.get("destination"));
        }
        String target = Path.of(dest).normalize().toString();
        String type = m.get("type") instanceof String t ? t : "";
        String source = m.get("source") instanceof String s ? s : "";
        List<String> options = m.get("options") == null ? List.of() : strings(m.get("options"), "options of mount " + dest);
        boolean bind = type.equals("bind") || type.equals("rbind") || options.contains("bind") || options.contains("rbind");
        boolean ro = options.contains("ro");
        if (GUEST_OWN.contains(target)) {
            return; // made by the guest init, as a container runtime makes them
        }
        if (target.equals("/")) {
            throw new OciException("a mount at / (" + source + ") would hide the container's root: give it as root.path");
        }
        if (bind) {
            Path host = bundle.resolve(source).normalize();
            if (Files.isDirectory(host)) {
                shares.add(new Share(host, target, ro));
            } else if (ENGINE_FILES.contains(target)) {
                return; // the guest has its own: TSI's resolver and host names, init's host name
            } else if (Files.exists(host)) {
                notes.add("bind mount of file " + host + " on " + target + " is left out: krun shares directories only");
            } else {
                throw new OciException("bind mount source " + host + " (for " + target + ") does not exist");
            }
            return;
        }
        switch (type) {
            case "tmpfs" -> mounts.add(new GuestMount("tmpfs", target, "tmpfs", tmpfsOptions(options)));
            case "proc", "sysfs", "devpts", "mqueue", "cgroup", "cgroup2" ->
                notes.add(type + " mount on " + target + " is left out: the guest has its own at the usual place");
            default -> throw new OciException("mount type '" + type + "' on " + target + " is not supported by krun"
                    + " (bind mounts of directories and tmpfs are)");
        }
    }

    /** The options mount(2) takes as data for tmpfs (size=, mode=, ...), with ro first when asked. */
    private static String tmpfsOptions(List<String> options) {
        List<String> data = new ArrayList<>();
        boolean ro = false;
        for (String o : options) {
            if (o.equals("ro")) {
                ro = true;
            } else if (o.startsWith("size=") || o.startsWith("mode=") || o.startsWith("nr_inodes=")
                    || o.startsWith("uid=") || o.startsWith("gid=")) {
                data.add(o);
            }
            // flags (nosuid, nodev, noexec, rw, private, ...) are not data: the init mounts with its defaults
        }
        String d = String.join(",", data);
        return ro ? (d.isEmpty() ? "ro" : "ro," + d) : d;
    }

    static GuestUser user(Map<String, Object> u) {
        if (u == null) {
            return null;
        }
        if (u.get("username") instanceof String name && !name.isEmpty()) {
            throw new OciException("process.user.username (" + name + ") is for Windows: give uid and gid");
        }
        long uid = id(u.get("uid"), "process.user.uid");
        long gid = id(u.get("gid"), "process.user.gid");
        List<Long> groups = new ArrayList<>();
        Object extra = u.get("additionalGids");
        if (extra != null) {
            for (Object g : list(extra, "process.user.additionalGids")) {
                groups.add(id(g, "process.user.additionalGids entry"));
            }
        }
        try {
            return new GuestUser(uid, gid, groups);
        } catch (RuntimeException e) {
            throw new OciException(e.getMessage());
        }
    }

    private static long id(Object o, String what) {
        if (o == null) {
            return 0;
        }
        if (!(o instanceof Long l)) {
            throw new OciException(what + " must be a number, not " + o);
        }
        return l;
    }

    private static List<Rlimit> rlimits(Object o) {
        List<Rlimit> out = new ArrayList<>();
        if (o == null) {
            return out;
        }
        for (Object e : list(o, "process.rlimits")) {
            Map<String, Object> r = object(e, "process.rlimits entry");
            String type = r.get("type") instanceof String t ? t : "";
            if (!type.startsWith("RLIMIT_")) {
                throw new OciException("rlimit type '" + type + "' is not RLIMIT_NAME");
            }
            String name = type.substring("RLIMIT_".length()).toUpperCase(Locale.ROOT);
            try {
                out.add(new Rlimit(name, limit(r.get("soft"), type), limit(r.get("hard"), type)));
            } catch (IllegalArgumentException ex) {
                throw new OciException(ex.getMessage());
            }
        }
        return out;
    }

    /** A limit: RLIM_INFINITY (2^64 - 1, beyond a long) and anything past Long.MAX_VALUE are unlimited (-1). */
    private static long limit(Object o, String type) {
        if (o instanceof Long l) {
            return l < 0 ? -1 : l;
        }
        if (o instanceof Double d && d >= 9.2e18) {
            return -1;
        }
        throw new OciException(type + ": soft and hard must be numbers");
    }

    private static int number(String text, String name, int min, int max) {
        try {
            int n = Integer.parseInt(text.trim());
            if (n >= min && n <= max) {
                return n;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new OciException("annotation " + name + "=" + text + " must be a number from " + min + " to " + max);
    }

    @SuppressWarnings("unchecked")
    static Map<String, Object> object(Object o, String what) {
        if (o == null) {
            return null;
        }
        if (!(o instanceof Map<?, ?>)) {
            throw new OciException(what + " must be a JSON object");
        }
        return (Map<String, Object>) o;
    }

    private static List<?> list(Object o, String what) {
        if (!(o instanceof List<?> l)) {
            throw new OciException(what + " must be a JSON array");
        }
        return l;
    }

    static List<String> strings(Object o, String what) {
        if (o == null) {
            return List.of();
        }
        List<String> out = new ArrayList<>();
        for (Object e : list(o, what)) {
            if (!(e instanceof String s)) {
                throw new OciException(what + " must hold strings only");
            }
            out.add(s);
        }
        return out;
    }
}
