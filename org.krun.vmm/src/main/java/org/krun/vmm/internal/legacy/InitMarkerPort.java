package org.krun.vmm.internal.legacy;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * I/O port 0xf5: krun's guest init writes here once, as soon as it runs, so the VMM can tell kernel boot
 * time from the rest (boot timeline, {@code bench/boot}).
 */
public final class InitMarkerPort implements BusDevice {
    public static final int PORT = 0xf5;
    public static final int LENGTH = 1;

    private final Runnable started;

    public InitMarkerPort(Runnable started) {
        this.started = started;
    }

    @Override
    public long read(long offset, int size) {
        return 0xff;
    }

    @Override
    public void write(long offset, int size, long value) {
        started.run();
    }
}
