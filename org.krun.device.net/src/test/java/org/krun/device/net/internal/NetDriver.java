package org.krun.device.net.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;

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
 * The guest's side of a virtio-net card for tests: its two queues in test memory, frames in and out, and
 * the device on a real event loop thread (its backend's descriptor is real), as in a VM. Every device and
 * queue call goes through the loop.
 */
final class NetDriver implements AutoCloseable {

    /** What Linux's driver accepts of a card without offloads. */
    static final long LINUX_FEATURES = VirtioFeatures.VERSION_1 | NetFeatures.MAC | NetFeatures.STATUS | NetFeatures.MTU
            | NetFeatures.MRG_RXBUF;

    final TestGuestMemory ram;
    final MockDriverQueue rx;
    final MockDriverQueue tx;
    final EpollEventLoop loop = new EpollEventLoop();
    private final Thread loopThread;
    final VirtioNet device;
    final long features;
    final List<Integer> interrupts = new CopyOnWriteArrayList<>();
    final List<String> resets = new CopyOnWriteArrayList<>();
    /** Frames received and not yet taken, header stripped. */
    private final List<byte[]> frames = new ArrayList<>();
    /** Headers of the frames received, in order. */
    final List<byte[]> headers = new ArrayList<>();
    private final List<MockDriverQueue.Used> partial = new ArrayList<>();
    private int txUsed;

    NetDriver(VirtioNet device, long features) {
        this(device, features, 64 << 20);
    }

    NetDriver(VirtioNet device, long features, long ramBytes) {
        this.device = device;
        this.features = features;
        ram = TestGuestMemory.create(ramBytes);
        rx = new MockDriverQueue(ram, VirtioNet.QUEUE_SIZE);
        tx = new MockDriverQueue(ram, VirtioNet.QUEUE_SIZE);
        loopThread = Thread.ofPlatform().name("net-test-loop").daemon(true).start(loop::run);
        DeviceContext context = new DeviceContext() {
            private final List<Virtqueue> queues = List.of(rx.configuredQueue(true), tx.configuredQueue(true));

            @Override
            public GuestMemory memory() {
                return ram.memory();
            }

            @Override
            public long driverFeatures() {
                return features;
            }

            @Override
            public List<Virtqueue> queues() {
                return queues;
            }

            @Override
            public InterruptTrigger interrupt() {
                return interrupts::add;
            }

            @Override
            public EventLoop eventLoop() {
                return loop;
            }

            @Override
            public void needsReset(String reason) {
                resets.add(reason);
            }
        };
        onLoop(() -> {
            device.activate(context);
            return null;
        });
    }

    <T> T onLoop(Callable<T> task) {
        return loop.call(task);
    }

    void onLoop(Runnable task) {
        loop.call(() -> {
            task.run();
            return null;
        });
    }

    /** A frame from the guest: a zero header (no offloads) and {@code frame}, in one buffer, as Linux sends. */
    void send(byte[] frame) {
        sendRaw(concat(new byte[VnetHeader.SIZE], frame));
    }

    /** Header and frame as the guest gives them, in one buffer. */
    void sendRaw(byte[] bytes) {
        sendChain(List.of(bytes));
    }

    /** One chain of readable buffers. */
    void sendChain(List<byte[]> buffers) {
        onLoop(() -> {
            tx.addChain(buffers, List.of());
            device.queueNotify(VirtioNet.TX);
        });
    }

    /** Transmit chains the device returned so far. */
    int txCompleted() {
        return onLoop(() -> {
            txUsed += tx.usedEntries().size();
            return txUsed;
        });
    }

    /** Posts {@code n} receive buffers of {@code size} bytes and kicks rx. */
    void postRx(int n, int size) {
        onLoop(() -> {
            for (int i = 0; i < n; i++) {
                rx.addWritable(size);
            }
            device.queueNotify(VirtioNet.RX);
        });
    }

    /** Frames received since the last call, merged from their buffers (num_buffers), header stripped. */
    List<byte[]> take() {
        return onLoop(() -> {
            partial.addAll(rx.usedEntries());
            while (!partial.isEmpty()) {
                MockDriverQueue.Used first = partial.get(0);
                if (first.len() < VnetHeader.SIZE) {
                    partial.remove(0); // an empty buffer: a length error to the driver
                    continue;
                }
                int buffers = ByteBuffer.wrap(first.written()).order(ByteOrder.LITTLE_ENDIAN).getShort(VnetHeader.NUM_BUFFERS) & 0xffff;
                if (buffers == 0 || partial.size() < buffers) {
                    break;
                }
                byte[] all = new byte[0];
                for (int i = 0; i < buffers; i++) {
                    MockDriverQueue.Used u = partial.remove(0);
                    all = concat(all, Arrays.copyOf(u.written(), u.len()));
                }
                headers.add(Arrays.copyOf(all, VnetHeader.SIZE));
                frames.add(Arrays.copyOfRange(all, VnetHeader.SIZE, all.length));
            }
            List<byte[]> out = new ArrayList<>(frames);
            frames.clear();
            return out;
        });
    }

    /** Receive buffers the device returned empty (a malformed buffer or one outside memory). */
    List<MockDriverQueue.Used> pendingUsed() {
        return onLoop(() -> new ArrayList<>(partial));
    }

    /** Waits up to {@code seconds} for {@code n} received frames and returns them. */
    List<byte[]> awaitFrames(int n, int seconds) throws InterruptedException {
        List<byte[]> got = new ArrayList<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (got.size() < n) {
            got.addAll(take());
            if (got.size() >= n) {
                break;
            }
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("got " + got.size() + " of " + n + " frames within " + seconds + " s");
            }
            Thread.sleep(2);
        }
        return got;
    }

    static void await(BooleanSupplier condition, int seconds, String what) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(seconds);
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                throw new AssertionError("not within " + seconds + " s: " + what);
            }
            Thread.sleep(2);
        }
    }

    /** The card's link status as the driver reads it. */
    int status() {
        byte[] b = new byte[2];
        device.readConfig(VirtioNet.CONFIG_STATUS, b);
        return (b[0] & 0xff) | (b[1] & 0xff) << 8;
    }

    static byte[] concat(byte[] a, byte[] b) {
        byte[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    /** An Ethernet frame of {@code length} bytes: addresses, type 0x88b5 (local experimental), then {@code fill}. */
    static byte[] frame(int length, int fill) {
        byte[] f = new byte[length];
        for (int i = 0; i < 6; i++) {
            f[i] = (byte) 0xff;
            f[6 + i] = (byte) (0x02 + i);
        }
        f[12] = (byte) 0x88;
        f[13] = (byte) 0xb5;
        for (int i = 14; i < length; i++) {
            f[i] = (byte) (fill + i * 7);
        }
        return f;
    }

    @Override
    public void close() throws InterruptedException {
        onLoop(device::close);
        loop.stop();
        loopThread.join(5000);
        loop.close();
        ram.close();
    }
}
