package org.krun.device.console.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import org.junit.jupiter.api.Test;

/** struct virtio_console_control (virtio 1.2 §5.3.6.2): le32 id, le16 event, le16 value, then data. */
class ControlMessageTest {

    @Test
    void encodesLittleEndianHeaderThenData() {
        byte[] m = new ControlMessage(0x01020304, ControlMessage.PORT_NAME, 0x0506, new byte[] {'a', 'b'}).encode();

        assertArrayEquals(new byte[] {4, 3, 2, 1, 7, 0, 6, 5, 'a', 'b'}, m);
    }

    @Test
    void decodesTheHeaderAndIgnoresTrailingBytes() {
        ControlMessage m = ControlMessage.decode(new byte[] {3, 0, 0, 0, 3, 0, 1, 0, 9, 9});

        assertEquals(3, m.id());
        assertEquals(ControlMessage.PORT_READY, m.event());
        assertEquals(1, m.value());
    }

    @Test
    void decodeReadsUnsignedFields() {
        ControlMessage m = ControlMessage.decode(new byte[] {-1, -1, -1, -1, -1, -1, -1, -1});

        assertEquals(-1, m.id()); // VIRTIO_CONSOLE_BAD_ID
        assertEquals(0xffff, m.event());
        assertEquals(0xffff, m.value());
    }

    @Test
    void decodeRefusesMessagesShorterThanTheHeader() {
        assertNull(ControlMessage.decode(new byte[7]));
    }

    @Test
    void resizePayloadIsColumnsThenRowsAsTheSpecAndLinux612ReadIt() {
        byte[] m = ControlMessage.resize(0, 80, 24).encode();

        assertArrayEquals(new byte[] {0, 0, 0, 0, 5, 0, 0, 0, 80, 0, 24, 0}, m);
    }
}
