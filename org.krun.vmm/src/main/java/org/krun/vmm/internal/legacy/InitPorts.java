package org.krun.vmm.internal.legacy;

import java.util.function.IntConsumer;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * The I/O ports krun's guest init talks to the VMM on, one byte each:
 * <ul>
 * <li>0xf4, the command's exit status, written just before the init reboots (the same port and convention
 * as QEMU's isa-debug-exit device);</li>
 * <li>0xf5, written once as soon as the init runs, so the boot timeline can tell kernel boot time from the
 * rest;</li>
 * <li>0xf6, the template point (docs/templates.md): written once by an init started without a configuration
 * file; reads answer 0 until the run's configuration is ready on 0xf7, then 1;</li>
 * <li>0xf7, the run's configuration: each read answers its next byte (a 4-byte little-endian length, then
 * that many bytes of JSON), then all ones past the end;</li>
 * <li>0xf8, signals for the command: each read answers the next signal number the host asked to deliver
 * ({@link #queueSignal}), or 0; the init polls it while the command runs and passes each to it.</li>
 * </ul>
 * Other reads answer all ones.
 */
public final class InitPorts implements BusDevice {
    public static final int BASE = 0xf4;
    public static final int LENGTH = 5;
    /** Port of the exit status. */
    public static final int EXIT_STATUS_PORT = BASE;
    /** Port of the "init runs" marker. */
    public static final int INIT_MARKER_PORT = BASE + 1;
    /** Port of the template point. */
    public static final int TEMPLATE_PORT = BASE + 2;
    /** Port the run's configuration is read from. */
    public static final int CONFIG_PORT = BASE + 3;
    /** Port the init reads signals for the command from. */
    public static final int SIGNAL_PORT = BASE + 4;
    /** The most signals waiting for the init; more are dropped (a signal is not queued twice anyway). */
    static final int MAX_PENDING_SIGNALS = 32;

    private final IntConsumer exitStatus;
    private final Runnable initStarted;
    private final Runnable templatePoint;
    private final Runnable runConfigRead;
    /** The length-prefixed configuration, once it is ready; guarded by this. */
    private byte[] runConfig;
    private int runConfigPosition;
    /** Signals for the command, oldest first; guarded by this. */
    private final java.util.ArrayDeque<Integer> signals = new java.util.ArrayDeque<>();

    public InitPorts(IntConsumer exitStatus, Runnable initStarted) {
        this(exitStatus, initStarted, () -> { }, () -> { });
    }

    /** With {@code runConfigRead} run once the init has read the last byte of its configuration. */
    public InitPorts(IntConsumer exitStatus, Runnable initStarted, Runnable templatePoint, Runnable runConfigRead) {
        this.exitStatus = exitStatus;
        this.initStarted = initStarted;
        this.templatePoint = templatePoint;
        this.runConfigRead = runConfigRead;
    }

    /** Makes {@code json} the configuration the init reads on {@link #CONFIG_PORT}, and says it is ready. */
    public synchronized void offerRunConfig(byte[] json) {
        byte[] b = new byte[4 + json.length];
        b[0] = (byte) json.length;
        b[1] = (byte) (json.length >>> 8);
        b[2] = (byte) (json.length >>> 16);
        b[3] = (byte) (json.length >>> 24);
        System.arraycopy(json, 0, b, 4, json.length);
        runConfig = b;
        runConfigPosition = 0;
    }

    /**
     * Asks the init to deliver {@code signal} (1 to 64) to the command, at its next poll of {@link #SIGNAL_PORT}.
     *
     * @return false when too many signals are already waiting
     */
    public synchronized boolean queueSignal(int signal) {
        if (signal < 1 || signal > 64) {
            throw new IllegalArgumentException("no signal " + signal);
        }
        if (signals.size() >= MAX_PENDING_SIGNALS) {
            return false;
        }
        signals.add(signal);
        return true;
    }

    @Override
    public synchronized long read(long offset, int size) {
        long ones = size >= 8 ? -1L : (1L << (8 * size)) - 1;
        if (size != 1) {
            return ones;
        }
        if (offset == TEMPLATE_PORT - BASE) {
            return runConfig == null ? 0 : 1;
        }
        if (offset == SIGNAL_PORT - BASE) {
            Integer s = signals.poll();
            return s == null ? 0 : s;
        }
        if (offset == CONFIG_PORT - BASE && runConfig != null && runConfigPosition < runConfig.length) {
            int b = runConfig[runConfigPosition++] & 0xff;
            if (runConfigPosition == runConfig.length) {
                runConfigRead.run();
            }
            return b;
        }
        return ones;
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset == EXIT_STATUS_PORT - BASE) {
            exitStatus.accept((int) (value & 0xff));
        } else if (offset == INIT_MARKER_PORT - BASE) {
            initStarted.run();
        } else if (offset == TEMPLATE_PORT - BASE) {
            templatePoint.run();
        }
    }
}
