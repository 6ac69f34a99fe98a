package org.krun.vmm.internal.legacy;

import java.util.function.IntConsumer;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * I/O port 0xf4, where krun's guest init writes the command's exit status (one byte) just before it
 * reboots. The same port and convention as QEMU's isa-debug-exit device.
 */
public final class ExitStatusPort implements BusDevice {
    public static final int PORT = 0xf4;
    public static final int LENGTH = 1;

    private final IntConsumer status;

    public ExitStatusPort(IntConsumer status) {
        this.status = status;
    }

    @Override
    public long read(long offset, int size) {
        return 0xff;
    }

    @Override
    public void write(long offset, int size, long value) {
        status.accept((int) (value & 0xff));
    }
}
