package org.krun.vmm.internal.legacy;

import org.krun.vmm.internal.bus.BusDevice;

/**
 * The keyboard controller, reduced to what a VM needs: its status always says "nothing to read, ready
 * for commands", and command 0xFE (pulse the reset line) on the command port resets the machine. With
 * {@code reboot=k} that is how the guest's reboot reaches the VMM. Ports 0x60 (data) and 0x64
 * (status/command); this device is mapped at 0x60 with length 5.
 */
public final class I8042 implements BusDevice {
    public static final int BASE = 0x60;
    public static final int LENGTH = 5;
    static final int COMMAND_OFFSET = 4;
    static final int CMD_PULSE_RESET = 0xfe;

    private final Runnable reset;

    public I8042(Runnable reset) {
        this.reset = reset;
    }

    @Override
    public long read(long offset, int size) {
        return 0; // data: nothing; status: output buffer empty, input buffer empty
    }

    @Override
    public void write(long offset, int size, long value) {
        if (offset == COMMAND_OFFSET && (value & 0xff) == CMD_PULSE_RESET) {
            reset.run();
        }
    }
}
