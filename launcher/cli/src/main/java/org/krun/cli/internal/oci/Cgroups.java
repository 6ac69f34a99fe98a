package org.krun.cli.internal.oci;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;

/**
 * Puts the VMM process into the container's cgroup ({@code linux.cgroupsPath}), in every hierarchy this
 * process is in (/proc/self/cgroup: the v1 controllers of a hybrid host and its v2 one), where the host lets it.
 * Only membership: krun writes no limits (the VM's size bounds the guest; the VMM's own use is counted where
 * joined). A path that cannot be joined is reported once, not fatal: the VM runs outside it.
 */
final class Cgroups {

    private Cgroups() {
    }

    /** Joins; returns the note to report when some hierarchy could not be joined. */
    static Optional<String> join(String cgroupsPath, long pid) {
        return join(cgroupsPath, pid, new ArrayList<>());
    }

    /** The same, adding the directories joined to {@code joined} (for {@link #remove} once the container is gone). */
    static Optional<String> join(String cgroupsPath, long pid, List<Path> joined) {
        if (cgroupsPath == null || cgroupsPath.isEmpty()) {
            return Optional.empty();
        }
        if (!cgroupsPath.startsWith("/") && cgroupsPath.contains(":")) {
            return Optional.of("cgroupsPath " + cgroupsPath + " is systemd's slice:prefix:name form, which krun does not"
                    + " join (use the cgroupfs manager); the VM runs outside it");
        }
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/self/cgroup"));
        } catch (IOException e) {
            return Optional.of("cgroups: cannot read /proc/self/cgroup: " + e.getMessage());
        }
        List<String> failed = new ArrayList<>();
        for (Path dir : directories(lines, Path.of("/sys/fs/cgroup"), cgroupsPath)) {
            try {
                Files.createDirectories(dir);
                inheritCpuset(dir);
                Files.writeString(dir.resolve("cgroup.procs"), Long.toString(pid));
                joined.add(dir);
            } catch (IOException | RuntimeException e) {
                failed.add(dir + " (" + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()) + ")");
            }
        }
        if (failed.isEmpty()) {
            return Optional.empty();
        }
        return Optional.of("cgroup " + cgroupsPath + " not joined in " + String.join(", ", failed)
                + "; the VM runs outside it there");
    }

    /** Removes cgroup directories whose processes are gone (best effort: one still in use stays). */
    static void remove(List<Path> dirs) {
        for (Path d : dirs) {
            try {
                Files.deleteIfExists(d);
            } catch (IOException e) {
                // busy, or removed by the engine already
            }
        }
    }

    /**
     * A new v1 cpuset cgroup has no CPUs and no memory nodes, and takes no process until it has (ENOSPC): each
     * empty level gets its parent's, from the top down, as runc and crun do.
     */
    private static void inheritCpuset(Path dir) throws IOException {
        if (!Files.isRegularFile(dir.resolve("cpuset.cpus"))) {
            return;
        }
        java.util.ArrayDeque<Path> levels = new java.util.ArrayDeque<>();
        for (Path d = dir; d != null && Files.isRegularFile(d.resolve("cpuset.cpus")); d = d.getParent()) {
            levels.push(d);
        }
        Path parent = levels.pop();
        while (!levels.isEmpty()) {
            Path d = levels.pop();
            for (String f : new String[] {"cpuset.cpus", "cpuset.mems"}) {
                if (Files.readString(d.resolve(f)).isBlank()) {
                    Files.writeString(d.resolve(f), Files.readString(parent.resolve(f)).strip());
                }
            }
            parent = d;
        }
    }

    /**
     * The cgroup directories of {@code path} in each hierarchy of a /proc/self/cgroup listing: v1 lines
     * ({@code N:cpu,cpuacct:/x}) under {@code mount/cpu,cpuacct} ({@code name=systemd} under {@code systemd}),
     * the v2 line ({@code 0::/x}) under {@code mount/unified} on a hybrid host or {@code mount} itself.
     * A path is relative to the hierarchy's root, as runc and crun take cgroupfs paths.
     */
    static List<Path> directories(List<String> procSelfCgroup, Path mount, String path) {
        String rel = path.startsWith("/") ? path.substring(1) : path;
        Set<Path> out = new LinkedHashSet<>();
        boolean v1 = procSelfCgroup.stream().anyMatch(l -> !l.startsWith("0::"));
        for (String line : procSelfCgroup) {
            String[] f = line.split(":", 3);
            if (f.length < 3) {
                continue;
            }
            String controllers = f[1];
            Path hierarchy;
            if (controllers.isEmpty()) {
                hierarchy = v1 ? mount.resolve("unified") : mount;
                if (v1 && !Files.isDirectory(hierarchy)) {
                    continue;
                }
            } else if (controllers.startsWith("name=")) {
                hierarchy = mount.resolve(controllers.substring(5));
            } else {
                hierarchy = mount.resolve(controllers);
            }
            out.add(rel.isEmpty() ? hierarchy : hierarchy.resolve(rel));
        }
        return new ArrayList<>(out);
    }
}
