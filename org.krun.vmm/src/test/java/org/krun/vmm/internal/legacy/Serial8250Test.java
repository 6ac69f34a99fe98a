package org.krun.vmm.internal.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

class Serial8250Test {
    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final Serial8250 serial = new Serial8250(out);

    private void print(String s) {
        for (byte b : s.getBytes(StandardCharsets.US_ASCII)) {
            serial.write(0, 1, b & 0xff);
        }
    }

    @Test
    void bytesWrittenToTheTransmitRegisterReachTheOutput() {
        print("Linux version 6.12\n");
        assertEquals("Linux version 6.12\n", out.toString(StandardCharsets.US_ASCII));
    }

    @Test
    void transmitterAlwaysReadsIdleAndNoInterruptPending() {
        print("x");
        assertEquals(0x60, serial.read(5, 1) & 0x60, "LSR: THR empty, transmitter empty");
        assertEquals(0x01, serial.read(2, 1), "IIR: no interrupt pending");
    }

    @Test
    void divisorLatchWritesAreNotOutput() {
        serial.write(3, 1, 0x83); // LCR: DLAB, 8N1
        serial.write(0, 1, 0x01); // divisor low (115200 baud)
        serial.write(1, 1, 0x00); // divisor high
        serial.write(3, 1, 0x03); // LCR: 8N1
        print("ok");
        assertEquals("ok", out.toString(StandardCharsets.US_ASCII));
        assertEquals(0x03, serial.read(3, 1));
    }

    @Test
    void scratchRegisterKeepsItsValue() {
        serial.write(7, 1, 0x5a);
        assertEquals(0x5a, serial.read(7, 1));
    }

    @Test
    void outputIsFlushedAtEachNewline() {
        int[] flushes = {0};
        Serial8250 s = new Serial8250(new OutputStream() {
            @Override
            public void write(int b) {
            }

            @Override
            public void flush() {
                flushes[0]++;
            }
        });
        for (char c : "a\nb\n".toCharArray()) {
            s.write(0, 1, c);
        }
        assertEquals(2, flushes[0]);
    }

    @Test
    void aFailingOutputDoesNotReachTheGuest() {
        Serial8250 s = new Serial8250(new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("closed");
            }
        });
        s.write(0, 1, 'x');
        assertEquals(0x60, s.read(5, 1) & 0x60);
    }
}
