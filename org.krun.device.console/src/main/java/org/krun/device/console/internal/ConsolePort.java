package org.krun.device.console.internal;

import java.io.OutputStream;

/**
 * One port of the multiport console: port 0 is always the console ({@code hvc0}); in pipes mode ports 1-3
 * carry the command's stdin, stdout and stderr, found by the guest init through their names.
 *
 * @param sink where the guest's output on this port goes (null: discarded)
 * @param input whether this port carries the host's input
 */
record ConsolePort(int id, String name, boolean console, OutputStream sink, boolean input) {

    /** virtio 1.2 §5.3.2: port 0 uses queues 0/1, the control queues are 2/3, port n uses 2n+2 / 2n+3. */
    int receiveQueue() {
        return id == 0 ? 0 : 2 * id + 2;
    }

    int transmitQueue() {
        return receiveQueue() + 1;
    }
}
