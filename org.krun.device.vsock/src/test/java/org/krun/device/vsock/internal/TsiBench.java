package org.krun.device.vsock.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.concurrent.atomic.AtomicLong;

import org.krun.api.VsockSpec;
import org.krun.posix.SockAddr;
import org.krun.spi.virtio.MockDriverQueue;

/**
 * bench/net part 1, on any host: the vsock device's transparent socket impersonation in-process, no guest.
 * A driver thread plays the guest kernel through the driver-side mock queues (fixed rx and tx buffers
 * reused, the vsock credit honoured both ways) against servers on the host's loopback; the device runs on
 * its event loop as in a VM. MiB/s guest->host and host->guest, and TSI connections/s (vsock connect,
 * CONNECT request, the host's TCP connect and accept, the answer, reset).
 *
 * Usage: TsiBench MIB CONNECTIONS
 */
public final class TsiBench {
    private static final long TSI = Tsi.PORT;
    private static final int PAYLOAD = 64 * 1024;
    private static final long GUEST_BUF_ALLOC = 256 * 1024;
    private static final byte[] HOST_ALIAS = {(byte) 192, 0, 2, 1};

    private final VsockDriver driver = new VsockDriver(VsockSpec.create().withTsi(VsockSpec.Tsi.INET), 8 << 20);
    private final MockDriverQueue rx = driver.rx;
    private final MockDriverQueue tx = driver.tx;
    private final long rxBase;
    private final long txBuffer;
    private long nextPort = 10_000;

    private TsiBench() {
        rxBase = driver.ram.allocate((long) VsockDriver.RX_BUFFER * rx.size(), 8);
        txBuffer = driver.ram.allocate(VsockHeader.SIZE + PAYLOAD, 8);
        driver.onLoop(() -> {
            while (rx.freeDescriptorCount() > 0) {
                postRx();
            }
            driver.device.queueNotify(VirtioVsock.RX);
            return null;
        });
    }

    public static void main(String[] args) throws Exception {
        long bytes = Long.parseLong(args[0]) << 20;
        int connections = Integer.parseInt(args[1]);
        TsiBench b = new TsiBench();
        try {
            System.out.printf("%-44s %12s%n", "in-process (" + (bytes >> 20) + " MiB, " + connections + " connections)", "");
            System.out.printf("%-44s %12.1f%n", "guest -> host, MiB/s", b.guestToHost(bytes));
            System.out.printf("%-44s %12.1f%n", "host -> guest, MiB/s", b.hostToGuest(bytes));
            System.out.printf("%-44s %12.0f%n", "connections/s (connect, answer, reset)", b.connectRate(connections));
        } finally {
            b.driver.close();
        }
    }

    // ---- the driver's side of the queues, on the device's loop thread

    /** One rx buffer: descriptor d always points at the d-th slot of the rx area. */
    private void postRx() {
        int d = rx.reserveDescriptors(1)[0];
        rx.writeDescriptor(d, rxBase + (long) d * VsockDriver.RX_BUFFER, VsockDriver.RX_BUFFER, MockDriverQueue.DESC_F_WRITE, 0);
        rx.makeAvailable(d);
    }

    private interface PacketSink {
        void packet(VsockHeader h, MemorySegment payload);
    }

    /** Hands each packet the device delivered to {@code sink} and posts its buffer again. */
    private void drainRx(PacketSink sink) {
        int n = 0;
        for (MockDriverQueue.Used u : rx.usedEntries()) {
            if (u.len() >= VsockHeader.SIZE) { // the device may hand a buffer back unused
                MemorySegment buf = driver.ram.memory().slice(rxBase + (long) u.id() * VsockDriver.RX_BUFFER, u.len());
                VsockHeader h = VsockHeader.decode(buf.asSlice(0, VsockHeader.SIZE).toArray(ValueLayout.JAVA_BYTE));
                sink.packet(h, buf.asSlice(VsockHeader.SIZE, u.len() - VsockHeader.SIZE));
            }
            postRx();
            n++;
        }
        if (n > 0) {
            driver.device.queueNotify(VirtioVsock.RX);
        }
    }

    /** Sends one packet from the guest with {@code payloadLength} bytes of the tx buffer (or {@code data}). */
    private void send(int op, long srcPort, long dstPort, byte[] data, int payloadLength, int flags, long fwdCnt) {
        int len = data != null ? data.length : payloadLength;
        VsockHeader h = new VsockHeader(VsockDriver.GUEST_CID, VsockSession.HOST_CID, srcPort, dstPort, len,
                VsockHeader.TYPE_STREAM, op, flags, GUEST_BUF_ALLOC, fwdCnt);
        MemorySegment buf = driver.ram.memory().slice(txBuffer, VsockHeader.SIZE + PAYLOAD);
        MemorySegment.copy(h.encode(), 0, buf, ValueLayout.JAVA_BYTE, 0, VsockHeader.SIZE);
        if (data != null) {
            MemorySegment.copy(data, 0, buf, ValueLayout.JAVA_BYTE, VsockHeader.SIZE, len);
        }
        int d = tx.reserveDescriptors(1)[0];
        tx.writeDescriptor(d, txBuffer, VsockHeader.SIZE + len, 0, 0);
        tx.makeAvailable(d);
        driver.device.queueNotify(VirtioVsock.TX);
        tx.usedEntries(); // the device took the packet (tx is handled in queueNotify): the buffer is ours again
    }

    /**
     * A TSI connection from guest port {@code port}: vsock connect, then the request for 127.0.0.1:hostPort.
     * Returns the request's length: bytes of the stream, which the device's fwd_cnt counts too.
     */
    private int connect(long port, int hostPort) throws InterruptedException {
        driver.onLoop(() -> {
            send(VsockHeader.OP_REQUEST, port, TSI, new byte[0], 0, 0, 0);
            return null;
        });
        await(port, VsockHeader.OP_RESPONSE);
        byte[] request = TsiTest.request(TsiMessages.OP_CONNECT, SockAddr.AF_INET, hostPort, HOST_ALIAS, 0, 0);
        driver.onLoop(() -> {
            send(VsockHeader.OP_RW, port, TSI, request, 0, 0, 0);
            return null;
        });
        return request.length;
    }

    /** Polls the rx queue until a packet of {@code op} arrives for {@code port}; fails on a reset. */
    private VsockHeader await(long port, int op) throws InterruptedException {
        VsockHeader[] got = new VsockHeader[1];
        long deadline = System.nanoTime() + 10_000_000_000L;
        while (got[0] == null) {
            driver.onLoop(() -> {
                drainRx((h, p) -> {
                    if (h.dstPort() == port && got[0] == null && (h.op() == op || h.op() == VsockHeader.OP_RST)) {
                        got[0] = h;
                    }
                });
                return null;
            });
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no " + VsockHeader.opName(op) + " for port " + port + " within 10 s");
            }
        }
        if (got[0].op() != op) {
            throw new IllegalStateException("port " + port + " was reset");
        }
        return got[0];
    }

    // ---- the three measurements

    double guestToHost(long bytes) throws Exception {
        AtomicLong sunk = new AtomicLong();
        try (ServerSocket sink = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            Thread.ofPlatform().daemon(true).start(() -> {
                try (Socket c = sink.accept(); InputStream in = c.getInputStream()) {
                    byte[] buf = new byte[256 * 1024];
                    for (int r; (r = in.read(buf)) > 0;) {
                        sunk.addAndGet(r);
                    }
                } catch (IOException e) {
                    // reported as bytes missing
                }
            });
            long port = nextPort++;
            int request = connect(port, sink.getLocalPort());
            VsockHeader answer = await(port, VsockHeader.OP_RW); // the TSI response (status 0)
            long[] peer = {answer.bufAlloc(), answer.fwdCnt()};
            long[] sent = {0};
            long t0 = System.nanoTime();
            boolean[] shut = {false};
            while (sunk.get() < bytes) {
                driver.onLoop(() -> {
                    drainRx((h, p) -> {
                        if (h.dstPort() == port) {
                            peer[0] = h.bufAlloc();
                            peer[1] = h.fwdCnt();
                        }
                    });
                    long credit;
                    // in flight: every byte of the stream (the request's too) less what the device forwarded
                    while (sent[0] < bytes && (credit = peer[0] - (request + sent[0] - peer[1])) > 0) {
                        int n = (int) Math.min(Math.min(PAYLOAD, credit), bytes - sent[0]);
                        send(VsockHeader.OP_RW, port, TSI, null, n, 0, 0);
                        sent[0] += n;
                    }
                    if (sent[0] == bytes && !shut[0]) {
                        send(VsockHeader.OP_SHUTDOWN, port, TSI, new byte[0], 0, VsockHeader.SHUTDOWN_SEND, 0);
                        shut[0] = true;
                    }
                    return null;
                });
                if (System.nanoTime() - t0 > 120_000_000_000L) {
                    throw new IllegalStateException("guest -> host: " + sunk.get() + " of " + bytes + " bytes after 120 s");
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            reset(port);
            return bytes / 1048576.0 / seconds;
        }
    }

    double hostToGuest(long bytes) throws Exception {
        try (ServerSocket source = new ServerSocket(0, 4, InetAddress.getLoopbackAddress())) {
            Thread.ofPlatform().daemon(true).start(() -> {
                try (Socket c = source.accept(); OutputStream o = c.getOutputStream()) {
                    byte[] buf = new byte[256 * 1024];
                    for (long sent = 0; sent < bytes; sent += buf.length) {
                        o.write(buf, 0, (int) Math.min(buf.length, bytes - sent));
                    }
                } catch (IOException e) {
                    // reported as bytes missing
                }
            });
            long port = nextPort++;
            long t0 = System.nanoTime();
            connect(port, source.getLocalPort());
            long[] got = {-12 - 4}; // the TSI response comes first on the stream
            long[] fwd = {0, 0}; // consumed, advertised
            while (got[0] < bytes) {
                driver.onLoop(() -> {
                    drainRx((h, p) -> {
                        if (h.dstPort() == port && h.op() == VsockHeader.OP_RW) {
                            got[0] += h.len();
                            fwd[0] += h.len();
                        }
                    });
                    if (fwd[0] - fwd[1] >= GUEST_BUF_ALLOC / 4) {
                        send(VsockHeader.OP_CREDIT_UPDATE, port, TSI, new byte[0], 0, 0, fwd[0]);
                        fwd[1] = fwd[0];
                    }
                    return null;
                });
                if (System.nanoTime() - t0 > 120_000_000_000L) {
                    throw new IllegalStateException("host -> guest: " + got[0] + " of " + bytes + " bytes after 120 s");
                }
            }
            double seconds = (System.nanoTime() - t0) / 1e9;
            reset(port);
            return bytes / 1048576.0 / seconds;
        }
    }

    double connectRate(int connections) throws Exception {
        try (ServerSocket closer = new ServerSocket(0, 512, InetAddress.getLoopbackAddress())) {
            Thread.ofPlatform().daemon(true).start(() -> {
                while (true) {
                    try {
                        closer.accept().close();
                    } catch (IOException e) {
                        return;
                    }
                }
            });
            long t0 = System.nanoTime();
            for (int i = 0; i < connections; i++) {
                long port = nextPort++;
                connect(port, closer.getLocalPort());
                await(port, VsockHeader.OP_RW); // the TSI response
                reset(port);
            }
            return connections / ((System.nanoTime() - t0) / 1e9);
        }
    }

    private void reset(long port) {
        driver.onLoop(() -> {
            send(VsockHeader.OP_RST, port, TSI, new byte[0], 0, 0, 0);
            return null;
        });
    }
}
