package org.krun.cli.internal.oci;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.api.GuestUser;
import org.krun.cli.internal.oci.ExecProtocol.Frame;
import org.krun.cli.internal.oci.ExecProtocol.ProtocolException;
import org.krun.cli.internal.oci.OciSpec.OciException;

/** The exec agent's frames as the host writes and reads them, and the EXEC request from a process.json. */
class ExecProtocolTest {

    private static byte[] frame(int type, int claimed, byte[] payload) {
        return ByteBuffer.allocate(5 + payload.length).put((byte) type).putInt(claimed).put(payload).array();
    }

    private static byte[] u32(int v) {
        return ByteBuffer.allocate(4).putInt(v).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            out.writeBytes(p);
        }
        return out.toByteArray();
    }

    @Test
    void aSessionsOutputAndStatusReachTheHostsStreams() throws Exception {
        byte[] stream = concat(frame(ExecProtocol.STDOUT, 3, "hi\n".getBytes()), frame(ExecProtocol.STDERR, 2, "e\n".getBytes()),
                frame(ExecProtocol.EXIT, 4, u32(5)));
        ExecProtocol.Session s = new ExecProtocol.Session();
        s.startedElsewhere();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        assertEquals(5, ExecRelay.guestToHost(new ByteArrayInputStream(stream), s, out, err));
        assertEquals("hi\n", out.toString(StandardCharsets.UTF_8));
        assertEquals("e\n", err.toString(StandardCharsets.UTF_8));
    }

    @Test
    void theStreamEndingBeforeExitIsTheContainerGone() throws Exception {
        ExecProtocol.Session s = new ExecProtocol.Session();
        s.startedElsewhere();
        assertEquals(ExecRelay.CONTAINER_GONE, ExecRelay.guestToHost(new ByteArrayInputStream(new byte[0]), s,
                new ByteArrayOutputStream(), new ByteArrayOutputStream()));
        assertNull(ExecProtocol.readGuestFrame(new ByteArrayInputStream(new byte[0])));
    }

    @Test
    void framesBeyondTheirBoundsAreRefusedWithoutReadingThem() {
        // a claimed 4 GiB of output: refused from the header, nothing allocated for it
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(
                new ByteArrayInputStream(frame(ExecProtocol.STDOUT, -1, new byte[0]))));
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(
                new ByteArrayInputStream(frame(ExecProtocol.STDOUT, ExecProtocol.MAX_DATA + 1, new byte[0]))));
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(
                new ByteArrayInputStream(frame(ExecProtocol.ERROR, ExecProtocol.MAX_ERROR + 1, new byte[0]))));
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(
                new ByteArrayInputStream(frame(ExecProtocol.EXIT, 5, new byte[5]))));
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(
                new ByteArrayInputStream(frame(ExecProtocol.STDIN, 1, new byte[1]))), "a host frame from the guest");
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(
                new ByteArrayInputStream(frame(ExecProtocol.STDOUT, 10, new byte[3]))), "a payload cut short");
        assertThrows(ProtocolException.class, () -> ExecProtocol.readGuestFrame(new ByteArrayInputStream(new byte[] {(byte) 0x82, 0})));
    }

    @Test
    void framesOutOfOrderEndTheSession() throws Exception {
        ExecProtocol.Session s = new ExecProtocol.Session();
        Frame out = new Frame(ExecProtocol.STDOUT, new byte[1]);
        assertThrows(ProtocolException.class, () -> s.output(out), "output before STARTED");
        assertEquals(42, s.started(new Frame(ExecProtocol.STARTED, u32(42))));
        assertThrows(ProtocolException.class, () -> s.started(new Frame(ExecProtocol.STARTED, u32(43))));
        assertThrows(ProtocolException.class, () -> s.exit(new Frame(ExecProtocol.EXIT, u32(256))));
        assertEquals(0, s.exit(new Frame(ExecProtocol.EXIT, u32(0))));
        assertThrows(ProtocolException.class, () -> s.output(out), "output after EXIT");
        ExecProtocol.Session e = new ExecProtocol.Session();
        assertEquals("bad? line", e.error(new Frame(ExecProtocol.ERROR, "bad\n line".getBytes(StandardCharsets.UTF_8))));
        assertTrue(e.ended());
    }

    @Test
    void aProcessJsonBecomesTheAgentsRequest() throws Exception {
        ExecRequest r = ExecRequest.fromProcess(OciJson.parse("""
                {"terminal":true,"consoleSize":{"height":24,"width":80},"user":{"uid":1000,"gid":100,"additionalGids":[10]},
                 "args":["sh","-c","echo hi"],"env":["PATH=/bin","TERM=xterm"],"cwd":"/srv","capabilities":{}}
                """));
        assertEquals(new ExecRequest(List.of("sh", "-c", "echo hi"), List.of("PATH=/bin", "TERM=xterm"), "/srv",
                new GuestUser(1000, 100, List.of(10L)), true, 80, 24), r);
        ByteBuffer b = ByteBuffer.wrap(r.encode());
        assertEquals(1, b.getInt(), "terminal");
        assertEquals(1000, b.getInt());
        assertEquals(100, b.getInt());
        assertEquals(80, b.getShort());
        assertEquals(24, b.getShort());
        assertEquals(1, b.getShort(), "groups");
        assertEquals(3, b.getShort(), "args");
        assertEquals(2, b.getShort(), "env");
        assertEquals(10, b.getInt());
        byte[] rest = new byte[b.remaining()];
        b.get(rest);
        assertArrayEquals("/srv\0sh\0-c\0echo hi\0PATH=/bin\0TERM=xterm\0".getBytes(StandardCharsets.UTF_8), rest);
    }

    @Test
    void requestsTheAgentWouldRefuseAreRefusedOnTheHost() {
        GuestUser root = new GuestUser(0, 0);
        assertThrows(OciException.class, () -> new ExecRequest(List.of(), List.of(), "/", root, false, 0, 0));
        assertThrows(OciException.class, () -> new ExecRequest(List.of("a\0b"), List.of(), "/", root, false, 0, 0));
        assertThrows(OciException.class, () -> new ExecRequest(List.of("a"), List.of("NOEQUALS"), "/", root, false, 0, 0));
        assertThrows(OciException.class, () -> new ExecRequest(List.of("a"), List.of(), "relative", root, false, 0, 0));
        ExecRequest huge = new ExecRequest(List.of("a", "x".repeat(ExecProtocol.MAX_REQUEST)), List.of(), "/", root, false, 0, 0);
        assertThrows(OciException.class, huge::encode);
    }
}
