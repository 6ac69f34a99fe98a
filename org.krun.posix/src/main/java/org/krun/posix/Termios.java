package org.krun.posix;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.MemorySegment;
import java.lang.invoke.MethodHandle;
import java.util.Optional;

/** A host terminal: raw mode for interactive guests, and its window size (termios(3), tty_ioctl(4)). */
public final class Termios {
    /** glibc struct termios is 60 bytes on x86_64; a little headroom. */
    private static final long TERMIOS_SIZE = 64;
    private static final int TCSANOW = 0;
    private static final long TIOCGWINSZ = 0x5413;

    private static final MethodHandle TCGETATTR = Libc.downcall("tcgetattr",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle TCSETATTR = Libc.downcall("tcsetattr",
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle CFMAKERAW = Libc.downcallWithoutErrno("cfmakeraw",
            FunctionDescriptor.ofVoid(ADDRESS));

    /** A window size in character cells. */
    public record Size(int columns, int rows) {
    }

    /** A terminal in raw mode; closing restores the mode it had (once). */
    public static final class RawMode implements AutoCloseable {
        private final int fd;
        private final byte[] saved;
        private boolean restored;

        private RawMode(int fd, byte[] saved) {
            this.fd = fd;
            this.saved = saved;
        }

        /** Restores the previous mode; false when the terminal refused (the user may need 'stty sane'). */
        public synchronized boolean restore() {
            if (restored) {
                return true;
            }
            restored = true;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment t = a.allocate(TERMIOS_SIZE);
                t.copyFrom(MemorySegment.ofArray(saved));
                return Libc.call(() -> (int) TCSETATTR.invokeExact(fd, TCSANOW, t)) == 0;
            }
        }

        @Override
        public void close() {
            restore();
        }
    }

    private Termios() {
    }

    /**
     * Puts {@code fd}'s terminal in raw mode (no echo, no line editing, no signals from keys); empty when
     * {@code fd} is not a terminal or refuses.
     */
    public static Optional<RawMode> enterRawMode(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocate(TERMIOS_SIZE);
            if (Libc.call(() -> (int) TCGETATTR.invokeExact(fd, t)) != 0) {
                return Optional.empty();
            }
            byte[] saved = t.toArray(JAVA_BYTE);
            try {
                CFMAKERAW.invokeExact(t);
            } catch (Throwable e) {
                throw Libc.unchecked(e);
            }
            if (Libc.call(() -> (int) TCSETATTR.invokeExact(fd, TCSANOW, t)) != 0) {
                return Optional.empty();
            }
            return Optional.of(new RawMode(fd, saved));
        }
    }

    /** TIOCSPTLCK: _IOW('T', 0x31, int); TIOCGPTN: _IOR('T', 0x30, unsigned int). */
    private static final long TIOCSPTLCK = 0x40045431L;
    private static final long TIOCGPTN = 0x80045430L;
    private static final int O_NOCTTY = 0x100;

    /**
     * A new pseudo-terminal: its master end (a descriptor, close-on-exec) and the path of its slave end.
     *
     * @since 1.2
     */
    public record Pty(int master, String slavePath) {
    }

    /**
     * Opens a new pseudo-terminal pair's master end, as posix_openpt, grantpt and unlockpt do (devpts gives
     * the slave the caller's owner and the mode devpts was mounted with).
     *
     * @throws PosixException when /dev/ptmx refuses
     * @since 1.2
     */
    public static Pty openPty() {
        int master = Posix.check("open /dev/ptmx", Posix.open("/dev/ptmx", Posix.O_RDWR | O_NOCTTY | Posix.O_CLOEXEC));
        try (Arena a = Arena.ofConfined()) {
            MemorySegment n = a.allocate(JAVA_INT);
            n.set(JAVA_INT, 0, 0);
            Posix.check("unlock the pty", Posix.ioctl(master, TIOCSPTLCK, n));
            Posix.check("name the pty", Posix.ioctl(master, TIOCGPTN, n));
            return new Pty(master, "/dev/pts/" + n.get(JAVA_INT, 0));
        } catch (RuntimeException e) {
            Posix.close(master);
            throw e;
        }
    }

    /** The window size of the terminal on {@code fd}; empty when it has none. */
    public static Optional<Size> size(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ws = a.allocate(8); // struct winsize { u16 row, col, xpixel, ypixel }
            if (Posix.ioctl(fd, TIOCGWINSZ, ws) != 0) {
                return Optional.empty();
            }
            int rows = ws.get(JAVA_SHORT, 0) & 0xffff;
            int cols = ws.get(JAVA_SHORT, 2) & 0xffff;
            return cols > 0 && rows > 0 ? Optional.of(new Size(cols, rows)) : Optional.empty();
        }
    }
}
