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
 * end-of-file for the command. With {@code input == false} the command sees end-of-file at once.
 *
 * @param mode terminal or pipes
 * @param stdout where the command's standard output goes (and the console in terminal mode)
 * @param stderr where the command's standard error goes (and the console in pipes mode)
 * @param input whether the embedder will write the command's input to {@link VirtualMachine#consoleInput()}
 * @param columns initial terminal width, 0 if unknown
 * @param rows initial terminal height, 0 if unknown
 */
public record ConsoleSpec(Mode mode, OutputStream stdout, OutputStream stderr, boolean input, int columns, int rows)
        implements DeviceSpec {

    /** The device type of the console. */
    public static final String TYPE = "console";

    /** How the command's standard streams are wired. */
    public enum Mode {
        /** One terminal for all three streams (interactive use). */
        TERMINAL,
        /** Three separate binary-safe streams. */
        PIPES
    }

    public ConsoleSpec {
        Objects.requireNonNull(mode, "mode");
        stdout = stdout == null ? OutputStream.nullOutputStream() : stdout;
        stderr = stderr == null ? OutputStream.nullOutputStream() : stderr;
        if (columns < 0 || rows < 0 || columns > 0xffff || rows > 0xffff) {
            throw new IllegalArgumentException("terminal size out of range: " + columns + "x" + rows);
        }
    }

    /** Pipes mode, output discarded, no input. */
    public static ConsoleSpec discard() {
        return new ConsoleSpec(Mode.PIPES, null, null, false, 0, 0);
    }

    /** Pipes mode to the given streams. */
    public static ConsoleSpec pipes(OutputStream stdout, OutputStream stderr, boolean input) {
        return new ConsoleSpec(Mode.PIPES, stdout, stderr, input, 0, 0);
    }

    /** Terminal mode to the given stream with an initial size. */
    public static ConsoleSpec terminal(OutputStream out, int columns, int rows) {
        return new ConsoleSpec(Mode.TERMINAL, out, out, true, columns, rows);
    }

    @Override
    public String type() {
        return TYPE;
    }
}
