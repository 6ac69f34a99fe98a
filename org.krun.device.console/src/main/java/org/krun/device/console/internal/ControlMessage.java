package org.krun.device.console.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * A multiport control message (virtio 1.2 §5.3.6.2): struct virtio_console_control { le32 id; le16 event;
 * le16 value; } and, for some events, data after it.
 */
record ControlMessage(int id, int event, int value, byte[] data) {
    static final int HEADER_SIZE = 8;

    static final int DEVICE_READY = 0;
    static final int DEVICE_ADD = 1;
    static final int DEVICE_REMOVE = 2;
    static final int PORT_READY = 3;
    static final int CONSOLE_PORT = 4;
    static final int RESIZE = 5;
    static final int PORT_OPEN = 6;
    static final int PORT_NAME = 7;

    ControlMessage(int id, int event, int value) {
        this(id, event, value, new byte[0]);
    }

    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(HEADER_SIZE + data.length).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(id).putShort((short) event).putShort((short) value).put(data);
        return b.array();
    }

    /** Parses the header of a guest message; returns null if it is too short. */
    static ControlMessage decode(byte[] bytes) {
        if (bytes.length < HEADER_SIZE) {
            return null;
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        return new ControlMessage(b.getInt(), b.getShort() & 0xffff, b.getShort() & 0xffff);
    }

    /**
     * A RESIZE for a console port: struct virtio_console_resize { le16 cols; le16 rows; } after the header
     * (virtio 1.2 §5.3.6.2), which is also how Linux 6.12's drivers/char/virtio_console.c reads it (older
     * kernels read rows first; checked against the guest with {@code stty size}).
     */
    static ControlMessage resize(int port, int columns, int rows) {
        ByteBuffer p = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
        p.putShort((short) columns).putShort((short) rows);
        return new ControlMessage(port, RESIZE, 0, p.array());
    }
}
