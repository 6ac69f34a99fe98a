package org.krun.device.net.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.NetSpec;

/**
 * krun's default name server through krun's own passt options, without a VM: the test is the guest at the
 * stream's end, and passt runs in a mount namespace of its own whose {@code /etc/resolv.conf} names
 * 127.0.0.1, where the test answers (the host's real resolver is never asked). The guest's query to
 * {@value Passt#NAME_SERVER}:53 must reach that resolver and its answer must come back from
 * {@value Passt#NAME_SERVER}:53, or the guest's resolver drops it. With {@code --dns 10.0.2.3} (krun's old
 * options) Debian 12's passt sent the query to the host's 127.0.0.1:53 whatever resolv.conf said, and
 * answered from the gateway address 10.0.2.2.
 */
class PasstDnsTest {

    private static final byte[] GUEST_MAC = {0x02, 0x00, 0x00, 0x00, 0x0a, 0x01};
    private static final byte[] GUEST_IP = {10, 0, 2, 15};
    private static final byte[] NAME_SERVER = {10, 0, 2, 3};
    private static final String NAME = "krun-test.invalid";
    private static final byte[] ANSWER = {(byte) 192, 0, 2, 99};
    /** Binds passt's view of /etc/resolv.conf to $1, then runs the rest. */
    private static final String BIND = "mount --bind \"$1\" /etc/resolv.conf || exit 97; shift; exec \"$@\"";

    @Test
    void theDefaultNameServerForwardsToTheHostsResolverAndAnswersFromItsOwnAddress(@TempDir Path dir) throws Exception {
        skipUnless(Passt.find(Passt.PROGRAM).isPresent(), "passt is not installed (apt-get install passt)");
        skipUnless(Passt.find("unshare").isPresent(), "unshare is not installed");
        Path resolv = dir.resolve("resolv.conf");
        Files.writeString(resolv, "nameserver 127.0.0.1\n");
        DnsResponder dns;
        try {
            dns = DnsResponder.start(new InetSocketAddress(InetAddress.ofLiteral("127.0.0.1"), 53), NAME,
                    InetAddress.getByAddress(ANSWER));
        } catch (IOException e) {
            skipUnless(false, "no name server on 127.0.0.1:53 (" + e.getMessage() + "; needs root and a free port)");
            return;
        }
        int guestPort = 40000 + (int) (ProcessHandle.current().pid() % 20000);
        try (dns; Arena arena = Arena.ofConfined()) {
            StreamBackend passt = Passt.start(NetSpec.passt(),
                    List.of("unshare", "-m", "--propagation", "private", "--", "sh", "-c", BIND, "sh", resolv.toString()));
            try {
                byte[] query = query(0x4b52);
                byte[] frame = udpFrame(guestPort, query);
                MemorySegment out = arena.allocate(Backend.HEADROOM + frame.length);
                MemorySegment.copy(frame, 0, out, ValueLayout.JAVA_BYTE, Backend.HEADROOM, frame.length);
                byte[] reply = null;
                for (int attempt = 0; attempt < 5 && reply == null; attempt++) { // passt may still be starting
                    passt.send(out, Backend.HEADROOM, frame.length);
                    reply = awaitUdpTo(passt, guestPort, 2000);
                }
                assertNotNull(reply, "no answer reached the guest (passt: " + passt + ")");
                ByteBuffer b = ByteBuffer.wrap(reply);
                byte[] from = Arrays.copyOfRange(reply, 26, 30);
                assertArrayEquals(NAME_SERVER, from, "the answer must come from the address asked, not from "
                        + InetAddress.getByAddress(from).getHostAddress());
                assertEquals(53, b.getShort(34) & 0xffff, "the answer's source port");
                assertEquals(1, dns.answered.get(), "the query must reach the resolver in passt's /etc/resolv.conf");
                byte[] payload = Arrays.copyOfRange(reply, 42, reply.length);
                assertEquals(0x4b52, ByteBuffer.wrap(payload).getShort(0) & 0xffff, "the answer's id");
                assertArrayEquals(ANSWER, Arrays.copyOfRange(payload, payload.length - 4, payload.length), "the address answered");
                System.out.println("[passt dns] " + NAME + " resolved through " + Passt.NAME_SERVER
                        + " by the resolver in passt's resolv.conf (127.0.0.1:53), answered from " + Passt.NAME_SERVER + ":53");
            } finally {
                passt.close();
            }
        }
    }

    private static void skipUnless(boolean ok, String why) {
        if (!ok) {
            System.err.println("*** PasstDnsTest SKIPPED: " + why + " ***");
            Assumptions.abort(why);
        }
    }

    /** The first IPv4 UDP frame to {@code port} within {@code millis}, or null. */
    private static byte[] awaitUdpTo(StreamBackend passt, int port, long millis) throws Exception {
        long end = System.nanoTime() + millis * 1_000_000L;
        while (System.nanoTime() < end) {
            int length = passt.receive();
            if (length < 0) {
                Thread.sleep(5);
                continue;
            }
            byte[] f = passt.frameBuffer().asSlice(passt.frameOffset(), length).toArray(ValueLayout.JAVA_BYTE);
            passt.consumed();
            ByteBuffer b = ByteBuffer.wrap(f);
            if (length >= 42 && (b.getShort(12) & 0xffff) == 0x0800 && f[23] == 17 && (b.getShort(36) & 0xffff) == port) {
                return f;
            }
        }
        return null;
    }

    /** A DNS query (RFC 1035 §4.1) for the A record of {@value #NAME}, recursion desired. */
    private static byte[] query(int id) {
        ByteBuffer b = ByteBuffer.allocate(12 + NAME.length() + 2 + 4);
        b.putShort((short) id).putShort((short) 0x0100).putShort((short) 1).putShort((short) 0).putShort((short) 0).putShort((short) 0);
        for (String label : NAME.split("\\.")) {
            b.put((byte) label.length()).put(label.getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        }
        b.put((byte) 0).putShort((short) 1).putShort((short) 1);
        return b.array();
    }

    /** Ethernet, IPv4 and UDP (no checksum) from the guest to the name server's port 53. */
    private static byte[] udpFrame(int from, byte[] payload) {
        ByteBuffer b = ByteBuffer.allocate(14 + 20 + 8 + payload.length);
        b.put(new byte[] {-1, -1, -1, -1, -1, -1}).put(GUEST_MAC).putShort((short) 0x0800);
        int ip = b.position();
        b.put((byte) 0x45).put((byte) 0).putShort((short) (20 + 8 + payload.length)).putShort((short) 1).putShort((short) 0)
                .put((byte) 64).put((byte) 17).putShort((short) 0).put(GUEST_IP).put(NAME_SERVER);
        int sum = 0;
        for (int i = ip; i < ip + 20; i += 2) {
            sum += b.getShort(i) & 0xffff;
        }
        sum = (sum & 0xffff) + (sum >> 16);
        sum = (sum & 0xffff) + (sum >> 16);
        b.putShort(ip + 10, (short) ~sum);
        b.putShort((short) from).putShort((short) 53).putShort((short) (8 + payload.length)).putShort((short) 0).put(payload);
        return b.array();
    }
}
