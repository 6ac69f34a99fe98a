package org.krun.api;

import java.io.OutputStream;
import java.util.Objects;

/**
 * The guest's console and the command's standard streams.
 *
 * <p>In {@link Mode#TERMINAL} mode the command runs with the guest console ({@code hvc0}) as its
 * controlling terminal for stdin, stdout and stderr: everything it prints goes to {@code stdout}, in
 * terminal form. In {@link Mode#PIPES} mode the command's stdin, stdout and stderr are separate
 * binary-safe byte streams (virtio-console ports), and the console itself (kernel messages) goes to
 * {@code stderr}.
 *
 * <p>Input reaches the guest through {@link VirtualMachine#consoleInput()}; closing that stream is
 * end-of-file for the command. With {@link #input()} false the command sees end-of-file at once.
 *
 * <p>Made by {@link #discard()}, {@link #pipes} or {@link #terminal} and refined with the {@code with...}
 * methods, so options can be added without breaking callers. Immutable.
 */
public final class ConsoleSpec implements DeviceSpec {

    /** The device type of the console. */
    public static final String TYPE = "console";

    /** How the command's standard streams are wired. */
    public enum Mode {
        /** One terminal for all three streams (interactive use). */
        TERMINAL,
        /** Three separate binary-safe streams. */
        PIPES
    }

    private final Mode mode;
    private final OutputStream stdout;
    private final OutputStream stderr;
    private final boolean input;
    private final int columns;
    private final int rows;
    private final boolean signals;

    private ConsoleSpec(Mode mode, OutputStream stdout, OutputStream stderr, boolean input, int columns, int rows) {
        this(mode, stdout, stderr, input, columns, rows, false);
    }

    private ConsoleSpec(Mode mode, OutputStream stdout, OutputStream stderr, boolean input, int columns, int rows,
            boolean signals) {
        this.mode = Objects.requireNonNull(mode, "mode");
        this.stdout = stdout == null ? OutputStream.nullOutputStream() : stdout;
        this.stderr = stderr == null ? OutputStream.nullOutputStream() : stderr;
        this.input = input;
        if (columns < 0 || rows < 0 || columns > 0xffff || rows > 0xffff) {
            throw new IllegalArgumentException("terminal size out of range: " + columns + "x" + rows);
        }
        this.columns = columns;
        this.rows = rows;
        this.signals = signals;
    }

    /** Pipes mode, output discarded, no input. */
    public static ConsoleSpec discard() {
        return new ConsoleSpec(Mode.PIPES, null, null, false, 0, 0);
    }

    /** Pipes mode to the given streams. */
    public static ConsoleSpec pipes(OutputStream stdout, OutputStream stderr, boolean input) {
        return new ConsoleSpec(Mode.PIPES, stdout, stderr, input, 0, 0);
    }

    /** Terminal mode to the given stream with an initial size, with input. */
    public static ConsoleSpec terminal(OutputStream out, int columns, int rows) {
        return new ConsoleSpec(Mode.TERMINAL, out, out, true, columns, rows);
    }

    /** Terminal or pipes. */
    public Mode mode() {
        return mode;
    }

    /** Where the command's standard output goes (and the console in terminal mode). */
    public OutputStream stdout() {
        return stdout;
    }

    /**
     * Where the command's standard error goes (and the console in pipes mode once the guest's init has
     * started, and all the kernel's messages with {@link VmConfig#kernelLog()}).
     */
    public OutputStream stderr() {
        return stderr;
    }

    /** Whether the embedder will write the command's input to {@link VirtualMachine#consoleInput()}. */
    public boolean input() {
        return input;
    }

    /** Initial terminal width, 0 if unknown. */
    public int columns() {
        return columns;
    }

    /** Initial terminal height, 0 if unknown. */
    public int rows() {
        return rows;
    }

    /**
     * Whether the console carries a port for signals to the command ({@link VirtualMachine#signal}), so the
     * guest waits for them on an interrupt instead of asking the VMM for them. The core sets it for VMs
     * configured with {@link VmConfig.Builder#signals(boolean)}; embedders need not.
     *
     * @since 1.5
     */
    public boolean signals() {
        return signals;
    }

    /** This console with its output going to {@code stdout} and {@code stderr}. */
    public ConsoleSpec withStreams(OutputStream stdout, OutputStream stderr) {
        return new ConsoleSpec(mode, stdout, stderr, input, columns, rows, signals);
    }

    /** This console with or without input from the embedder. */
    public ConsoleSpec withInput(boolean input) {
        return new ConsoleSpec(mode, stdout, stderr, input, columns, rows, signals);
    }

    /** This console with an initial terminal size. */
    public ConsoleSpec withSize(int columns, int rows) {
        return new ConsoleSpec(mode, stdout, stderr, input, columns, rows, signals);
    }

    /**
     * This console with or without a port for signals (see {@link #signals()}).
     *
     * @since 1.5
     */
    public ConsoleSpec withSignals(boolean signals) {
        return new ConsoleSpec(mode, stdout, stderr, input, columns, rows, signals);
    }

    @Override
    public String type() {
        return TYPE;
    }

    @Override
    public String toString() {
        return "ConsoleSpec[" + mode + (input ? ", input" : "") + (columns > 0 ? ", " + columns + "x" + rows : "")
                + (signals ? ", signals" : "") + "]";
    }
}
