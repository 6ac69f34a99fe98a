package org.krun.device.net.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED;

import java.lang.foreign.MemorySegment;

/**
 * struct virtio_net_hdr (virtio 1.2 §5.1.6), the 12 bytes before every frame on both queues (with VERSION_1
 * the header always has {@code num_buffers}): flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
 * num_buffers, little-endian. Read in place, from the buffer a frame was copied into: nothing is allocated.
 */
final class VnetHeader {

    static final int SIZE = 12;
    static final int FLAGS = 0;
    static final int GSO_TYPE = 1;
    static final int HDR_LEN = 2;
    static final int GSO_SIZE = 4;
    static final int CSUM_START = 6;
    static final int CSUM_OFFSET = 8;
    static final int NUM_BUFFERS = 10;

    static final int F_NEEDS_CSUM = 1;
    static final int F_DATA_VALID = 2;
    static final int GSO_NONE = 0;
    static final int GSO_TCPV4 = 1;
    static final int GSO_UDP = 3;
    static final int GSO_TCPV6 = 4;
    static final int GSO_ECN = 0x80;

    /** An Ethernet header: the shortest frame worth passing on. */
    static final int ETH_HLEN = 14;
    /**
     * The largest frame (without this header) either way: a 64 KiB GSO frame with its Ethernet and VLAN
     * headers, and passt's 65520-byte MTU plus Ethernet header, both fit.
     */
    static final int MAX_FRAME = 65536 + 32;

    private VnetHeader() {
    }

    /**
     * Why the driver's frame of {@code length} bytes (this header included) at {@code offset} of {@code buf}
     * cannot go out, or null when it can: a header that asks for an offload the driver did not negotiate
     * ({@code features}) or names ranges outside the frame, and frames shorter than an Ethernet header or
     * longer than {@link #MAX_FRAME}. A backend without vnet headers ({@code vnetBackend} false) is offered
     * no offloads, so any offload request is refused there.
     */
    static String checkTx(MemorySegment buf, long offset, long length, long features, boolean vnetBackend) {
        if (length < SIZE + ETH_HLEN) {
            return "frame of " + length + " bytes with its header is shorter than the " + (SIZE + ETH_HLEN) + " it needs";
        }
        long frame = length - SIZE;
        if (frame > MAX_FRAME) {
            return "frame of " + frame + " bytes is longer than " + MAX_FRAME;
        }
        int flags = buf.get(JAVA_BYTE, offset + FLAGS) & 0xff;
        int gso = buf.get(JAVA_BYTE, offset + GSO_TYPE) & 0xff;
        if ((flags & ~F_NEEDS_CSUM) != 0) {
            return "header flags " + flags + " are not the driver's to set";
        }
        if ((flags & F_NEEDS_CSUM) != 0) {
            if (!vnetBackend || (features & NetFeatures.CSUM) == 0) {
                return "header asks for a checksum offload that was not negotiated";
            }
            int start = u16(buf, offset + CSUM_START);
            int off = u16(buf, offset + CSUM_OFFSET);
            if ((long) start + off + 2 > frame) {
                return "checksum at " + start + "+" + off + " lies outside the " + frame + "-byte frame";
            }
        }
        if (gso != GSO_NONE) {
            long needed = switch (gso & ~GSO_ECN) {
                case GSO_TCPV4 -> NetFeatures.HOST_TSO4;
                case GSO_TCPV6 -> NetFeatures.HOST_TSO6;
                case GSO_UDP -> NetFeatures.HOST_UFO;
                default -> -1;
            };
            if (needed < 0) {
                return "unknown gso_type " + gso;
            }
            if ((gso & GSO_ECN) != 0) {
                needed |= NetFeatures.HOST_ECN;
            }
            if (!vnetBackend || (features & needed) != needed) {
                return "header asks for segmentation offload " + gso + " that was not negotiated";
            }
            if (u16(buf, offset + GSO_SIZE) == 0) {
                return "segmentation offload with a gso_size of 0";
            }
            if (u16(buf, offset + HDR_LEN) > frame) {
                return "hdr_len " + u16(buf, offset + HDR_LEN) + " is longer than the " + frame + "-byte frame";
            }
        }
        return null;
    }

    /** Whether a header the host's TAP wrote asks only for what the driver accepted ({@code features}). */
    static boolean fitsRx(MemorySegment buf, long offset, long features) {
        int gso = buf.get(JAVA_BYTE, offset + GSO_TYPE) & 0xff;
        if (gso == GSO_NONE) {
            return true;
        }
        long needed = switch (gso & ~GSO_ECN) {
            case GSO_TCPV4 -> NetFeatures.GUEST_TSO4;
            case GSO_TCPV6 -> NetFeatures.GUEST_TSO6;
            case GSO_UDP -> NetFeatures.GUEST_UFO;
            default -> -1;
        };
        if ((gso & GSO_ECN) != 0) {
            needed |= NetFeatures.GUEST_ECN;
        }
        return needed >= 0 && (features & needed) == needed;
    }

    static int u16(MemorySegment buf, long at) {
        return buf.get(JAVA_SHORT_UNALIGNED, at) & 0xffff;
    }

    /** Writes a header for a frame the device hands the driver in {@code numBuffers} buffers. */
    static void writeRx(MemorySegment to, long at, int numBuffers) {
        to.asSlice(at, SIZE).fill((byte) 0);
        to.set(JAVA_SHORT_UNALIGNED, at + NUM_BUFFERS, (short) numBuffers);
    }
}
