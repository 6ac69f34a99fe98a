package org.krun.device.vsock.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * struct virtio_vsock_hdr (virtio 1.2 §5.10.6): the 44 little-endian bytes in front of every packet, both
 * ways. Pure: parsing checks nothing but size; the device judges the values.
 */
record VsockHeader(long srcCid, long dstCid, long srcPort, long dstPort, long len, int type, int op, int flags,
        long bufAlloc, long fwdCnt) {

    static final int SIZE = 44;

    static final int TYPE_STREAM = 1;

    static final int OP_REQUEST = 1;
    static final int OP_RESPONSE = 2;
    static final int OP_RST = 3;
    static final int OP_SHUTDOWN = 4;
    static final int OP_RW = 5;
    static final int OP_CREDIT_UPDATE = 6;
    static final int OP_CREDIT_REQUEST = 7;

    /** SHUTDOWN flags: the sender will receive no more, send no more. */
    static final int SHUTDOWN_RCV = 1;
    static final int SHUTDOWN_SEND = 2;

    static VsockHeader decode(byte[] bytes) {
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        return new VsockHeader(b.getLong(), b.getLong(), Integer.toUnsignedLong(b.getInt()),
                Integer.toUnsignedLong(b.getInt()), Integer.toUnsignedLong(b.getInt()), b.getShort() & 0xffff,
                b.getShort() & 0xffff, b.getInt(), Integer.toUnsignedLong(b.getInt()), Integer.toUnsignedLong(b.getInt()));
    }

    byte[] encode() {
        ByteBuffer b = ByteBuffer.allocate(SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(srcCid).putLong(dstCid).putInt((int) srcPort).putInt((int) dstPort).putInt((int) len)
                .putShort((short) type).putShort((short) op).putInt(flags).putInt((int) bufAlloc).putInt((int) fwdCnt);
        return b.array();
    }

    static String opName(int op) {
        return switch (op) {
            case OP_REQUEST -> "REQUEST";
            case OP_RESPONSE -> "RESPONSE";
            case OP_RST -> "RST";
            case OP_SHUTDOWN -> "SHUTDOWN";
            case OP_RW -> "RW";
            case OP_CREDIT_UPDATE -> "CREDIT_UPDATE";
            case OP_CREDIT_REQUEST -> "CREDIT_REQUEST";
            default -> "op " + op;
        };
    }
}
