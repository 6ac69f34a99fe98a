package org.krun.cli.internal;

import java.io.FilterOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.BooleanSupplier;

import org.krun.api.VirtualMachine;
import org.krun.api.VmState;

/**
 * krun's stdout and stderr, watched for their reader going away (EPIPE). The console device then closes the
 * guest's port and krun's init ends the command with SIGPIPE, as a local pipeline would; should the guest not
 * end within {@link #GRACE} (another init, a command that ignores SIGPIPE and waits on a blocked write), krun
 * stops the VM itself and exits as a command killed by SIGPIPE does ({@value #STATUS}).
 */
final class BrokenPipe {
    static final Duration GRACE = Duration.ofSeconds(15);
    /** 128 + SIGPIPE. */
    static final int STATUS = 141;
    /** What krun says, where it still can, when it had to stop the VM itself. */
    static final String STOPPED = "the guest command did not end within " + GRACE.toSeconds()
            + " s after the reader of its output went away; krun stopped the VM";

    private final Duration grace;
    private final CompletableFuture<Void> broken = new CompletableFuture<>();
    private final AtomicBoolean killed = new AtomicBoolean();

    BrokenPipe(Duration grace) {
        this.grace = grace;
    }

    /** {@code out}, reporting its first failed write or flush here. */
    OutputStream watch(OutputStream out) {
        return new FilterOutputStream(out) {
            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                try {
                    out.write(b, off, len);
                } catch (IOException e) {
                    broken.complete(null);
                    throw e;
                }
            }

            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void flush() throws IOException {
                try {
                    out.flush();
                } catch (IOException e) {
                    broken.complete(null);
                    throw e;
                }
            }
        };
    }

    /** Once a stream broke, gives {@code vm} the grace period to end, then stops it. */
    void endsAfterGrace(VirtualMachine vm) {
        endsAfterGrace(() -> vm.state() != VmState.STOPPED, vm::kill);
    }

    /** Once a stream broke, waits the grace period, then calls {@code kill} if the VM is still {@code running}. */
    void endsAfterGrace(BooleanSupplier running, Runnable kill) {
        broken.thenRunAsync(() -> {
            if (running.getAsBoolean()) {
                killed.set(true);
                kill.run();
            }
        }, CompletableFuture.delayedExecutor(grace.toMillis(), TimeUnit.MILLISECONDS));
    }

    /** Whether a stream broke. */
    boolean broke() {
        return broken.isDone();
    }

    /** Whether the VM had to be stopped because it outlived its grace after a stream broke. */
    boolean killed() {
        return killed.get();
    }
}
