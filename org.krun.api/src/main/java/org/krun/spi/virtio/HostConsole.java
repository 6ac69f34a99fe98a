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
}
