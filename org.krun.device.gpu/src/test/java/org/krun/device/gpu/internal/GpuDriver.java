package org.krun.device.gpu.internal;

import static org.krun.device.gpu.internal.GpuProtocol.*;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.FakeDeviceContext;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;

/**
 * The driver's side of a virtio-gpu for unit tests, as drivers/gpu/drm/virtio/virtgpu_vq.c drives it:
 * each command one device-readable buffer (attach backing: the entries in a second one) and a
 * device-writable buffer for the response; cursor commands without a response buffer.
 */
final class GpuDriver implements AutoCloseable {

    final TestGuestMemory ram;
    final MockDriverQueue control;
    final MockDriverQueue cursor;
    final VirtioGpu gpu;
    final FakeDeviceContext context;

    GpuDriver(VirtioGpu gpu, long ramBytes) {
        this(gpu, ramBytes, F_EDID);
    }

    /** A driver that negotiated {@code gpuFeatures} (F_EDID, F_VIRGL) besides VERSION_1. */
    GpuDriver(VirtioGpu gpu, long ramBytes, long gpuFeatures) {
        this(gpu, ramBytes, gpuFeatures, null);
    }

    /** With {@code hostVisible} offered as the device's shared memory region (null: none). */
    GpuDriver(VirtioGpu gpu, long ramBytes, long gpuFeatures, org.krun.spi.virtio.SharedMemory hostVisible) {
        this(gpu, TestGuestMemory.create(ramBytes), gpuFeatures, hostVisible);
    }

    /** In {@code ram} (cleared first): a driver that activates {@code gpu} again after a reset (fuzzing). */
    GpuDriver(VirtioGpu gpu, TestGuestMemory ram, long gpuFeatures, org.krun.spi.virtio.SharedMemory hostVisible) {
        this.gpu = gpu;
        this.ram = ram;
        ram.clear();
        this.control = new MockDriverQueue(ram, VirtioGpu.QUEUE_SIZE);
        this.cursor = new MockDriverQueue(ram, VirtioGpu.QUEUE_SIZE);
        this.context = new FakeDeviceContext(ram.memory(), VirtioFeatures.VERSION_1 | gpuFeatures,
                List.of(control.configuredQueue(), cursor.configuredQueue()));
        if (hostVisible != null) {
            context.withSharedMemory(hostVisible);
        }
        gpu.activate(context);
    }

    /** A response as the driver reads it. */
    record Reply(int type, int flags, long fenceId, ByteBuffer body) {
    }

    static ByteBuffer command(int type, int bodySize) {
        ByteBuffer b = ByteBuffer.allocate(HDR_SIZE + bodySize).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(0, type);
        return b;
    }

    /** Sends {@code request} on the control queue with {@code responseSize} bytes for the answer. */
    Reply send(ByteBuffer request, List<byte[]> more, int responseSize) {
        List<byte[]> readable = new java.util.ArrayList<>();
        readable.add(request.array());
        readable.addAll(more);
        int head = control.addChain(readable, List.of(responseSize));
        gpu.queueNotify(VirtioGpu.CONTROLQ);
        List<MockDriverQueue.Used> used = control.usedEntries();
        if (used.size() != 1 || used.get(0).id() != head) {
            throw new AssertionError("expected chain " + head + " back, got " + used);
        }
        byte[] w = used.get(0).written();
        if (w.length < HDR_SIZE) {
            return new Reply(-1, 0, 0, ByteBuffer.allocate(0));
        }
        ByteBuffer b = ByteBuffer.wrap(w).order(ByteOrder.LITTLE_ENDIAN);
        return new Reply(b.getInt(0), b.getInt(4), b.getLong(8), b.slice(HDR_SIZE, w.length - HDR_SIZE).order(ByteOrder.LITTLE_ENDIAN));
    }

    /**
     * Sends {@code request} on the control queue through the event loop and waits (at most 30 s) for its
     * answer, which a virgl device gives from its renderer's thread, at once or when its fence is signalled.
     */
    Reply sendAndWait(ByteBuffer request, List<byte[]> more, int responseSize) {
        List<byte[]> readable = new java.util.ArrayList<>();
        readable.add(request.array());
        readable.addAll(more);
        int head;
        synchronized (context.eventLoop()) { // the loop's lock: completions come from the renderer thread
            head = control.addChain(readable, List.of(responseSize));
        }
        context.eventLoop().execute(() -> gpu.queueNotify(VirtioGpu.CONTROLQ));
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (System.nanoTime() < deadline) {
            List<MockDriverQueue.Used> used;
            synchronized (context.eventLoop()) {
                used = control.usedEntries();
            }
            if (!used.isEmpty()) {
                if (used.size() != 1 || used.get(0).id() != head) {
                    throw new AssertionError("expected chain " + head + " back, got " + used);
                }
                byte[] w = used.get(0).written();
                if (w.length < HDR_SIZE) {
                    return new Reply(-1, 0, 0, ByteBuffer.allocate(0));
                }
                ByteBuffer b = ByteBuffer.wrap(w).order(ByteOrder.LITTLE_ENDIAN);
                return new Reply(b.getInt(0), b.getInt(4), b.getLong(8),
                        b.slice(HDR_SIZE, w.length - HDR_SIZE).order(ByteOrder.LITTLE_ENDIAN));
            }
            Thread.onSpinWait();
            try {
                Thread.sleep(1);
            } catch (InterruptedException e) {
                throw new AssertionError(e);
            }
        }
        throw new AssertionError("no answer to chain " + head + " within 30 s");
    }

    Reply send(ByteBuffer request) {
        return send(request, List.of(), HDR_SIZE);
    }

    int create(int id, int format, int width, int height) {
        ByteBuffer b = command(CMD_RESOURCE_CREATE_2D, 16);
        b.putInt(24, id).putInt(28, format).putInt(32, width).putInt(36, height);
        return send(b).type();
    }

    int unref(int id) {
        return send(command(CMD_RESOURCE_UNREF, 8).putInt(24, id)).type();
    }

    /** Attaches guest ranges {@code (address, length)} pairs as backing. */
    int attach(int id, long... addressLengthPairs) {
        int n = addressLengthPairs.length / 2;
        ByteBuffer b = command(CMD_RESOURCE_ATTACH_BACKING, 8);
        b.putInt(24, id).putInt(28, n);
        ByteBuffer e = ByteBuffer.allocate(n * MEM_ENTRY_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++) {
            e.putLong(i * MEM_ENTRY_SIZE, addressLengthPairs[2 * i]).putInt(i * MEM_ENTRY_SIZE + 8, (int) addressLengthPairs[2 * i + 1]);
        }
        return send(b, n == 0 ? List.of() : List.of(e.array()), HDR_SIZE).type();
    }

    int detach(int id) {
        return send(command(CMD_RESOURCE_DETACH_BACKING, 8).putInt(24, id)).type();
    }

    int setScanout(int scanout, int id, int x, int y, int w, int h) {
        ByteBuffer b = command(CMD_SET_SCANOUT, 24);
        b.putInt(24, x).putInt(28, y).putInt(32, w).putInt(36, h).putInt(40, scanout).putInt(44, id);
        return send(b).type();
    }

    int transfer(int id, long offset, int x, int y, int w, int h) {
        ByteBuffer b = command(CMD_TRANSFER_TO_HOST_2D, 32);
        b.putInt(24, x).putInt(28, y).putInt(32, w).putInt(36, h).putLong(40, offset).putInt(48, id);
        return send(b).type();
    }

    int flush(int id, int x, int y, int w, int h) {
        ByteBuffer b = command(CMD_RESOURCE_FLUSH, 24);
        b.putInt(24, x).putInt(28, y).putInt(32, w).putInt(36, h).putInt(40, id);
        return send(b).type();
    }

    /** Sends a cursor command as Linux does: readable only. */
    void cursor(boolean move, int scanout, int x, int y, int id, int hotX, int hotY) {
        ByteBuffer b = command(move ? CMD_MOVE_CURSOR : CMD_UPDATE_CURSOR, 32);
        b.putInt(24, scanout).putInt(28, x).putInt(32, y).putInt(40, id).putInt(44, hotX).putInt(48, hotY);
        int head = cursor.addReadable(b.array());
        gpu.queueNotify(VirtioGpu.CURSORQ);
        List<MockDriverQueue.Used> used = cursor.usedEntries();
        if (used.size() != 1 || used.get(0).id() != head || used.get(0).len() != 0) {
            throw new AssertionError("cursor chain " + head + " not returned empty: " + used);
        }
    }

    @Override
    public void close() {
        gpu.close();
        ram.close();
    }
}
