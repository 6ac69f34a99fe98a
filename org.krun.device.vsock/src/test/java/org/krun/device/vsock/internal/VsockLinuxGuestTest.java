package org.krun.device.vsock.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmExit;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One boot of krun's kernel with a vsock device: vsockcheck (src/test/guest) sends a stream to a host unix
 * socket through a port map and receives one from a host client through a listen map, both byte-exact,
 * and each side sees the other's end of stream.
 */
class VsockLinuxGuestTest {
    private static final long TO_HOST = 5000;
    private static final long READY = 5001;
    private static final long TO_GUEST = 6000;
    /**
     * Bytes each way: 100 MiB where guest code runs natively. On hosts that interpret guest kernel code
     * (kvm-pvm) every 4 KiB packet costs the guest milliseconds, 100 MiB would take most of the CI budget,
     * and 8 MiB checks the same paths (each way is thousands of packets, credit updates and rx refills). A long
     * run there: -Dkrun.vsock.test.bytes=104857600 -Dkrun.vsock.test.seconds=3600.
     */
    private static long bytes;

    private static long bytesForThisHost() {
        try (var kvm = org.krun.hv.kvm.internal.KvmHypervisor.open()) {
            return Long.getLong("krun.vsock.test.bytes", kvm.capabilities().hardwareVirtualization() ? 100L << 20 : 8L << 20);
        }
    }

    @TempDir
    Path dir;

    @Test
    void streamsThroughPortMapsArriveByteExactBothWays() throws Exception {
        LinuxGuest.assumeKvm();
        bytes = bytesForThisHost();
        if (bytes < 100L << 20) {
            System.out.println("*** this host interprets guest kernel code (kvm-pvm): streams of " + (bytes >> 20)
                    + " MiB each way instead of 100 MiB ***");
        }
        Path root = testRootfs(dir.resolve("rootfs"));
        Path toHost = dir.resolve("to-host.sock");
        Path ready = dir.resolve("ready.sock");
        Path toGuest = dir.resolve("to-guest.sock");
        VsockSpec spec = VsockSpec.create().withPort(new VsockPort(TO_HOST, toHost, false))
                .withPort(new VsockPort(READY, ready, false)).withPort(new VsockPort(TO_GUEST, toGuest, true));
        try (ServerSocketChannel sink = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
                ServerSocketChannel readySignal = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            sink.bind(UnixDomainSocketAddress.of(toHost));
            readySignal.bind(UnixDomainSocketAddress.of(ready));
            CompletableFuture<String> received = CompletableFuture.supplyAsync(() -> receiveAndAnswer(sink));
            CompletableFuture<Long> sent = CompletableFuture.supplyAsync(() -> sendWhenReady(readySignal, toGuest));

            LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(new VsockFactory()), LinuxGuest.config()
                    .root(root).memoryMib(256).device(spec)
                    .command("/usr/local/bin/vsockcheck", "send:" + TO_HOST + ":" + bytes,
                            "recv:" + TO_GUEST + ":" + bytes + ":" + READY), null, Duration.ofSeconds(Long.getLong("krun.vsock.test.seconds", 900)));
            String out = r.out();
            assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
            assertEquals(0, r.exit().status(), r.toString());
            List<String> lines = out.lines().toList();
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("send " + TO_HOST + " " + bytes + " ok")), out);
            assertTrue(lines.stream().anyMatch(l -> l.startsWith("recv " + TO_GUEST + " " + bytes + " ok")), out);
            String answer = received.get(60, TimeUnit.SECONDS);
            assertEquals(16, answer.length(), "the host got every byte and answered its checksum: " + answer);
            assertEquals(bytes, sent.get(60, TimeUnit.SECONDS));
            for (String l : lines) {
                System.out.println("[vsock guest] " + l);
            }
        }
    }

    /** Reads the guest's stream to its end and answers with its checksum, then closes. */
    private static String receiveAndAnswer(ServerSocketChannel sink) {
        try (SocketChannel c = sink.accept()) {
            ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
            long sum = Fnv.START;
            long total = 0;
            while (c.read(buf.clear()) >= 0) {
                buf.flip();
                total += buf.remaining();
                sum = Fnv.update(sum, buf);
            }
            String answer = String.format("%016x", sum);
            c.write(ByteBuffer.wrap(answer.getBytes(StandardCharsets.US_ASCII)));
            if (total != bytes) {
                return "short: " + total;
            }
            return answer;
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** Waits for the guest to listen, then sends it the pattern through the listen map and closes. */
    private static long sendWhenReady(ServerSocketChannel readySignal, Path toGuest) {
        try {
            readySignal.accept().close();
            try (SocketChannel c = SocketChannel.open(UnixDomainSocketAddress.of(toGuest))) {
                Pattern p = new Pattern();
                ByteBuffer buf = ByteBuffer.allocate(64 * 1024).order(ByteOrder.LITTLE_ENDIAN);
                long done = 0;
                while (done < bytes) {
                    int n = (int) Math.min(buf.capacity(), bytes - done);
                    buf.clear();
                    p.fill(buf, n);
                    buf.flip();
                    while (buf.hasRemaining()) {
                        c.write(buf);
                    }
                    done += n;
                }
                return done;
            }
        } catch (Exception e) {
            throw new IllegalStateException(e);
        }
    }

    /** xorshift64 from seed 42, eight bytes little-endian at a time, as vsockcheck makes it. */
    static final class Pattern {
        private long state = 42;

        void fill(ByteBuffer buf, int n) {
            for (int i = 0; i < n; i += 8) {
                long x = state;
                x ^= x << 13;
                x ^= x >>> 7;
                x ^= x << 17;
                state = x;
                for (int j = 0; j < 8 && i + j < n; j++) {
                    buf.put((byte) (x >>> (8 * j)));
                }
            }
        }
    }

    /** 64-bit FNV-1a, as vsockcheck computes it. */
    static final class Fnv {
        static final long START = 0xcbf29ce484222325L;

        static long update(long h, ByteBuffer b) {
            while (b.hasRemaining()) {
                h ^= b.get() & 0xff;
                h *= 0x100000001b3L;
            }
            return h;
        }
    }

    private static Path testRootfs(Path root) throws Exception {
        Process cp = new ProcessBuilder("cp", "-a", LinuxGuest.rootfs().toRealPath() + "/.", root.toString())
                .inheritIO().start();
        assertEquals(0, cp.waitFor());
        Path bin = Files.createDirectories(root.resolve("usr/local/bin"));
        Path program = Path.of(VsockLinuxGuestTest.class.getResource("/guest/vsockcheck").toURI());
        Files.copy(program, bin.resolve("vsockcheck"), StandardCopyOption.REPLACE_EXISTING);
        Files.setPosixFilePermissions(bin.resolve("vsockcheck"), PosixFilePermissions.fromString("rwxr-xr-x"));
        return root;
    }
}
