package org.krun.vmm.internal;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Objects;

import org.krun.api.ConsoleSpec;

/**
 * In pipes mode, keeps the guest kernel's boot messages off the embedder's stderr until krun's init has
 * started. There the console (hvc0) is the kernel's alone and goes to stderr; before init runs, what the
 * kernel writes to it is either noise or the reason it could not start init, which the VM reports in one
 * line from its serial log ({@link KernelLog}). Whether that text also reached stderr would otherwise depend
 * on whether the console device served the kernel's last buffers before the VM stopped. The command's own
 * stderr port opens only after init started, so nothing of it is lost. In terminal mode the console is the
 * command's terminal and shows whatever the kernel printed, as a real console does. With
 * {@link org.krun.api.VmConfig#kernelLog()} the gate starts open: the user asked to see the kernel. It also
 * opens for a kernel that is not Linux (an ELF without Linux's notes: no krun init will run to say so) and
 * for a restored VM (its boot is behind it).
 */
final class BootConsoleGate {
    private final boolean alwaysOpen;
    private volatile boolean open;

    BootConsoleGate(boolean alwaysOpen) {
        this.alwaysOpen = alwaysOpen;
        this.open = alwaysOpen;
    }

    /** Lets everything through from now on (init has started). */
    void open() {
        open = true;
    }

    /** Drops output again, unless it is always open (a restore that had opened it failed; the VM boots). */
    void shut() {
        open = alwaysOpen;
    }

    /** {@code spec}, in pipes mode with a stderr that drops what is written while the gate is shut. */
    ConsoleSpec wrap(ConsoleSpec spec) {
        if (spec.mode() != ConsoleSpec.Mode.PIPES || spec.stderr() == null || spec.stderr() == spec.stdout()) {
            return spec;
        }
        return spec.withStreams(spec.stdout(), new Gated(spec.stderr()));
    }

    private final class Gated extends OutputStream {
        private final OutputStream target;

        Gated(OutputStream target) {
            this.target = target;
        }

        @Override
        public void write(int b) throws IOException {
            if (open) {
                target.write(b);
            }
        }

        @Override
        public void write(byte[] b, int off, int len) throws IOException {
            Objects.checkFromIndexSize(off, len, b.length);
            if (open) {
                target.write(b, off, len);
            }
        }

        @Override
        public void flush() throws IOException {
            target.flush();
        }

        @Override
        public void close() throws IOException {
            target.close();
        }
    }
}
