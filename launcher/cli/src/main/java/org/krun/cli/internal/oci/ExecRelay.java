package org.krun.cli.internal.oci;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.TimeUnit;

import org.krun.cli.internal.oci.ExecProtocol.Frame;
import org.krun.cli.internal.oci.ExecProtocol.ProtocolException;
import org.krun.cli.internal.oci.OciSpec.OciException;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixNet;
import org.krun.posix.SockAddr;
import org.krun.posix.Termios;

/**
 * The host's end of one exec session: a connection to the container's exec agent, through the unix socket
 * {@code ROOT/ID/exec.sock} that the VMM process maps to the agent's vsock port. {@link #start} asks for the
 * process and waits for the agent's answer; {@link #relay} then passes standard input, signals and terminal
 * sizes to it and its output and exit status back, until it ends. The connection is a plain descriptor, so
 * that {@code exec --detach} can hand it to the relay process it leaves behind (as its descriptor 3).
 */
final class ExecRelay implements AutoCloseable {

    /** The status when the container (its VM) ends before the process: killed with it. */
    static final int CONTAINER_GONE = 128 + 9;
    /** How often a terminal's size is looked at (the engine resizes its master end; no signal reaches us). */
    private static final long RESIZE_POLL_MILLIS = 200;
    private static final long FIONBIO = 0x5421;

    private final int fd;
    private final ExecProtocol.Session session = new ExecProtocol.Session();
    private final InputStream fromGuest;
    private final Object sending = new Object();
    private volatile boolean closed;
    /** The agent's first frame came (guarded by {@link #sending}). */
    private boolean answered;

    ExecRelay(int fd) {
        this.fd = fd;
        this.fromGuest = new FdInput(fd);
    }

    int fd() {
        return fd;
    }

    /**
     * Connects to container {@code st}'s exec agent and asks it for {@code request}: the process's guest pid
     * once it runs. An agent not listening yet (the guest still boots: the engine calls a container running
     * once its VM started) closes the connection without a word; that is tried again, while the container
     * runs, for up to {@code patienceSeconds}.
     *
     * @throws OciException with the agent's one-line reason when the process cannot start
     */
    static ExecRelay start(OciState st, ExecRequest request, long patienceSeconds) {
        byte[] exec = ExecProtocol.frame(ExecProtocol.EXEC, request.encode());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(patienceSeconds);
        while (true) {
            ExecRelay r = connect(st);
            // An agent (or a guest) that takes the request and never answers must not hold exec for ever: at the
            // deadline the connection is shut down, which ends the wait below as a silent close does.
            long remaining = Math.max(0, deadline - System.nanoTime());
            java.util.concurrent.CompletableFuture.delayedExecutor(remaining, TimeUnit.NANOSECONDS).execute(r::shutdownUnlessAnswered);
            try {
                r.send(exec);
                Frame f = ExecProtocol.readGuestFrame(r.fromGuest);
                r.answered();
                if (f != null) {
                    if (f.type() == ExecProtocol.ERROR) {
                        throw new OciException(r.session.error(f));
                    }
                    r.session.started(f);
                    return r;
                }
            } catch (IOException e) {
                r.close();
                throw new OciException("exec in container " + st.id() + ": " + e.getMessage());
            } catch (RuntimeException e) {
                r.close();
                throw e;
            }
            r.close();
            if (!st.current().status().equals(OciState.RUNNING)) {
                throw new OciException("container " + st.id() + " stopped before the process could start");
            }
            if (System.nanoTime() > deadline) {
                throw new OciException("container " + st.id() + ": its exec agent did not answer within "
                        + patienceSeconds + " s");
            }
            try {
                Thread.sleep(200);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new OciException("interrupted");
            }
        }
    }

    private static ExecRelay connect(OciState st) {
        int fd = Posix.check("socket", PosixNet.socket(SockAddr.AF_UNIX, PosixNet.SOCK_STREAM, 0));
        try {
            int rc = st.withSocketPath(OciState.EXEC_SOCKET, p -> PosixNet.connect(fd, SockAddr.Unix.of(p.toString())));
            if (rc == -Errno.ENOENT) {
                throw new OciException("container " + st.id() + " has no exec socket (its VMM process is gone, or"
                        + " predates exec)");
            }
            if (rc < 0) {
                throw new OciException("container " + st.id() + ": cannot reach its VMM process's exec socket ("
                        + Errno.describe(-rc) + ")");
            }
            // blocking from here on: the relay's threads wait in recv and send
            try (Arena a = Arena.ofConfined()) {
                MemorySegment off = a.allocateFrom(ValueLayout.JAVA_INT, 0);
                Posix.check("ioctl FIONBIO", Posix.ioctl(fd, FIONBIO, off));
            }
            return new ExecRelay(fd);
        } catch (IOException e) {
            Posix.close(fd);
            throw new OciException("container " + st.id() + ": " + e.getMessage());
        } catch (RuntimeException e) {
            Posix.close(fd);
            throw e;
        }
    }

    /** A relay over {@code fd}, a connection whose process has started (exec --detach's relay process). */
    static ExecRelay adopt(int fd) {
        ExecRelay r = new ExecRelay(fd);
        r.session.startedElsewhere();
        return r;
    }

    /**
     * Relays until the process ends: {@code stdin} to it (end of file closes its input), its output to
     * {@code stdout} and {@code stderr}, and with {@code terminal} the size
     * of the terminal on descriptor {@code tty}. Returns its exit status; {@link #CONTAINER_GONE} when the
     * container ended first; 1, said on {@code stderr}, when the guest broke the protocol.
     */
    int relay(InputStream stdin, OutputStream stdout, OutputStream stderr, boolean terminal, int tty) {
        Thread input = Thread.ofPlatform().daemon(true).name("krun-exec-stdin").start(() -> pumpInput(stdin, terminal));
        input.setUncaughtExceptionHandler((t, e) -> { });
        if (terminal) {
            Thread.ofPlatform().daemon(true).name("krun-exec-winsize").start(() -> followSize(tty));
        }
        try {
            int status = guestToHost(fromGuest, session, stdout, stderr);
            if (status == CONTAINER_GONE) {
                say(stderr, "krun: exec: the container stopped before the process ended");
            }
            return status;
        } catch (ProtocolException e) {
            say(stderr, "krun: exec: " + e.getMessage());
            return 1;
        } catch (IOException e) {
            // our own output failed (the engine's end went away), or the connection: the process goes with it
            say(stderr, "krun: exec: " + e.getMessage());
            return 1;
        } finally {
            close();
        }
    }

    /**
     * The guest's side of a started session, until its end: output frames to {@code stdout} and
     * {@code stderr}, then the EXIT frame's status, or {@link #CONTAINER_GONE} when the stream ends first.
     *
     * @throws ProtocolException when the guest breaks the protocol (the caller ends the session)
     * @throws IOException when {@code from} or an output fails
     */
    static int guestToHost(InputStream from, ExecProtocol.Session session, OutputStream stdout, OutputStream stderr)
            throws IOException {
        while (true) {
            Frame f = ExecProtocol.readGuestFrame(from);
            if (f == null) {
                return CONTAINER_GONE;
            }
            if (f.type() == ExecProtocol.EXIT) {
                int status = session.exit(f);
                stdout.flush();
                stderr.flush();
                return status;
            }
            session.output(f);
            OutputStream to = f.type() == ExecProtocol.STDOUT ? stdout : stderr;
            to.write(f.payload());
            to.flush();
        }
    }

    /** Passes the signals this process gets ({@link HostSignals}) to the process from now on. */
    void forwardSignals() {
        HostSignals.forward(this::signal);
    }

    /** Sends {@code signal} to the process (nothing once the session is over). */
    void signal(int signal) {
        trySend(ExecProtocol.signal(signal));
    }

    private void pumpInput(InputStream stdin, boolean terminal) {
        byte[] buf = new byte[16 << 10];
        try {
            int n;
            while ((n = stdin.read(buf)) > 0) {
                send(ExecProtocol.frame(ExecProtocol.STDIN, buf, 0, n));
            }
            if (!terminal) {
                send(ExecProtocol.frame(ExecProtocol.STDIN_CLOSE, new byte[0]));
            }
        } catch (IOException e) {
            // our input failed, or the session is over: the process gets no more input
            trySend(ExecProtocol.frame(ExecProtocol.STDIN_CLOSE, new byte[0]));
        }
    }

    private void followSize(int tty) {
        Termios.Size last = null;
        while (!closed) {
            Termios.Size now = Termios.size(tty).orElse(null);
            if (now != null && !now.equals(last)) {
                trySend(ExecProtocol.resize(now.columns(), now.rows()));
                last = now;
            }
            try {
                Thread.sleep(RESIZE_POLL_MILLIS);
            } catch (InterruptedException e) {
                return;
            }
        }
    }

    private static void say(OutputStream stderr, String line) {
        try {
            stderr.write((line + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8));
            stderr.flush();
        } catch (IOException e) {
            // nowhere to say it
        }
    }

    private void trySend(byte[] frame) {
        try {
            send(frame);
        } catch (IOException e) {
            // the session is over
        }
    }

    private void send(byte[] frame) throws IOException {
        synchronized (sending) {
            if (closed) {
                throw new IOException("the exec session is closed");
            }
            MemorySegment from = MemorySegment.ofArray(frame);
            long done = 0;
            while (done < frame.length) {
                long n = PosixNet.send(fd, from.asSlice(done), 0);
                if (n == -Errno.EINTR) {
                    continue;
                }
                if (n <= 0) {
                    throw new IOException("the exec session's connection failed (" + Errno.describe((int) -n) + ")");
                }
                done += n;
            }
        }
    }

    private void answered() {
        synchronized (sending) {
            answered = true;
        }
    }

    /** Shuts the connection down if the agent has not answered yet (and it is still ours: not closed, so not reused). */
    private void shutdownUnlessAnswered() {
        synchronized (sending) {
            if (!answered && !closed) {
                PosixNet.shutdown(fd, PosixNet.SHUT_RDWR);
            }
        }
    }

    /** Closes the connection: the agent ends a process whose session is gone. Idempotent. */
    @Override
    public void close() {
        synchronized (sending) {
            if (!closed) {
                closed = true;
                Posix.close(fd);
            }
        }
    }

    /** Blocking reads of a socket descriptor. */
    static final class FdInput extends InputStream {
        private final int fd;

        FdInput(int fd) {
            this.fd = fd;
        }

        @Override
        public int read() throws IOException {
            byte[] one = new byte[1];
            return read(one, 0, 1) == 1 ? one[0] & 0xff : -1;
        }

        @Override
        public int read(byte[] b, int off, int len) throws IOException {
            if (len == 0) {
                return 0;
            }
            while (true) {
                long n = PosixNet.recv(fd, MemorySegment.ofArray(b).asSlice(off, len), 0);
                if (n == -Errno.EINTR) {
                    continue;
                }
                if (n < 0) {
                    if (n == -Errno.EBADF || n == -Errno.ECONNRESET) {
                        return -1; // closed by our side, or the VMM process went away
                    }
                    throw new IOException("the exec session's connection failed (" + Errno.describe((int) -n) + ")");
                }
                return n == 0 ? -1 : (int) n;
            }
        }
    }
}
