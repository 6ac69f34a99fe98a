package org.krun.posix;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * A child process a device runs beside the VM (a network proxy such as passt), started with
 * {@code posix_spawnp(3)} so it can be handed descriptors of ours at numbers of its choosing, which
 * {@link ProcessBuilder} cannot do. The child gets default signal dispositions, an empty signal mask and
 * its own process group (a terminal's ^C reaches krun, which stops it); its standard input and output
 * are {@code /dev/null} unless mapped. {@link #close()} stops and reaps it.
 */
public final class PosixProcess implements AutoCloseable {

    public static final int SIGKILL = 9;
    public static final int SIGTERM = 15;

    /** spawn.h */
    private static final short POSIX_SPAWN_SETPGROUP = 0x02;
    private static final short POSIX_SPAWN_SETSIGDEF = 0x04;
    private static final short POSIX_SPAWN_SETSIGMASK = 0x08;
    private static final int WNOHANG = 1;
    /** glibc x86_64: posix_spawnattr_t is 336 bytes, posix_spawn_file_actions_t 80; room to spare. */
    private static final long OPAQUE_SIZE = 1024;
    /** glibc sigset_t. */
    private static final long SIGSET_SIZE = 128;

    private static final MethodHandle FA_INIT = Libc.downcallWithoutErrno("posix_spawn_file_actions_init",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FA_DESTROY = Libc.downcallWithoutErrno("posix_spawn_file_actions_destroy",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle FA_ADDDUP2 = Libc.downcallWithoutErrno("posix_spawn_file_actions_adddup2",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    private static final MethodHandle FA_ADDOPEN = Libc.downcallWithoutErrno("posix_spawn_file_actions_addopen",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT));
    /** glibc 2.34+; null where the C library lacks it (the child then keeps our descriptors without close-on-exec). */
    private static final MethodHandle FA_ADDCLOSEFROM = optional("posix_spawn_file_actions_addclosefrom_np",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle ATTR_INIT = Libc.downcallWithoutErrno("posix_spawnattr_init",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle ATTR_DESTROY = Libc.downcallWithoutErrno("posix_spawnattr_destroy",
            FunctionDescriptor.of(JAVA_INT, ADDRESS));
    private static final MethodHandle ATTR_SETFLAGS = Libc.downcallWithoutErrno("posix_spawnattr_setflags",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_SHORT));
    private static final MethodHandle ATTR_SETSIGMASK = Libc.downcallWithoutErrno("posix_spawnattr_setsigmask",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle ATTR_SETSIGDEFAULT = Libc.downcallWithoutErrno("posix_spawnattr_setsigdefault",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS));
    private static final MethodHandle ATTR_SETPGROUP = Libc.downcallWithoutErrno("posix_spawnattr_setpgroup",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT));
    /** Returns an error number, never sets errno. */
    private static final MethodHandle SPAWNP = Libc.downcallWithoutErrno("posix_spawnp",
            FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
    private static final MethodHandle WAITPID = Libc.downcall("waitpid", FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS, JAVA_INT));
    private static final MethodHandle KILL = Libc.downcall("kill", FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT));

    private static MethodHandle optional(String name, FunctionDescriptor function) {
        try {
            return Libc.downcallWithoutErrno(name, function);
        } catch (java.util.NoSuchElementException e) {
            return null;
        }
    }

    private final int pid;
    private final String name;
    /** The exit status once reaped (exit code, or 128 + signal); -1 while running. */
    private int status = -1;

    private PosixProcess(int pid, String name) {
        this.pid = pid;
        this.name = name;
    }

    /**
     * Starts {@code argv} ({@code argv[0]} searched in {@code PATH}) with this process's environment.
     *
     * @param fds the child's descriptors: child number to a descriptor of ours, which the child gets as a
     *        duplicate (ours stays ours); 0 and 1 default to {@code /dev/null}, 2 to our own standard error.
     *        Child numbers above 2 must run from 3 without gaps; every other descriptor is closed in the child
     * @throws PosixException naming the program when it cannot be started ({@code ENOENT}: not installed)
     */
    public static PosixProcess spawn(List<String> argv, Map<Integer, Integer> fds) {
        if (argv.isEmpty()) {
            throw new IllegalArgumentException("no program");
        }
        int highest = 2;
        while (fds.containsKey(highest + 1)) {
            highest++;
        }
        for (int target : fds.keySet()) {
            if (target < 0 || target > highest || fds.containsValue(target) && fds.get(target) != target) {
                throw new IllegalArgumentException("child descriptors " + fds.keySet() + " do not run from 3 without gaps, or overlap ours");
            }
        }
        int closeFrom = highest + 1;
        try (Arena a = Arena.ofConfined()) {
            MemorySegment actions = a.allocate(OPAQUE_SIZE, 16);
            MemorySegment attr = a.allocate(OPAQUE_SIZE, 16);
            check("posix_spawn_file_actions_init", (int) FA_INIT.invokeExact(actions));
            check("posix_spawnattr_init", (int) ATTR_INIT.invokeExact(attr));
            try {
                MemorySegment devNull = a.allocateFrom("/dev/null");
                for (int std = 0; std < 2; std++) {
                    if (!fds.containsKey(std)) {
                        check("posix_spawn_file_actions_addopen", (int) FA_ADDOPEN.invokeExact(actions, std, devNull,
                                std == 0 ? Posix.O_RDONLY : Posix.O_WRONLY, 0));
                    }
                }
                for (Map.Entry<Integer, Integer> e : fds.entrySet()) {
                    // dup2 to a number of its own clears close-on-exec (glibc 2.29+ also when the numbers match)
                    check("posix_spawn_file_actions_adddup2", (int) FA_ADDDUP2.invokeExact(actions, (int) e.getValue(), (int) e.getKey()));
                }
                if (FA_ADDCLOSEFROM != null) {
                    // The JVM holds descriptors without close-on-exec (its class path, pipes of its own): none is the child's.
                    check("posix_spawn_file_actions_addclosefrom_np", (int) FA_ADDCLOSEFROM.invokeExact(actions, closeFrom));
                }
                MemorySegment none = a.allocate(SIGSET_SIZE);
                MemorySegment all = a.allocate(SIGSET_SIZE);
                // every signal but SIGKILL (9) and SIGSTOP (19), which cannot be caught anyway
                all.set(JAVA_LONG, 0, ~0L & ~(1L << (SIGKILL - 1)) & ~(1L << (19 - 1)));
                check("posix_spawnattr_setsigmask", (int) ATTR_SETSIGMASK.invokeExact(attr, none));
                check("posix_spawnattr_setsigdefault", (int) ATTR_SETSIGDEFAULT.invokeExact(attr, all));
                check("posix_spawnattr_setpgroup", (int) ATTR_SETPGROUP.invokeExact(attr, 0));
                short flags = POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
                check("posix_spawnattr_setflags", (int) ATTR_SETFLAGS.invokeExact(attr, flags));

                MemorySegment argvC = cStrings(a, argv);
                MemorySegment envC = cStrings(a, System.getenv().entrySet().stream().map(e -> e.getKey() + "=" + e.getValue()).toList());
                MemorySegment pid = a.allocate(JAVA_INT);
                MemorySegment file = a.allocateFrom(argv.get(0));
                int r = (int) SPAWNP.invokeExact(pid, file, actions, attr, argvC, envC);
                if (r != 0) {
                    throw new PosixException("start " + argv.get(0), r);
                }
                return new PosixProcess(pid.get(JAVA_INT, 0), argv.get(0));
            } finally {
                int ignored = (int) FA_DESTROY.invokeExact(actions);
                ignored = (int) ATTR_DESTROY.invokeExact(attr);
            }
        } catch (Throwable t) {
            throw Libc.unchecked(t);
        }
    }

    private static void check(String operation, int error) {
        if (error != 0) {
            throw new PosixException(operation, error);
        }
    }

    private static MemorySegment cStrings(Arena a, List<String> strings) {
        MemorySegment array = a.allocate(ADDRESS, strings.size() + 1L);
        for (int i = 0; i < strings.size(); i++) {
            array.setAtIndex(ADDRESS, i, a.allocateFrom(strings.get(i)));
        }
        array.setAtIndex(ADDRESS, strings.size(), MemorySegment.NULL);
        return array;
    }

    public int pid() {
        return pid;
    }

    /** The exit status (its code, or 128 + the signal that ended it) once the child ended; reaps it. */
    public synchronized OptionalInt exitStatus() {
        if (status < 0) {
            reap(WNOHANG);
        }
        return status < 0 ? OptionalInt.empty() : OptionalInt.of(status);
    }

    public boolean isAlive() {
        return exitStatus().isEmpty();
    }

    /** Waits up to {@code timeout} for the child to end; its status, or empty while it still runs. */
    public OptionalInt waitFor(Duration timeout) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            OptionalInt s = exitStatus();
            if (s.isPresent() || System.nanoTime() - deadline >= 0) {
                return s;
            }
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return exitStatus();
            }
        }
    }

    /** Sends {@code signal} to the child, unless it was already reaped. */
    public synchronized void signal(int signal) {
        if (status < 0) {
            Libc.call(() -> (int) KILL.invokeExact(pid, signal));
        }
    }

    private void reap(int options) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment s = a.allocate(JAVA_INT);
            int r = Libc.call(() -> (int) WAITPID.invokeExact(pid, s, options));
            if (r == pid) {
                int w = s.get(JAVA_INT, 0);
                int sig = w & 0x7f;
                status = sig == 0 ? (w >> 8) & 0xff : 128 + sig;
            } else if (r == -Errno.ECHILD) {
                status = 255; // reaped by someone else: it is gone all the same
            }
        }
    }

    /** Stops the child: SIGTERM, up to {@code grace} to end, then SIGKILL; reaped when this returns. */
    public void stop(Duration grace) {
        if (!isAlive()) {
            return;
        }
        signal(SIGTERM);
        if (waitFor(grace).isPresent()) {
            return;
        }
        signal(SIGKILL);
        synchronized (this) {
            if (status < 0) {
                reap(0);
            }
        }
    }

    /** {@link #stop(Duration)} with a second's grace. Idempotent. */
    @Override
    public void close() {
        stop(Duration.ofSeconds(1));
    }

    @Override
    public String toString() {
        return name + " (pid " + pid + ")";
    }
}
