package org.krun.device.net.internal;

import java.io.IOException;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A name server for one test-only name on the host's loopback: answers A queries for {@code name} with
 * {@code address} (TTL 60), other names with NXDOMAIN and other types of {@code name} with no records
 * (RFC 1035 §4.1). Runs on a daemon thread until closed.
 */
final class DnsResponder implements AutoCloseable {

    private final DatagramSocket socket;
    private final byte[] qname;
    private final byte[] address;
    final AtomicInteger answered = new AtomicInteger();

    private DnsResponder(DatagramSocket socket, String name, InetAddress address) {
        this.socket = socket;
        this.qname = encode(name);
        this.address = address.getAddress();
        Thread.ofPlatform().daemon(true).name("dns-" + name).start(this::run);
    }

    /** Serves on {@code bind}; throws when the address cannot be had (port 53 needs root). */
    static DnsResponder start(InetSocketAddress bind, String name, InetAddress address) throws IOException {
        DatagramSocket s = new DatagramSocket(null);
        try {
            s.bind(bind);
        } catch (IOException e) {
            s.close();
            throw e;
        }
        return new DnsResponder(s, name, address);
    }

    private static byte[] encode(String name) {
        byte[] out = new byte[name.length() + 2];
        int o = 0;
        for (String label : name.toLowerCase(java.util.Locale.ROOT).split("\\.")) {
            byte[] b = label.getBytes(StandardCharsets.US_ASCII);
            out[o++] = (byte) b.length;
            System.arraycopy(b, 0, out, o, b.length);
            o += b.length;
        }
        out[o] = 0;
        return out;
    }

    private void run() {
        byte[] buf = new byte[512];
        while (!socket.isClosed()) {
            try {
                DatagramPacket p = new DatagramPacket(buf, buf.length);
                socket.receive(p);
                int end = 12;
                while (end < p.getLength() && buf[end] != 0) {
                    end += (buf[end] & 0xff) + 1;
                }
                end += 5; // the root label, QTYPE, QCLASS
                if (p.getLength() < 12 || end > p.getLength() || buf[5] != 1) {
                    continue; // not one question
                }
                byte[] asked = Arrays.copyOfRange(buf, 12, end - 4);
                for (int i = 0; i < asked.length; i++) {
                    asked[i] = (byte) Character.toLowerCase(asked[i]); // names compare case-insensitively; length bytes stay below 'A'
                }
                boolean ours = Arrays.equals(asked, qname);
                boolean typeA = buf[end - 4] == 0 && buf[end - 3] == 1;
                byte[] a = Arrays.copyOf(buf, end + (ours && typeA ? 16 : 0));
                a[2] = (byte) (0x84 | (buf[2] & 1)); // QR, AA, RD as asked
                a[3] = (byte) (ours ? 0 : 3); // NOERROR or NXDOMAIN
                a[6] = 0;
                a[7] = (byte) (ours && typeA ? 1 : 0); // ANCOUNT
                a[8] = a[9] = a[10] = a[11] = 0;
                if (ours && typeA) {
                    byte[] rr = {(byte) 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
                    System.arraycopy(rr, 0, a, end, rr.length);
                    System.arraycopy(address, 0, a, end + rr.length, 4);
                    answered.incrementAndGet();
                }
                socket.send(new DatagramPacket(a, a.length, p.getSocketAddress()));
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    @Override
    public void close() {
        socket.close();
    }
}
