package org.krun.vmm.internal;

import java.lang.management.ManagementFactory;
import java.time.Instant;
import java.util.concurrent.atomic.AtomicLongArray;

import org.krun.vmm.internal.legacy.InitPorts;

/**
 * When a VM reached each step of its life, in microseconds since the epoch; the first time wins. Logged
 * at INFO when the VM is released, which is what {@code bench/boot} reads.
 */
final class BootTimeline {

    /** The steps, in order. */
    enum Event {
        /** {@code VirtualMachine.start()} was called. */
        START,
        /** The boot vCPU enters the guest for the first time. */
        FIRST_RUN,
        /** The guest init announced itself (I/O port 0xf5). */
        INIT,
        /** The guest init reached its template point (I/O port 0xf6; templated VMs only). */
        TEMPLATE,
        /** A templated init has read its configuration (port 0xf7). */
        CONFIG,
        /** krun's init switched to the run's root (port 0xf5, step 2; so are the next five). */
        ROOT,
        /** krun's init mounted /proc, /sys, /dev, the extra mounts and laid the provided files over the root. */
        FILES,
        /** krun's init opened the command's console ports (or hvc0). */
        CONSOLE,
        /** krun's init configured the network (loopback, cards, TSI). */
        NETWORK,
        /** The command's process is about to exec the command. */
        EXEC,
        /** The command ended (before the init syncs and unmounts). */
        EXITED,
        /** The guest init reported the command's exit status. */
        STATUS,
        /** The guest reset the machine, or the VM was stopped otherwise. */
        STOP,
        /** Everything the VM held is released. */
        RELEASED
    }

    private final AtomicLongArray micros = new AtomicLongArray(Event.values().length);

    /** The event of the init's step {@code step} on port 0xf5 ({@code InitPorts.FIRST_STEP}..{@code LAST_STEP}). */
    static Event initStep(int step) {
        return Event.values()[Event.ROOT.ordinal() + step - InitPorts.FIRST_STEP];
    }

    void mark(Event e) {
        micros.compareAndSet(e.ordinal(), 0, now());
    }

    long at(Event e) {
        return micros.get(e.ordinal());
    }

    static long now() {
        Instant t = Instant.now();
        return t.getEpochSecond() * 1_000_000 + t.getNano() / 1_000;
    }

    /** {@code jvm=... start=... first_run=...}: epoch microseconds of each step reached. */
    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder();
        sb.append("jvm=").append(ManagementFactory.getRuntimeMXBean().getStartTime() * 1000);
        for (Event e : Event.values()) {
            long t = at(e);
            if (t != 0) {
                sb.append(' ').append(e.name().toLowerCase(java.util.Locale.ROOT)).append('=').append(t);
            }
        }
        return sb.toString();
    }
}
