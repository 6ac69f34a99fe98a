package org.krun.shell.internal;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.Instant;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.api.VmState;

/** A VM handle without a VM: state and exit are set by the test; end-of-file may end it with a status. */
final class FakeVm implements VirtualMachine {
    final String id;
    final VmConfig config;
    final CompletableFuture<VmExit> exit = new CompletableFuture<>();
    final ByteArrayOutputStream input = new ByteArrayOutputStream();
    volatile VmState state = VmState.CREATED;
    volatile Instant startedAt;
    volatile byte[] tail = new byte[0];
    /** The status the command exits with when its input ends; null: it ignores end-of-file. */
    volatile Integer statusOnEndOfInput;
    volatile boolean inputClosed;
    volatile boolean killed;
    volatile boolean paused;
    /** Where snapshots were written, in order. */
    final java.util.List<java.nio.file.Path> snapshots = new java.util.concurrent.CopyOnWriteArrayList<>();
    /** The snapshot this VM was restored from; null for a booted one. */
    volatile java.nio.file.Path restoredFrom;

    /** What {@link #displays()} returns. */
    volatile java.util.List<org.krun.api.Display> displays = java.util.List.of();

    @Override
    public java.util.List<org.krun.api.Display> displays() {
        return displays;
    }

    FakeVm(String id, VmConfig config) {
        this.id = id;
        this.config = config;
    }

    void finish(VmExit e) {
        state = VmState.STOPPED;
        exit.complete(e);
    }

    FakeVm tail(String text) {
        tail = text.getBytes(StandardCharsets.UTF_8);
        return this;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public VmConfig config() {
        return config;
    }

    @Override
    public VmState state() {
        return state;
    }

    @Override
    public Optional<Instant> startedAt() {
        return Optional.ofNullable(startedAt);
    }

    @Override
    public void start() {
        state = VmState.RUNNING;
        startedAt = Instant.now();
    }

    @Override
    public CompletableFuture<VmExit> exit() {
        return exit.copy();
    }

    @Override
    public VmExit waitFor() throws InterruptedException {
        try {
            return exit.get();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public VmExit waitFor(Duration timeout) throws InterruptedException, TimeoutException {
        try {
            return exit.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public OutputStream consoleInput() {
        return new OutputStream() {
            @Override
            public void write(int b) {
                input.write(b);
            }

            @Override
            public void close() {
                inputClosed = true;
                Integer s = statusOnEndOfInput;
                if (s != null) {
                    finish(VmExit.commandExited(s));
                }
            }
        };
    }

    @Override
    public byte[] consoleTail() {
        return tail.clone();
    }

    @Override
    public void resizeConsole(int columns, int rows) {
    }

    @Override
    public void pause() {
        paused = true;
    }

    @Override
    public void resume() {
        paused = false;
    }

    @Override
    public void snapshot(java.nio.file.Path dir) {
        if (!paused) {
            throw new IllegalStateException(id + " is not paused");
        }
        snapshots.add(dir);
    }

    @Override
    public void kill() {
        if (!exit.isDone()) {
            killed = true;
            finish(VmExit.killed());
        }
    }

    @Override
    public void close() {
        kill();
    }
}
