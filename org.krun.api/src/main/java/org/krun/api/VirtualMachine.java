package org.krun.api;

import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeoutException;

import org.osgi.annotation.versioning.ProviderType;

/**
 * The handle of one microVM. Thread-safe. A VM runs once: after it stops, all its host resources
 * (memory mappings, file descriptors, threads) are released, and {@link #exit()} holds the outcome.
 */
@ProviderType
public interface VirtualMachine extends AutoCloseable {

    /** The most bytes of recent console output {@link #consoleTail()} keeps. */
    int CONSOLE_TAIL_BYTES = 64 * 1024;

    /** A short identifier, unique within this JVM. */
    String id();

    VmConfig config();

    VmState state();

    /** When {@link #start()} was called, if it was. */
    Optional<Instant> startedAt();

    /**
     * Builds the VM (memory, vCPUs, devices, kernel) and starts its vCPUs. Returns once the guest runs.
     *
     * @throws KrunException if the host cannot provide what the VM needs; nothing is left allocated
     * @throws IllegalStateException if the VM was started before
     */
    void start();

    /** Completes when the VM has stopped and released everything. */
    CompletableFuture<VmExit> exit();

    /** Waits for the VM to stop. */
    VmExit waitFor() throws InterruptedException;

    /** Waits at most {@code timeout} for the VM to stop. */
    VmExit waitFor(Duration timeout) throws InterruptedException, TimeoutException;

    /**
     * Bytes written here reach the command's standard input (or the guest terminal). Writes block while
     * the guest does not read. Closing the stream delivers end-of-file. Writes after the VM stopped are
     * discarded.
     */
    OutputStream consoleInput();

    /**
     * The VM's most recent console output, at most {@link #CONSOLE_TAIL_BYTES} bytes: everything written to
     * the streams of its {@link ConsoleSpec} (the command's standard output and error, the console, and the
     * kernel log when it is on), interleaved in the order it was written, including the time before
     * {@link #start()} returned. It stays available after the VM stopped. Meant for management tools (a
     * shell's {@code console} command, a VM started from configuration whose output nobody reads); the
     * complete output goes to the configured streams.
     *
     * <p>The default implementation keeps nothing and returns an empty array.
     *
     * @return a copy of the retained bytes, oldest first
     */
    default byte[] consoleTail() {
        return new byte[0];
    }

    /** Tells the guest terminal its new size (terminal mode). */
    void resizeConsole(int columns, int rows);

    /**
     * Stops the guest at a safe point: every vCPU outside the hypervisor and the device event loop idle
     * between queue notifications. The VM's {@link #state()} stays {@link VmState#RUNNING}; timers in the
     * guest do not advance while paused (its clock is frozen with it). Returns once paused.
     *
     * @throws IllegalStateException when the VM is not running
     * @throws KrunException when a vCPU does not reach a safe point in time
     * @since 1.2
     */
    default void pause() {
        throw new UnsupportedOperationException("this VM cannot pause");
    }

    /**
     * Lets a paused guest go on. Does nothing when the VM is not paused.
     *
     * @since 1.2
     */
    default void resume() {
        throw new UnsupportedOperationException("this VM cannot resume");
    }

    /**
     * Writes a snapshot of this paused VM into directory {@code dir} (created if absent; an earlier
     * snapshot there is replaced): guest RAM as a sparse file and a state file with every vCPU's, the
     * interrupt controllers', and each device's state. {@link Krun#restore(VmConfig, Path)} makes new VMs
     * from it. The VM stays paused.
     *
     * @throws IllegalStateException when the VM is not paused
     * @throws KrunException when a device of the VM or the hypervisor backend cannot snapshot (one line,
     *         naming it), or writing fails
     * @since 1.2
     */
    default void snapshot(Path dir) {
        throw new UnsupportedOperationException("this VM cannot snapshot");
    }

    /**
     * Delivers {@code signal} (a Linux signal number, 1 to 64) to the guest command's process, as
     * {@code kill(2)} would there: krun's guest init passes it on as soon as it arrives. What the
     * command does with it is its own affair; if it ends, the VM stops with its status. Only for a VM
     * configured with {@link VmConfig.Builder#signals(boolean)}.
     *
     * @throws IllegalArgumentException when {@code signal} is not 1 to 64
     * @throws IllegalStateException when the VM is not running, or was configured without signals
     * @since 1.4
     */
    default void signal(int signal) {
        throw new UnsupportedOperationException("this VM cannot pass signals to its command");
    }

    /**
     * The scanouts of the VM's GPU, in device and scanout order (empty without a GPU): what the guest shows
     * on each, for screenshots and remote displays. They stay readable after the VM stopped.
     *
     * @since 1.5
     */
    default java.util.List<Display> displays() {
        return java.util.List.of();
    }

    /** Stops the VM at once, as pulling the plug would; {@link #exit()} then reports {@link VmExit.Reason#KILLED}. */
    void kill();

    /** Kills the VM if it still runs and waits until its resources are released. */
    @Override
    void close();
}
