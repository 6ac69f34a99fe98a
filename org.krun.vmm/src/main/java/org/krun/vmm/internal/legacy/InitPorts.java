package org.krun.vmm.internal.legacy;

import java.util.function.IntConsumer;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * The two I/O ports krun's guest init talks to the VMM on, one byte each:
 * <ul>
 * <li>0xf4, the command's exit status, written just before the init reboots (the same port and convention
 * as QEMU's isa-debug-exit device);</li>
 * <li>0xf5, written once as soon as the init runs, so the boot timeline can tell kernel boot time from the
 * rest.</li>
 * </ul>
 * Reads answer all ones.
 */
public final class InitPorts implements BusDevice {
    public static final int BASE = 0xf4;
    public static final int LENGTH = 2;
    /** Port of the exit status. */
    public static final int EXIT_STATUS_PORT = BASE;
    /** Port of the "init runs" marker. */
    public static final int INIT_MARKER_PORT = BASE + 1;

    private final IntConsumer exitStatus;
    private final Runnable initStarted;

    public InitPorts(IntConsumer exitStatus, Runnable initStarted) {
        this.exitStatus = exitStatus;
        this.initStarted = initStarted;
    }

    @Override
    public long read(long offset, int size) {
        return size >= 8 ? -1L : (1L << (8 * size)) - 1;
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset == 0) {
            exitStatus.accept((int) (value & 0xff));
        } else if (offset == 1) {
            initStarted.run();
        }
    }
}
