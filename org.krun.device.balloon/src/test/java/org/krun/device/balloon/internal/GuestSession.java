package org.krun.device.balloon.internal;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.TimeoutException;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.krun.api.ConsoleSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;

/**
 * A running Linux guest whose command the test converses with: it waits for lines the guest prints and
 * answers on the guest's stdin, so the host can measure at the moments the guest names. Owns the VM;
 * {@link #close()} kills it if it is still running.
 */
final class GuestSession implements AutoCloseable {
    private final VirtualMachine vm;
    private final ByteArrayOutputStream stdout = new ByteArrayOutputStream();
    private final ByteArrayOutputStream stderr = new ByteArrayOutputStream();
    private final OutputStream stdin;
    private final Object lock = new Object();

    GuestSession(Krun krun, VmConfig.Builder config) {
        OutputStream out = new OutputStream() {
            @Override
            public void write(int b) {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) {
                synchronized (lock) {
                    stdout.write(b, off, len);
                    lock.notifyAll();
                }
            }
        };
        config.console(ConsoleSpec.pipes(out, stderr, true));
        vm = krun.create(config.build());
        try {
            vm.start();
        } catch (RuntimeException e) {
            vm.close();
            throw e;
        }
        stdin = vm.consoleInput();
    }

    String out() {
        synchronized (lock) {
            return stdout.toString(StandardCharsets.UTF_8);
        }
    }

    String err() {
        synchronized (stderr) {
            return stderr.toString(StandardCharsets.UTF_8);
        }
    }

    /** Waits until the guest's stdout has a line matching {@code regex}; returns its match. */
    Matcher await(String regex, Duration timeout) throws InterruptedException {
        Pattern p = Pattern.compile(regex, Pattern.MULTILINE);
        long deadline = System.nanoTime() + timeout.toNanos();
        synchronized (lock) {
            while (true) {
                Matcher m = p.matcher(stdout.toString(StandardCharsets.UTF_8));
                if (m.find()) {
                    return m;
                }
                long left = deadline - System.nanoTime();
                if (left <= 0 || vm.exit().isDone()) {
                    throw new AssertionError("the guest did not print /" + regex + "/ within " + timeout + " (exit: "
                            + (vm.exit().isDone() ? vm.exit().join() : "still running") + ")\n--- stdout\n" + out()
                            + "--- stderr\n" + err());
                }
                lock.wait(Math.max(1, Math.min(200, left / 1_000_000)));
            }
        }
    }

    /** Writes one line to the guest command's stdin. */
    void send(String line) throws IOException {
        stdin.write((line + "\n").getBytes(StandardCharsets.UTF_8));
        stdin.flush();
    }

    /** Closes the guest's stdin and waits for the VM to stop. */
    VmExit finish(Duration timeout) throws Exception {
        stdin.close();
        try {
            return vm.waitFor(timeout);
        } catch (TimeoutException e) {
            vm.kill();
            throw new AssertionError("guest did not finish within " + timeout + "\n--- stdout\n" + out() + "--- stderr\n"
                    + err());
        }
    }

    @Override
    public void close() {
        vm.close();
    }
}
