package org.krun.vmm.internal.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

class I8042Test {
    private final AtomicInteger resets = new AtomicInteger();
    private final I8042 i8042 = new I8042(resets::incrementAndGet);

    @Test
    void pulseResetCommandOnTheCommandPortResets() {
        i8042.write(0x64 - I8042.BASE, 1, 0xfe);
        assertEquals(1, resets.get());
    }

    @Test
    void otherCommandsAndTheDataPortDoNotReset() {
        i8042.write(0x64 - I8042.BASE, 1, 0xad); // disable keyboard
        i8042.write(0x64 - I8042.BASE, 1, 0xd1); // write output port
        i8042.write(0x60 - I8042.BASE, 1, 0xfe); // 0xfe as data
        i8042.write(0x64 - I8042.BASE, 1, 0x1fe); // only the low byte counts ...
        assertEquals(1, resets.get()); // ... so this one resets
    }

    @Test
    void statusSaysNothingToReadAndReadyForCommands() {
        assertEquals(0, i8042.read(0x64 - I8042.BASE, 1) & 0x03, "output and input buffers empty");
        assertEquals(0, i8042.read(0x60 - I8042.BASE, 1));
    }

    @Test
    void mappedAt0x60Through0x64() {
        assertEquals(0x60, I8042.BASE);
        assertEquals(0x65, I8042.BASE + I8042.LENGTH);
    }
}
