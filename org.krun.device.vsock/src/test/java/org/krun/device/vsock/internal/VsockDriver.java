package org.krun.device.vsock.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

import org.krun.api.VsockSpec;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DeviceContext;
import org.krun.spi.virtio.EventLoop;
import org.krun.spi.virtio.InterruptTrigger;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.VirtioFeatures;
import org.krun.spi.virtio.Virtqueue;
import org.krun.vmm.internal.event.EpollEventLoop;

/**
 * The guest's side of a vsock device for tests: its three queues in test memory, packets in and out as
 * {@link Packet}s, and the device running on a real event loop thread (host sockets are real), as in a VM.
 * Every device call goes through the loop.
 */
final class VsockDriver implements AutoCloseable {
    static final long GUEST_CID = 3;
    static final int RX_BUFFER = 4096 + VsockHeader.SIZE;

    /** A packet as the guest sees it. */
    record Packet(VsockHeader header, byte[] payload) {
        int op() {
            return header.op();
        }

        @Override
        public String toString() {
            return VsockHeader.opName(header.op()) + " " + header.srcPort() + "->" + header.dstPort() + " len "
                    + header.len() + " flags " + header.flags() + " buf_alloc " + header.bufAlloc() + " fwd "
                    + header.fwdCnt();
        }
    }

    final TestGuestMemory ram;
    final MockDriverQueue rx;
    final MockDriverQueue tx;
    final MockDriverQueue event;
    final EpollEventLoop loop = new EpollEventLoop();
    private final Thread loopThread;
    volatile VirtioVsock device;
    private volatile List<Virtqueue> deviceQueues;
    final List<Packet> received = new ArrayList<>();
    /** Rx buffers the device gave back without a packet in them. */
    int emptyRx;
    private int rxUsedSeen;

    VsockDriver(VsockSpec spec) {
        this(spec, 16 << 20);
    }

    VsockDriver(VsockSpec spec, long ramBytes) {
        ram = TestGuestMemory.create(ramBytes);
        rx = new MockDriverQueue(ram, 256);
        tx = new MockDriverQueue(ram, 256);
        event = new MockDriverQueue(ram, 16);
        loopThread = Thread.ofPlatform().name("vsock-test-loop").daemon(true).start(loop::run);
        device = (VirtioVsock) new VsockFactory().create(spec);
        deviceQueues = List.of(rx.configuredQueue(), tx.configuredQueue(), event.configuredQueue());
        DeviceContext context = context(deviceQueues);
        onLoop(() -> {
            device.activate(context);
            return null;
        });
    }

    private DeviceContext context(List<Virtqueue> queues) {
        return new DeviceContext() {
            @Override
            public GuestMemory memory() {
                return ram.memory();
            }

            @Override
            public long driverFeatures() {
                return VirtioFeatures.VERSION_1;
            }

            @Override
            public List<Virtqueue> queues() {
                return queues;
            }

            @Override
            public InterruptTrigger interrupt() {
                return reasons -> { };
            }

            @Override
            public EventLoop eventLoop() {
                return loop;
            }

            @Override
            public void needsReset(String reason) {
                throw new AssertionError("device asked for a reset: " + reason);
            }
        };
    }

    /**
     * What a restored VM does: the old device closed, a new one made from {@code spec} activated with the
     * queues at the indices the old one left, given {@code state}, then notified as the transport does.
     */
    void restore(VsockSpec spec, byte[] state) {
        onLoop(() -> {
            List<Virtqueue.Indices> saved = deviceQueues.stream().map(Virtqueue::indices).toList();
            device.close();
            VirtioVsock fresh = (VirtioVsock) new VsockFactory().create(spec);
            List<Virtqueue> queues = List.of(new Virtqueue(rx.layout(), false), new Virtqueue(tx.layout(), false),
                    new Virtqueue(event.layout(), false));
            for (int i = 0; i < queues.size(); i++) {
                queues.get(i).restoreIndices(saved.get(i));
            }
            deviceQueues = queues;
            device = fresh;
            fresh.activate(context(queues));
            fresh.restoreState(state);
            for (int i = 0; i < queues.size(); i++) {
                fresh.queueNotify(i);
            }
            return null;
        });
    }

    <T> T onLoop(Callable<T> task) {
        return loop.call(task);
    }

    /** Posts {@code n} rx buffers of {@code size} bytes and kicks the device. */
    void postRx(int n, int size) {
        onLoop(() -> {
            for (int i = 0; i < n; i++) {
                rx.addWritable(size);
            }
            device.queueNotify(VirtioVsock.RX);
            return null;
        });
    }

    /** Sends a packet from the guest (header and payload in one buffer, as Linux does) and kicks tx. */
    void send(int op, long srcPort, long dstPort, byte[] payload, int flags, long bufAlloc, long fwdCnt) {
        VsockHeader h = new VsockHeader(GUEST_CID, VsockSession.HOST_CID, srcPort, dstPort, payload.length,
                VsockHeader.TYPE_STREAM, op, flags, bufAlloc, fwdCnt);
        byte[] bytes = Arrays.copyOf(h.encode(), VsockHeader.SIZE + payload.length);
        System.arraycopy(payload, 0, bytes, VsockHeader.SIZE, payload.length);
        sendRaw(bytes);
    }

    void send(int op, long srcPort, long dstPort) {
        send(op, srcPort, dstPort, new byte[0], 0, 256 * 1024, 0);
    }

    void sendRaw(byte[] bytes) {
        onLoop(() -> {
            tx.addReadable(bytes);
            device.queueNotify(VirtioVsock.TX);
            tx.usedEntries(); // frees the descriptors
            return null;
        });
    }

    /** Packets the device put into rx buffers since the last call. */
    List<Packet> take() {
        return onLoop(() -> {
            List<Packet> out = new ArrayList<>();
            for (MockDriverQueue.Used u : rx.usedEntries()) {
                if (u.len() < VsockHeader.SIZE) {
                    emptyRx++;
                    continue;
                }
                VsockHeader h = VsockHeader.decode(Arrays.copyOf(u.written(), VsockHeader.SIZE));
                out.add(new Packet(h, Arrays.copyOfRange(u.written(), VsockHeader.SIZE, u.len())));
            }
            received.addAll(out);
            return out;
        });
    }

    /** Waits (up to 10 s) for a received packet matching {@code which}, taking packets as they come. */
    Packet await(Predicate<Packet> which) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
        while (true) {
            for (Packet p : received) {
                if (which.test(p)) {
                    received.remove(p);
                    return p;
                }
            }
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("no such packet within 10 s; got " + received);
            }
            take();
            if (received.stream().noneMatch(which)) {
                Thread.sleep(5);
            }
        }
    }

    Packet await(int op) throws InterruptedException {
        return await(p -> p.op() == op);
    }

    static int le32(byte[] b, int at) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN).getInt(at);
    }

    @Override
    public void close() throws InterruptedException {
        onLoop(() -> {
            device.close();
            return null;
        });
        loop.stop();
        loopThread.join(5000);
        loop.close();
        ram.close();
    }
}
