package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;

/** The host's bounds on guest memory, read from a made-up /proc and /sys. */
class HostMemoryTest {

    @TempDir
    Path dir;

    /**
     * A host tree with {@code ramMib} of memory and {@code swapMib} of swap, the overcommit policy, a soft
     * RLIMIT_AS ({@code unlimited} or bytes, with 1 GiB mapped already) and /proc/self/cgroup's text.
     */
    static Path host(Path root, long ramMib, long swapMib, String overcommit, String addressSpace, String cgroup)
            throws IOException {
        write(root.resolve("proc/meminfo"), "MemTotal:       " + ramMib * 1024 + " kB\nMemFree:         1000 kB\n"
                + "SwapTotal:       " + swapMib * 1024 + " kB\nCommitLimit:     " + 3072 * 1024 + " kB\n"
                + "Committed_AS:    " + 1024 * 1024 + " kB\n");
        write(root.resolve("proc/sys/vm/overcommit_memory"), overcommit + "\n");
        write(root.resolve("proc/self/limits"), "Limit                     Soft Limit           Hard Limit           Units     \n"
                + "Max address space         " + addressSpace + "            unlimited            bytes     \n");
        write(root.resolve("proc/self/status"), "Name:\tjava\nVmPeak:\t 1048576 kB\nVmSize:\t 1048576 kB\n");
        write(root.resolve("proc/self/cgroup"), cgroup);
        return root;
    }

    private static void write(Path file, String text) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, text);
    }

    private static String refusal(HostMemory m, long mib, boolean overcommit) {
        return assertThrows(VmConfigException.class, () -> m.check(mib, overcommit)).getMessage();
    }

    @Test
    void memoryAndSwapBoundAVmUnlessItMayOvercommit() throws IOException {
        HostMemory m = new HostMemory(host(dir, 23 * 1024, 1024, "0", "unlimited", "0::/\n"));
        m.check(24 * 1024, false);
        assertEquals("30000 MiB of guest memory is more than this host can give: at most 24576 MiB (its memory and swap); "
                + "allow memory overcommit to start it anyway", refusal(m, 30000, false));
        m.check(1 << 20, true);
    }

    @Test
    void theCgroupsMemoryLimitBoundsAVmThroughItsAncestorsToo() throws IOException {
        Path root = host(dir, 16384, 0, "0", "unlimited", "0::/user.slice/krun.scope\n");
        write(root.resolve("sys/fs/cgroup/user.slice/memory.max"), 2048L * 1024 * 1024 + "\n");
        write(root.resolve("sys/fs/cgroup/user.slice/krun.scope/memory.max"), "max\n");
        HostMemory m = new HostMemory(root);
        m.check(2048, false);
        String e = refusal(m, 2049, false);
        assertTrue(e.contains("at most 2048 MiB (the memory limit of krun's cgroup)"), e);
        m.check(4096, true);
    }

    @Test
    void aVersionOneMemoryCgroupCountsAndItsNoLimitValueDoesNot() throws IOException {
        Path root = host(dir, 16384, 0, "0", "unlimited", "4:memory:/process_api/abc\n0::/\n");
        write(root.resolve("sys/fs/cgroup/memory/memory.limit_in_bytes"), "9223372036854771712\n");
        write(root.resolve("sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes"), 1024L * 1024 * 1024 + "\n");
        String e = refusal(new HostMemory(root), 1025, false);
        assertTrue(e.contains("at most 1024 MiB (the memory limit of krun's cgroup)"), e);

        Path unlimited = host(dir.resolve("u"), 16384, 0, "0", "unlimited", "4:memory:/\n");
        write(unlimited.resolve("sys/fs/cgroup/memory/memory.limit_in_bytes"), "9223372036854771712\n");
        new HostMemory(unlimited).check(16384, false);
    }

    @Test
    void strictOvercommitAndTheAddressSpaceLimitHoldEvenForAnOvercommittingVm() throws IOException {
        // CommitLimit 3 GiB with 1 GiB committed: 2 GiB left
        HostMemory strict = new HostMemory(host(dir, 16384, 0, "2", "unlimited", "0::/\n"));
        strict.check(2048, false);
        assertEquals("2049 MiB of guest memory is more than this host can give: at most 2048 MiB (left under the commit "
                + "limit of vm.overcommit_memory=2)", refusal(strict, 2049, true));

        // RLIMIT_AS 5 GiB with 1 GiB mapped: 4 GiB left
        HostMemory limited = new HostMemory(host(dir.resolve("as"), 16384, 0, "0", Long.toString(5L << 30), "0::/\n"));
        limited.check(4096, true);
        String e = refusal(limited, 4097, true);
        assertTrue(e.contains("at most 4096 MiB (left under krun's address-space limit, ulimit -v)"), e);
    }

    @Test
    void aHostThatSaysNothingBoundsNothing() {
        HostMemory m = new HostMemory(dir.resolve("empty"));
        assertEquals(List.of(), m.limits());
        m.check(1 << 20, false);
    }

    @Test
    void thisHostBoundsAVmByItsMemoryAtLeast() {
        List<HostMemory.Limit> limits = HostMemory.system().limits();
        assertTrue(limits.stream().anyMatch(l -> l.what().startsWith("its memory")), limits.toString());
        assertThrows(VmConfigException.class, () -> HostMemory.system().check(1 << 20, false));
    }
}
