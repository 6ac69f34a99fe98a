package org.krun.vmm.internal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.OptionalLong;

import org.krun.api.VmConfigException;

/**
 * How much guest memory this host can give a VM, from what Linux says of it: physical memory and swap
 * ({@code /proc/meminfo}), the memory limit of the process's cgroup ({@code memory.max}, v1's
 * {@code memory.limit_in_bytes}), the strict overcommit policy's commit limit ({@code vm.overcommit_memory=2})
 * and the process's address-space limit ({@code RLIMIT_AS}).
 *
 * <p>Guest RAM is mapped with {@code MAP_NORESERVE} and touched only as the guest uses it, so a VM larger than
 * memory and swap starts, and fails much later: the host kills the JVM (every VM in it) when the guest's use
 * grows past what there is. Such sizes are refused unless the configuration allows overcommit. The commit limit
 * and {@code RLIMIT_AS} refuse the mapping itself: no configuration gets past them.
 */
final class HostMemory {
    private static final long MIB = 1024 * 1024;
    /** cgroup v1 writes "no limit" as the largest page count (9223372036854771712 bytes). */
    private static final long NO_LIMIT = 1L << 62;

    /**
     * One bound on guest memory.
     *
     * @param bytes how much guest memory fits under it
     * @param what the bound, in words
     * @param hard whether even an overcommitting VM cannot pass it (the mapping would fail)
     */
    record Limit(long bytes, String what, boolean hard) {
    }

    private final Path root;

    /** Reads the files of the host whose file system root is {@code root} ({@code /}, or a test's tree). */
    HostMemory(Path root) {
        this.root = root;
    }

    static HostMemory system() {
        return new HostMemory(Path.of("/"));
    }

    /**
     * Refuses {@code mib} of guest memory beyond what the host can give.
     *
     * @throws VmConfigException naming the limit and how much it leaves
     */
    void check(long mib, boolean overcommit) {
        long bytes = mib * MIB;
        for (Limit l : limits()) {
            if (bytes > l.bytes() && (l.hard() || !overcommit)) {
                throw new VmConfigException(mib + " MiB of guest memory is more than this host can give: at most "
                        + l.bytes() / MIB + " MiB (" + l.what() + ")"
                        + (l.hard() ? "" : "; allow memory overcommit to start it anyway"));
            }
        }
    }

    /** Every bound this host puts on one VM's memory, tightest first. */
    List<Limit> limits() {
        List<Limit> limits = new ArrayList<>();
        OptionalLong total = meminfo("MemTotal");
        if (total.isPresent()) {
            long swap = meminfo("SwapTotal").orElse(0);
            limits.add(new Limit(total.getAsLong() + swap, swap > 0 ? "its memory and swap" : "its memory, without swap", false));
        }
        cgroupLimit().ifPresent(l -> limits.add(new Limit(l, "the memory limit of krun's cgroup", false)));
        if (read("proc/sys/vm/overcommit_memory").map(String::strip).orElse("").equals("2")) {
            OptionalLong limit = meminfo("CommitLimit");
            OptionalLong committed = meminfo("Committed_AS");
            if (limit.isPresent() && committed.isPresent()) {
                limits.add(new Limit(Math.max(0, limit.getAsLong() - committed.getAsLong()),
                        "left under the commit limit of vm.overcommit_memory=2", true));
            }
        }
        addressSpaceLimit().ifPresent(l -> limits.add(new Limit(l, "left under krun's address-space limit, ulimit -v", true)));
        limits.sort(java.util.Comparator.comparingLong(Limit::bytes));
        return limits;
    }

    /** A field of /proc/meminfo, in bytes. */
    private OptionalLong meminfo(String field) {
        for (String line : lines("proc/meminfo")) {
            if (line.startsWith(field + ":")) {
                String[] f = line.substring(field.length() + 1).trim().split("\\s+");
                OptionalLong v = number(f[0]);
                return v.isPresent() && f.length > 1 && f[1].equals("kB") ? OptionalLong.of(v.getAsLong() * 1024) : v;
            }
        }
        return OptionalLong.empty();
    }

    /** RLIMIT_AS (soft) less what the process has mapped already. */
    private OptionalLong addressSpaceLimit() {
        for (String line : lines("proc/self/limits")) {
            if (line.startsWith("Max address space")) {
                OptionalLong soft = number(line.substring("Max address space".length()).trim().split("\\s+")[0]);
                if (soft.isEmpty()) {
                    return OptionalLong.empty(); // unlimited
                }
                long mapped = 0;
                for (String s : lines("proc/self/status")) {
                    if (s.startsWith("VmSize:")) {
                        mapped = number(s.substring(7).trim().split("\\s+")[0]).orElse(0) * 1024;
                    }
                }
                return OptionalLong.of(Math.max(0, soft.getAsLong() - mapped));
            }
        }
        return OptionalLong.empty();
    }

    /**
     * The tightest memory limit on the process's cgroup and its ancestors: v2's memory.max or v1's
     * memory.limit_in_bytes, for the cgroup /proc/self/cgroup names.
     */
    private OptionalLong cgroupLimit() {
        long min = Long.MAX_VALUE;
        for (String line : lines("proc/self/cgroup")) {
            String[] f = line.split(":", 3);
            if (f.length < 3) {
                continue;
            }
            List<Hierarchy> places = new ArrayList<>();
            if (f[0].equals("0") && f[1].isEmpty()) {
                places.add(new Hierarchy(root.resolve("sys/fs/cgroup"), "memory.max"));
                places.add(new Hierarchy(root.resolve("sys/fs/cgroup/unified"), "memory.max"));
            } else if (List.of(f[1].split(",")).contains("memory")) {
                places.add(new Hierarchy(root.resolve("sys/fs/cgroup/memory"), "memory.limit_in_bytes"));
            }
            for (Hierarchy h : places) {
                // the cgroup and every ancestor that this mount shows
                for (Path dir = h.mount().resolve(f[2].replaceFirst("^/+", "")); dir != null && dir.startsWith(h.mount());
                        dir = dir.getParent()) {
                    OptionalLong v = read(root.relativize(dir.resolve(h.limitFile())).toString()).map(String::strip)
                            .map(HostMemory::number).orElse(OptionalLong.empty());
                    if (v.isPresent() && v.getAsLong() < NO_LIMIT) {
                        min = Math.min(min, v.getAsLong());
                    }
                }
            }
        }
        return min == Long.MAX_VALUE ? OptionalLong.empty() : OptionalLong.of(min);
    }

    /** A cgroup hierarchy's mount point and the file there that holds a cgroup's memory limit. */
    private record Hierarchy(Path mount, String limitFile) {
    }

    private static OptionalLong number(String s) {
        try {
            return OptionalLong.of(Long.parseLong(s));
        } catch (NumberFormatException e) {
            return OptionalLong.empty(); // "max", "unlimited"
        }
    }

    private List<String> lines(String relative) {
        return read(relative).map(t -> t.lines().toList()).orElse(List.of());
    }

    private Optional<String> read(String relative) {
        try {
            return Optional.of(Files.readString(root.resolve(relative)));
        } catch (IOException | RuntimeException e) {
            return Optional.empty();
        }
    }
}
