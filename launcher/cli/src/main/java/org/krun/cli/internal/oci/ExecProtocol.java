package org.krun.cli.internal.oci;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;

/**
 * The wire protocol of krun's exec agent (guest/init/exec.c has the whole of it): frames of a type byte, a
 * 4-byte big-endian length and the payload, over one connection per exec session. The host sends one EXEC
 * request, then standard input, signals and window sizes; the guest answers STARTED or ERROR, then the
 * process's output and its EXIT status.
 *
 * <p>What comes from the guest is hostile: {@link #readGuestFrame} takes only the guest's frame types, each
 * at most its own bound ({@link #MAX_DATA} of output, {@link #MAX_ERROR} of message, exactly 4 bytes of pid or
 * status), and {@link Session} only the order the protocol allows; anything else is a
 * {@link ProtocolException} and ends the session.
 */
final class ExecProtocol {

    // host to guest
    static final int EXEC = 1;
    static final int STDIN = 2;
    static final int STDIN_CLOSE = 3;
    static final int SIGNAL = 4;
    static final int RESIZE = 5;
    // guest to host
    static final int STARTED = 0x81;
    static final int STDOUT = 0x82;
    static final int STDERR = 0x83;
    static final int EXIT = 0x84;
    static final int ERROR = 0x85;

    static final int HEADER = 5;
    /** The most output (or input) one frame carries. */
    static final int MAX_DATA = 64 << 10;
    /** The longest message of an ERROR frame. */
    static final int MAX_ERROR = 1024;
    /** The largest EXEC request (the agent's bound too). */
    static final int MAX_REQUEST = 1 << 20;

    private ExecProtocol() {
    }

    /** Bytes from the guest that break the protocol. */
    static final class ProtocolException extends IOException {
        ProtocolException(String message) {
            super(message);
        }
    }

    /** One frame: its type and payload. */
    record Frame(int type, byte[] payload) {

        /** The payload of a STARTED or EXIT frame. */
        int u32() {
            return ByteBuffer.wrap(payload).getInt();
        }
    }

    /** A frame of {@code type} carrying {@code payload}, as the host sends it. */
    static byte[] frame(int type, byte[] payload, int offset, int length) {
        ByteBuffer b = ByteBuffer.allocate(HEADER + length);
        b.put((byte) type).putInt(length).put(payload, offset, length);
        return b.array();
    }

    static byte[] frame(int type, byte[] payload) {
        return frame(type, payload, 0, payload.length);
    }

    static byte[] signal(int signal) {
        return frame(SIGNAL, ByteBuffer.allocate(4).putInt(signal).array());
    }

    static byte[] resize(int columns, int rows) {
        return frame(RESIZE, ByteBuffer.allocate(4).putShort((short) columns).putShort((short) rows).array());
    }

    /**
     * The next frame from the guest, or null when the stream ends before one begins.
     *
     * @throws ProtocolException for a type the guest does not send, a length beyond its type's bound, or a
     *         stream that ends inside a frame
     */
    static Frame readGuestFrame(InputStream in) throws IOException {
        byte[] h = in.readNBytes(HEADER);
        if (h.length == 0) {
            return null;
        }
        if (h.length < HEADER) {
            throw new ProtocolException("the guest's frame ends in its header");
        }
        int type = h[0] & 0xff;
        long length = ByteBuffer.wrap(h, 1, 4).getInt() & 0xffff_ffffL;
        boolean fits = switch (type) {
            case STARTED, EXIT -> length == 4;
            case STDOUT, STDERR -> length >= 1 && length <= MAX_DATA;
            case ERROR -> length <= MAX_ERROR;
            default -> throw new ProtocolException("the guest sent a frame of unknown type 0x" + Integer.toHexString(type));
        };
        if (!fits) {
            throw new ProtocolException("the guest sent a frame of type 0x" + Integer.toHexString(type) + " with "
                    + length + " bytes");
        }
        byte[] payload = in.readNBytes((int) length);
        if (payload.length < length) {
            throw new ProtocolException("the guest's frame ends in its payload");
        }
        return new Frame(type, payload);
    }

    /**
     * The order of the guest's frames in one session: STARTED or ERROR first, then output until EXIT, then
     * nothing. Checks each frame; says what it means.
     */
    static final class Session {
        private boolean started;
        private boolean ended;

        /** The guest pid of a STARTED frame (the first), checked. */
        int started(Frame f) throws ProtocolException {
            expect(!started && !ended && f.type() == STARTED, f);
            int pid = f.u32();
            if (pid <= 0) {
                throw new ProtocolException("the guest started process " + Integer.toUnsignedString(pid));
            }
            started = true;
            return pid;
        }

        /** For a relay that takes over a session whose STARTED frame another process read. */
        void startedElsewhere() {
            started = true;
        }

        /** The message of an ERROR frame (the first): why the process could not start. */
        String error(Frame f) throws ProtocolException {
            expect(!started && !ended && f.type() == ERROR, f);
            ended = true;
            StringBuilder sb = new StringBuilder();
            for (byte b : f.payload()) {
                // one line, printable: the message goes to an engine's error output as is
                sb.append(b >= 0x20 && b < 0x7f ? (char) b : '?');
            }
            return sb.toString();
        }

        /** The exit status of an EXIT frame, 0 to 255. */
        int exit(Frame f) throws ProtocolException {
            expect(started && !ended && f.type() == EXIT, f);
            int status = f.u32();
            if (status < 0 || status > 255) {
                throw new ProtocolException("the guest reported exit status " + Integer.toUnsignedString(status));
            }
            ended = true;
            return status;
        }

        /** Checks that output may come now. */
        void output(Frame f) throws ProtocolException {
            expect(started && !ended && (f.type() == STDOUT || f.type() == STDERR), f);
        }

        boolean ended() {
            return ended;
        }

        private void expect(boolean allowed, Frame f) throws ProtocolException {
            if (!allowed) {
                throw new ProtocolException("the guest sent a frame of type 0x" + Integer.toHexString(f.type())
                        + (started ? " after the process started" : " before the process started")
                        + (ended ? " and ended" : ""));
            }
        }
    }
}
