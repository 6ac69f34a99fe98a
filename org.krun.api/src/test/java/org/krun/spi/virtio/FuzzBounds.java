package org.krun.spi.virtio;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.management.BufferPoolMXBean;
import java.lang.management.ManagementFactory;
import java.lang.management.MemoryMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/**
 * What a fuzz target asserts about the host around every input, besides its own checks: a hostile guest
 * may make a device refuse, reset or answer with errors, but never make the host pay without bound. Per
 * input: bytes allocated on the Java heap (the JVM's own per-thread allocation counters, so a buffer sized
 * by the guest shows even when it is garbage a moment later), CPU time and wall time. Across inputs: heap
 * and direct (native segment) memory still in use after a full GC, open file descriptors
 * ({@code /proc/self/fd}) and live threads, each against the level measured after a warm-up. A limit
 * exceeded is an {@link AssertionError}, which Jazzer reports as a finding.
 *
 * <p>Use one instance per fuzz target (a static field: Jazzer may run each input on a fresh test instance)
 * and pass every input through {@link #run}. The first call first runs the warm-up inputs unmeasured, so
 * class loading and the first JIT compilations are not charged to an input; an input that exceeds a cost
 * bound (its own, or a target's finer {@link LimitExceeded} check) runs again, up to three times, and only
 * a bound exceeded every time is a finding, since one-time work does not repeat and a guest-sized cost
 * does. Not thread-safe: Jazzer calls a target from one thread.
 */
public final class FuzzBounds {

    /** The body of a fuzz target: one input. */
    @FunctionalInterface
    public interface Target {
        void accept(byte[] input) throws Exception;
    }

    /**
     * The limits of one target.
     *
     * @param allocatedPerInput heap bytes one input may allocate (all threads with {@code allThreads})
     * @param cpuPerInput CPU time of the calling thread per input (not checked with {@code allThreads})
     * @param wallPerInput wall time per input: a hang guard, generous because the host may be busy
     * @param retainedHeap heap still in use after a full GC, above the level after warm-up
     * @param retainedDirect direct memory (native segments, direct buffers) still reserved, above that level
     * @param extraFds open descriptors above that level (class loading opens jars lazily: a small slack)
     * @param extraThreads live threads above that level
     * @param allThreads the target's work runs on other threads too (an event loop): allocation is counted
     *        over every thread and CPU time is not judged, only wall time
     */
    public record Limits(long allocatedPerInput, Duration cpuPerInput, Duration wallPerInput, long retainedHeap,
            long retainedDirect, int extraFds, int extraThreads, boolean allThreads) {

        /** 16 MiB and 250 ms of CPU per input, 64 MiB retained heap, 16 MiB direct, 8 fds, 2 threads. */
        public static Limits defaults() {
            return new Limits(16L << 20, Duration.ofMillis(250), Duration.ofSeconds(10), 64L << 20, 16L << 20, 8, 2,
                    false);
        }

        public Limits withAllocatedPerInput(long bytes) {
            return new Limits(bytes, cpuPerInput, wallPerInput, retainedHeap, retainedDirect, extraFds, extraThreads,
                    allThreads);
        }

        public Limits withCpuPerInput(Duration cpu) {
            return new Limits(allocatedPerInput, cpu, wallPerInput, retainedHeap, retainedDirect, extraFds,
                    extraThreads, allThreads);
        }

        public Limits withWallPerInput(Duration wall) {
            return new Limits(allocatedPerInput, cpuPerInput, wall, retainedHeap, retainedDirect, extraFds,
                    extraThreads, allThreads);
        }

        public Limits withAllThreads() {
            return new Limits(allocatedPerInput, cpuPerInput, wallPerInput, retainedHeap, retainedDirect, extraFds,
                    extraThreads, true);
        }
    }

    /** Heap and direct memory are checked at these input counts (powers of 2) and then at this interval. */
    private static final int EARLY_HEAP_CHECKS_UP_TO = 64;
    private static final long HEAP_CHECK_INTERVAL_NANOS = Duration.ofSeconds(10).toNanos();
    /** Runs of one input before a cost bound exceeded counts as a finding. */
    private static final int MAX_ATTEMPTS = 3;
    /** Descriptors are counted every this many inputs (listing /proc/self/fd costs more than an input). */
    private static final int FD_CHECK_EVERY = 64;

    private static final com.sun.management.ThreadMXBean THREADS =
            (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
    private static final MemoryMXBean MEMORY = ManagementFactory.getMemoryMXBean();
    private static final BufferPoolMXBean DIRECT = ManagementFactory.getPlatformMXBeans(BufferPoolMXBean.class)
            .stream().filter(b -> b.getName().equals("direct")).findFirst().orElseThrow();

    private final String name;
    private final Limits limits;
    private final Target target;
    private final List<byte[]> warmUp;

    private boolean warm;
    private long inputs;
    private long baseHeap;
    private long baseDirect;
    private int baseFds;
    private int baseThreads;
    private long lastHeapCheck;
    private long maxAllocated;
    private long maxCpuNanos;
    private long maxWallNanos;

    /**
     * @param warmUp inputs run (three times each, unmeasured) before the first measured one, besides a few
     *        pseudo-random ones; they should reach the target's main paths
     */
    public FuzzBounds(String name, Limits limits, Target target, byte[]... warmUp) {
        this.name = name;
        this.limits = limits;
        this.target = target;
        this.warmUp = new ArrayList<>(List.of(warmUp));
        Random random = new Random(42);
        for (int i = 0; i < 16; i++) {
            byte[] b = new byte[random.nextInt(1024)];
            random.nextBytes(b);
            this.warmUp.add(b);
        }
        this.warmUp.add(new byte[0]);
    }

    /** Runs one input and checks every limit. */
    public void run(byte[] input) throws Exception {
        if (!warm) {
            // A warm-up input that fails is a finding too: it fails again with the next input, never half-measured.
            for (int round = 0; round < 3; round++) {
                for (byte[] w : warmUp) {
                    try {
                        target.accept(w);
                    } catch (LimitExceeded firstTime) {
                        // a target's own cost bound, exceeded by class loading and first compilations
                    }
                }
            }
            baseThreads = THREADS.getThreadCount();
            baseFds = openFds();
            measureRetained(true);
            warm = true;
        }
        inputs++;
        // A limit exceeded once may be the JVM's one-time work (loading and instrumenting a class on a path
        // the warm-up missed, a first compilation): the same input runs again, up to 3 times, and only a
        // limit exceeded every time is a finding. Inputs are deterministic; one-time work does not repeat.
        for (int attempt = 1; ; attempt++) {
            try {
                measured(input);
                break;
            } catch (LimitExceeded e) {
                if (attempt == MAX_ATTEMPTS) {
                    throw e;
                }
            }
        }
        int threads = THREADS.getThreadCount();
        if (threads > baseThreads + limits.extraThreads()) {
            fail(threads + " live threads, " + baseThreads + " after warm-up (limit +" + limits.extraThreads() + ")");
        }
        if (inputs % FD_CHECK_EVERY == 1) {
            int fds = openFds();
            if (fds > baseFds + limits.extraFds()) {
                fail(fds + " open descriptors, " + baseFds + " after warm-up (limit +" + limits.extraFds() + ")");
            }
        }
        long now = System.nanoTime();
        if ((inputs <= EARLY_HEAP_CHECKS_UP_TO && Long.bitCount(inputs) == 1) || now - lastHeapCheck > HEAP_CHECK_INTERVAL_NANOS) {
            measureRetained(false);
        }
    }

    /** One run of the input with the per-input limits. */
    private void measured(byte[] input) throws Exception {
        long threadId = Thread.currentThread().threadId();
        long allocatedBefore = allocated(threadId);
        long cpuBefore = limits.allThreads() ? 0 : THREADS.getCurrentThreadCpuTime();
        long wallBefore = System.nanoTime();

        target.accept(input);

        long wall = System.nanoTime() - wallBefore;
        long cpu = limits.allThreads() ? 0 : THREADS.getCurrentThreadCpuTime() - cpuBefore;
        long allocated = allocated(threadId) - allocatedBefore;
        if (allocated > limits.allocatedPerInput()) {
            throw new LimitExceeded(name + ": allocated " + mib(allocated) + " on the heap for one input (limit "
                    + mib(limits.allocatedPerInput()) + ")");
        }
        if (cpu > limits.cpuPerInput().toNanos()) {
            throw new LimitExceeded(name + ": used " + cpu / 1_000_000 + " ms of CPU for one input (limit "
                    + limits.cpuPerInput().toMillis() + " ms)");
        }
        if (wall > limits.wallPerInput().toNanos()) {
            throw new LimitExceeded(name + ": took " + wall / 1_000_000 + " ms for one input (limit "
                    + limits.wallPerInput().toMillis() + " ms)");
        }
        maxAllocated = Math.max(maxAllocated, allocated);
        maxCpuNanos = Math.max(maxCpuNanos, cpu);
        maxWallNanos = Math.max(maxWallNanos, wall);
    }

    /**
     * A cost bound exceeded: thrown by {@link #run} and by a target's own finer checks (the allocation of
     * one request, say), which {@link #run} then confirms by running the input again.
     */
    public static final class LimitExceeded extends AssertionError {
        private static final long serialVersionUID = 1L;

        public LimitExceeded(String message) {
            super(message);
        }
    }

    /** The largest allocation, CPU and wall time of one input so far, for a target's report. */
    public String peaks() {
        return name + ": " + inputs + " inputs; per input at most " + mib(maxAllocated) + " allocated, "
                + maxCpuNanos / 1_000_000 + " ms CPU, " + maxWallNanos / 1_000_000 + " ms wall";
    }

    /** Heap bytes the calling thread has allocated so far: for bounds a target checks within an input. */
    public static long threadAllocated() {
        return THREADS.getCurrentThreadAllocatedBytes();
    }

    private long allocated(long threadId) {
        return limits.allThreads() ? THREADS.getTotalThreadAllocatedBytes() : THREADS.getThreadAllocatedBytes(threadId);
    }

    private void measureRetained(boolean baseline) {
        System.gc();
        long heap = MEMORY.getHeapMemoryUsage().getUsed();
        long direct = DIRECT.getMemoryUsed();
        lastHeapCheck = System.nanoTime();
        if (baseline) {
            baseHeap = heap;
            baseDirect = direct;
            return;
        }
        if (heap > baseHeap + limits.retainedHeap()) {
            fail(mib(heap) + " of heap in use after GC, " + mib(baseHeap) + " after warm-up (limit +"
                    + mib(limits.retainedHeap()) + ")");
        }
        if (direct > baseDirect + limits.retainedDirect()) {
            fail(mib(direct) + " of direct memory reserved, " + mib(baseDirect) + " after warm-up (limit +"
                    + mib(limits.retainedDirect()) + ")");
        }
    }

    private void fail(String what) {
        throw new AssertionError(name + ": " + what);
    }

    private static String mib(long bytes) {
        return bytes < 1 << 20 ? (bytes >> 10) + " KiB" : String.format("%.1f MiB", bytes / 1048576.0);
    }

    private static final List<java.util.logging.Logger> QUIETED = new ArrayList<>();

    /**
     * Turns off logging under {@code prefix} (logback where it is the backend, java.util.logging otherwise):
     * each input makes a fresh device, whose rate limit for guest errors starts afresh, so a fuzz run would
     * log on nearly every input.
     */
    public static synchronized void quietLogs(String prefix) {
        java.util.logging.Logger jul = java.util.logging.Logger.getLogger(prefix);
        jul.setLevel(java.util.logging.Level.OFF);
        QUIETED.add(jul); // java.util.logging keeps loggers weakly: the level would go with the logger
        try {
            Class<?> level = Class.forName("ch.qos.logback.classic.Level");
            Object logger = Class.forName("org.slf4j.LoggerFactory").getMethod("getLogger", String.class)
                    .invoke(null, prefix);
            logger.getClass().getMethod("setLevel", level).invoke(logger, level.getField("OFF").get(null));
        } catch (ReflectiveOperationException | LinkageError e) {
            // no logback here: java.util.logging it is
        }
    }

    private static final Path FD_DIR = Path.of("/proc/self/fd");
    /**
     * Whether {@code stat(/proc/self/fd)} gives the number of open descriptors as its size (Linux 6.2 and
     * later; older kernels say 0): one system call instead of a listing of every descriptor, which cost a
     * fuzz target that counts them around each request more than half its time (JFR: readdir). Trusted only
     * when it agrees with a listing made right after it.
     */
    private static final boolean FD_COUNT_BY_SIZE = fdCountBySizeAgrees();

    private static boolean fdCountBySizeAgrees() {
        for (int attempt = 0; attempt < 3; attempt++) { // another thread may open or close one in between
            try {
                long bySize = fdDirSize();
                if (bySize > 0 && bySize == listFds()) {
                    return true;
                }
            } catch (IOException | UncheckedIOException e) {
                return false;
            }
        }
        return false;
    }

    private static long fdDirSize() throws IOException {
        return Files.readAttributes(FD_DIR, java.nio.file.attribute.BasicFileAttributes.class).size();
    }

    private static int listFds() {
        try (Stream<Path> s = Files.list(FD_DIR)) {
            return (int) s.count() - 1; // the directory stream's own descriptor
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Open file descriptors of this process (cheap: one stat where the kernel counts them, see above). */
    public static int openFds() {
        if (FD_COUNT_BY_SIZE) {
            try {
                return (int) fdDirSize();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
        return listFds();
    }
}
