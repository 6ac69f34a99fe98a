package org.krun.device.net.internal;

/** virtio-net feature bits (virtio 1.2 §5.1.3), as masks. */
final class NetFeatures {
    /** The device handles frames with a partial checksum (the driver may leave it to us). */
    static final long CSUM = 1L << 0;
    /** The driver handles frames with a partial checksum (we may hand it such frames). */
    static final long GUEST_CSUM = 1L << 1;
    /** The device reports its largest MTU in {@code mtu}. */
    static final long MTU = 1L << 3;
    /** The device has a MAC address in {@code mac}. */
    static final long MAC = 1L << 5;
    static final long GUEST_TSO4 = 1L << 7;
    static final long GUEST_TSO6 = 1L << 8;
    static final long GUEST_ECN = 1L << 9;
    static final long GUEST_UFO = 1L << 10;
    static final long HOST_TSO4 = 1L << 11;
    static final long HOST_TSO6 = 1L << 12;
    static final long HOST_ECN = 1L << 13;
    static final long HOST_UFO = 1L << 14;
    /** The driver can merge receive buffers: one frame may span several (num_buffers). */
    static final long MRG_RXBUF = 1L << 15;
    /** {@code status} (link up) is valid. */
    static final long STATUS = 1L << 16;

    /** Offloads of frames the device hands the driver. */
    static final long GUEST_OFFLOADS = GUEST_CSUM | GUEST_TSO4 | GUEST_TSO6 | GUEST_ECN | GUEST_UFO;
    /** Offloads of frames the driver hands the device. */
    static final long HOST_OFFLOADS = CSUM | HOST_TSO4 | HOST_TSO6 | HOST_ECN | HOST_UFO;

    private NetFeatures() {
    }
}
