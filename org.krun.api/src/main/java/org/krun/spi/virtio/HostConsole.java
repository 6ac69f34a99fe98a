package org.krun.spi.virtio;

import java.io.OutputStream;

import org.osgi.annotation.versioning.ConsumerType;

/**
 * Implemented by the console device so the core can route {@code VirtualMachine.consoleInput()} and
 * {@code resizeConsole()} to it.
 */
@ConsumerType
public interface HostConsole {

    /** Bytes for the guest's console or the command's stdin; close for end-of-file. */
    OutputStream input();

    /** The host terminal changed size. */
    void resize(int columns, int rows);

    /** Called once the VM has stopped: no more output will come; flush what is buffered. */
    void flush();

    /**
     * Whether this console carries a port for signals to the command (asked for by
     * {@code ConsoleSpec.signals()}): krun's init then waits on that port instead of polling the VMM.
     *
     * @since 1.5
     */
    default boolean carriesSignals() {
        return false;
    }

    /**
     * Hands {@code signal} (1 to 64) to the guest on the signal port.
     *
     * @return false when this console has no signal port or too many signals are already waiting
     * @since 1.5
     */
    default boolean signal(int signal) {
        return false;
    }
}
