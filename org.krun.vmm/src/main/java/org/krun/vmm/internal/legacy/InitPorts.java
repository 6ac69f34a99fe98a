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
 * that many bytes of JSON), then all ones past the end.</li>
 * </ul>
 * Other reads answer all ones.
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

    private final IntConsumer exitStatus;
    private final Runnable initStarted;
    private final Runnable templatePoint;
    private final Runnable runConfigRead;
    /** The length-prefixed configuration, once it is ready; guarded by this. */
    private byte[] runConfig;
    private int runConfigPosition;

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
