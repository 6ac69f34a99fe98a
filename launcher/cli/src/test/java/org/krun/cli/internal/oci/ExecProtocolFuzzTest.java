package org.krun.cli.internal.oci;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Timeout;
import org.krun.cli.internal.oci.ExecProtocol.Frame;
import org.krun.cli.internal.oci.ExecProtocol.ProtocolException;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzInput;

import com.code_intelligence.jazzer.junit.FuzzTest;

/**
 * Coverage-guided fuzzing of what the host reads from a hostile guest's exec agent: the byte stream of one
 * session, as {@link ExecRelay#start} and {@link ExecRelay#guestToHost} read it. The stream is built from the
 * input as frames of any type (the guest's, the host's, unknown), with claimed lengths anywhere up to 4 GiB,
 * payloads shorter or longer than claimed, in any order, or raw bytes.
 *
 * <p>Asserted, besides the host bounds of {@link FuzzBounds} (a claimed length never sizes an allocation):
 * reading ends with a status, the end of the stream, or a {@link ProtocolException}, nothing else; the host
 * writes no more output than the stream carried and at most {@link ExecProtocol#MAX_DATA} bytes at a time;
 * an error message is one printable line of at most {@link ExecProtocol#MAX_ERROR} characters; a status is
 * 0 to 255; output only follows STARTED.
 */
class ExecProtocolFuzzTest {

    private static final FuzzBounds BOUNDS = new FuzzBounds("exec protocol", FuzzBounds.Limits.defaults(),
            ExecProtocolFuzzTest::session, seed());

    @FuzzTest(maxDuration = "30s")
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void aHostileAgentsBytesStayBounded(byte[] input) throws Exception {
        BOUNDS.run(input);
    }

    /** A well-formed session as raw bytes (a non-zero byte first): STARTED, output on both streams, EXIT 5. */
    private static byte[] seed() {
        ByteBuffer b = ByteBuffer.allocate(64);
        b.put((byte) 1);
        b.put((byte) ExecProtocol.STARTED).putInt(4).putInt(42);
        b.put((byte) ExecProtocol.STDOUT).putInt(3).put("hi\n".getBytes());
        b.put((byte) ExecProtocol.STDERR).putInt(1).put((byte) '!');
        b.put((byte) ExecProtocol.EXIT).putInt(4).putInt(5);
        return java.util.Arrays.copyOf(b.array(), b.position());
    }

    /** Output as the relay's streams see it: counted, each write bounded. */
    private static final class Sink extends OutputStream {
        long count;
        boolean allowed;

        @Override
        public void write(int b) {
            write(new byte[] {(byte) b}, 0, 1);
        }

        @Override
        public void write(byte[] b, int off, int len) {
            if (!allowed) {
                throw new AssertionError("output before the process started");
            }
            if (len > ExecProtocol.MAX_DATA) {
                throw new AssertionError("a write of " + len + " bytes");
            }
            count += len;
        }
    }

    private static void session(byte[] input) throws IOException {
        byte[] stream = stream(new FuzzInput(input));
        ByteArrayInputStream from = new ByteArrayInputStream(stream);
        ExecProtocol.Session session = new ExecProtocol.Session();
        Sink out = new Sink();
        Sink err = new Sink();
        try {
            Frame first = ExecProtocol.readGuestFrame(from);
            if (first == null) {
                return; // the agent closed without a word: the host asks again
            }
            if (first.type() == ExecProtocol.ERROR) {
                String message = session.error(first);
                if (message.length() > ExecProtocol.MAX_ERROR || message.chars().anyMatch(c -> c < 0x20 || c >= 0x7f)) {
                    throw new AssertionError("an error message that is not one printable line: " + message);
                }
                return;
            }
            session.started(first);
            out.allowed = true;
            err.allowed = true;
            int status = ExecRelay.guestToHost(from, session, out, err);
            if (status != ExecRelay.CONTAINER_GONE && (status < 0 || status > 255)) {
                throw new AssertionError("status " + status);
            }
        } catch (ProtocolException e) {
            // the guest broke the protocol: the session ends, as it should
        }
        if (out.count + err.count > stream.length) {
            throw new AssertionError("more output (" + (out.count + err.count) + ") than the guest sent (" + stream.length + ")");
        }
    }

    /** The guest's bytes: frames described by the input (a zero byte first), or the input's raw bytes. */
    private static byte[] stream(FuzzInput in) {
        if (in.exhausted() || in.u8() != 0) {
            return in.exhausted() ? new byte[0] : rest(in);
        }
        ByteArrayOutputStream s = new ByteArrayOutputStream();
        int[] types = {ExecProtocol.STARTED, ExecProtocol.STDOUT, ExecProtocol.STDERR, ExecProtocol.EXIT,
            ExecProtocol.ERROR, ExecProtocol.EXEC, ExecProtocol.STDIN, 0};
        while (!in.exhausted() && s.size() < 1 << 20) {
            int pick = in.below(types.length);
            int type = types[pick] == 0 ? in.u8() : types[pick];
            long claimed = switch (in.below(4)) {
                case 0 -> 4;
                case 1 -> in.below(ExecProtocol.MAX_DATA + 2);
                case 2 -> in.below(64);
                default -> in.i32() & 0xffff_ffffL;
            };
            int carried = (int) Math.min(claimed, Math.min(in.remaining(), ExecProtocol.MAX_DATA + 16));
            if (in.bool()) {
                carried = Math.max(0, carried - in.below(8));
            }
            s.write(type);
            s.writeBytes(ByteBuffer.allocate(4).putInt((int) claimed).array());
            for (int i = 0; i < carried && !in.exhausted(); i++) {
                s.write(in.u8());
            }
        }
        return s.toByteArray();
    }

    private static byte[] rest(FuzzInput in) {
        ByteArrayOutputStream s = new ByteArrayOutputStream();
        while (!in.exhausted()) {
            s.write(in.u8());
        }
        return s.toByteArray();
    }
}
