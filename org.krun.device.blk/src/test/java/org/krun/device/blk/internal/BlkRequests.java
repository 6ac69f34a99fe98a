package org.krun.device.blk.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;

import org.krun.spi.virtio.MockDriverQueue;

/** Builds virtio-blk requests on a {@link MockDriverQueue}, as the Linux driver lays them out. */
final class BlkRequests {

    private BlkRequests() {
    }

    static byte[] header(int type, long sector) {
        return ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putInt(type).putInt(0).putLong(sector).array();
    }

    /** struct virtio_blk_discard_write_zeroes entries: {sector, numSectors, flags} triples. */
    static byte[] ranges(long... sectorCountFlags) {
        ByteBuffer b = ByteBuffer.allocate(16 * (sectorCountFlags.length / 3)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < sectorCountFlags.length; i += 3) {
            b.putLong(sectorCountFlags[i]).putInt((int) sectorCountFlags[i + 1]).putInt((int) sectorCountFlags[i + 2]);
        }
        return b.array();
    }

    static int read(MockDriverQueue q, long sector, int bytes) {
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_IN, sector)), List.of(bytes, 1));
    }

    /** A read whose data is spread over several writable buffers of {@code sizes}. */
    static int readScattered(MockDriverQueue q, long sector, int... sizes) {
        List<Integer> w = new ArrayList<>();
        for (int s : sizes) {
            w.add(s);
        }
        w.add(1);
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_IN, sector)), w);
    }

    static int write(MockDriverQueue q, long sector, byte[] data) {
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_OUT, sector), data), List.of(1));
    }

    static int flush(MockDriverQueue q) {
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_FLUSH, 0)), List.of(1));
    }

    static int getId(MockDriverQueue q, int bytes) {
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_GET_ID, 0)), List.of(bytes, 1));
    }

    static int discard(MockDriverQueue q, long... sectorCountFlags) {
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_DISCARD, 0), ranges(sectorCountFlags)), List.of(1));
    }

    static int writeZeroes(MockDriverQueue q, long... sectorCountFlags) {
        return q.addChain(List.of(header(BlkRequest.VIRTIO_BLK_T_WRITE_ZEROES, 0), ranges(sectorCountFlags)),
                List.of(1));
    }

    /** The status byte of a returned chain (the last byte the device wrote). */
    static int status(MockDriverQueue.Used u) {
        if (u.len() == 0 || u.written().length < u.len()) {
            throw new AssertionError("chain " + u.id() + " returned without a status byte (len " + u.len() + ")");
        }
        return u.written()[u.len() - 1] & 0xff;
    }

    /** The status byte of a returned chain, or 0 when it came back without one. */
    static int statusOrZero(MockDriverQueue.Used u) {
        return u.len() == 0 || u.written().length < u.len() ? 0 : u.written()[u.len() - 1] & 0xff;
    }

    static byte[] pattern(int length, long seed) {
        byte[] b = new byte[length];
        new java.util.Random(seed).nextBytes(b);
        return b;
    }
}
