package org.krun.vmm.internal.legacy;

import java.util.function.IntConsumer;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * The I/O ports krun's guest init talks to the VMM on, one byte each:
 * <ul>
 * <li>0xf4, the command's exit status, written just before the init reboots (the same port and convention
 * as QEMU's isa-debug-exit device);</li>
 * <li>0xf5, the init's steps for the boot timeline: 1 as soon as the init runs, so the timeline can tell kernel
 * boot time from the rest, then {@link #FIRST_STEP} up to {@link #LAST_STEP} as it reaches its later steps
 * (root switched, files provided, console, network, command started, command ended: krun's init);</li>
 * <li>0xf6, the template point (docs/templates.md): written once by an init started without a configuration
 * file; reads answer 0 until the run's configuration is ready on 0xf7, then 1;</li>
 * <li>0xf7, the run's configuration: each read answers its next byte (a 4-byte little-endian length, then
 * that many bytes of JSON), then all ones past the end.</li>
 * </ul>
 * Other reads answer all ones.
 *
 * <p>The same configuration can be read much faster through {@link #configWindow()}, a read-only MMIO
 * window the VMM maps at {@code X86Layout.CONFIG_WINDOW_BASE}: its first 4 bytes hold the length (0 until
 * the configuration is ready, or when it does not fit the window), the JSON follows, zeros after it; a
 * guest reads it with 8-byte loads, one exit each, where the port costs an exit (and, for krun's init, a
 * system call) a byte. A write anywhere in the window says the init has read it all.
 */
public final class InitPorts implements BusDevice {
    public static final int BASE = 0xf4;
    public static final int LENGTH = 4;
    /** Port of the exit status. */
    public static final int EXIT_STATUS_PORT = BASE;
    /** Port of the "init runs" marker. */
    public static final int INIT_MARKER_PORT = BASE + 1;
    /** Port of the template point. */
    public static final int TEMPLATE_PORT = BASE + 2;
    /** Port the run's configuration is read from. */
    public static final int CONFIG_PORT = BASE + 3;
    /** The init's later steps on {@link #INIT_MARKER_PORT}; any other value says the init runs. */
    public static final int FIRST_STEP = 2;
    public static final int LAST_STEP = 7;

    private final IntConsumer exitStatus;
    private final Runnable initStarted;
    private final Runnable templatePoint;
    private final Runnable runConfigRead;
    private final IntConsumer initStep;
    /** The length-prefixed configuration, once it is ready; guarded by this. */
    private byte[] runConfig;
    private int runConfigPosition;
    /** Whether {@code runConfigRead} ran for this configuration (once, whichever way the init read it). */
    private boolean runConfigReported;

    public InitPorts(IntConsumer exitStatus, Runnable initStarted) {
        this(exitStatus, initStarted, () -> { }, () -> { });
    }

    /** With {@code runConfigRead} run once the init has read the last byte of its configuration. */
    public InitPorts(IntConsumer exitStatus, Runnable initStarted, Runnable templatePoint, Runnable runConfigRead) {
        this(exitStatus, initStarted, templatePoint, runConfigRead, step -> { });
    }

    /** With {@code initStep} given each later step the init reports ({@link #FIRST_STEP}..{@link #LAST_STEP}). */
    public InitPorts(IntConsumer exitStatus, Runnable initStarted, Runnable templatePoint, Runnable runConfigRead,
            IntConsumer initStep) {
        this.exitStatus = exitStatus;
        this.initStarted = initStarted;
        this.templatePoint = templatePoint;
        this.runConfigRead = runConfigRead;
        this.initStep = initStep;
    }

    /** Size of {@link #configWindow()}: the length word and at most this less 4 bytes of configuration. */
    public static final int CONFIG_WINDOW_SIZE = 16 << 20;

    private final BusDevice configWindow = new BusDevice() {
        @Override
        public long read(long offset, int size) {
            synchronized (InitPorts.this) {
                byte[] c = runConfig;
                if (c == null || c.length > CONFIG_WINDOW_SIZE) {
                    return 0; // not ready, or only on the port: a length of 0
                }
                long value = 0;
                for (int i = 0; i < size; i++) {
                    long at = offset + i;
                    long b = at < c.length ? c[(int) at] & 0xff : 0;
                    value |= b << (8 * i);
                }
                return value;
            }
        }

        @Override
        public void write(long offset, int size, long value) {
            boolean first;
            synchronized (InitPorts.this) {
                first = runConfig != null && !runConfigReported;
                runConfigReported |= first;
            }
            if (first) {
                runConfigRead.run();
            }
        }
    };

    /** The run's configuration as an MMIO window of {@link #CONFIG_WINDOW_SIZE} bytes (see above). */
    public BusDevice configWindow() {
        return configWindow;
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
        runConfigReported = false;
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
        if (offset == CONFIG_PORT - BASE && runConfig != null && runConfigPosition < runConfig.length) {
            int b = runConfig[runConfigPosition++] & 0xff;
            if (runConfigPosition == runConfig.length && !runConfigReported) {
                runConfigReported = true;
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
            int step = (int) (value & 0xff);
            if (step >= FIRST_STEP && step <= LAST_STEP) {
                initStep.accept(step);
            } else {
                initStarted.run();
            }
        } else if (offset == TEMPLATE_PORT - BASE) {
            templatePoint.run();
        }
    }
}
