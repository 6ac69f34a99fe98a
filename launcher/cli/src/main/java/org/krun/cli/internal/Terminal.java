package org.krun.cli.internal;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import org.krun.spi.posix.Posix;

/** The host terminal: raw mode for interactive guests, and its window size (termios via FFM). */
final class Terminal {
    /** glibc struct termios is 60 bytes on x86_64; a little headroom. */
    private static final long TERMIOS_SIZE = 64;
    private static final int TCSANOW = 0;
    private static final long TIOCGWINSZ = 0x5413;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final SymbolLookup LIBC = LINKER.defaultLookup();
    private static final MethodHandle TCGETATTR = LINKER.downcallHandle(LIBC.findOrThrow("tcgetattr"),
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle TCSETATTR = LINKER.downcallHandle(LIBC.findOrThrow("tcsetattr"),
            FunctionDescriptor.of(JAVA_INT, JAVA_INT, JAVA_INT, ADDRESS));
    private static final MethodHandle CFMAKERAW = LINKER.downcallHandle(LIBC.findOrThrow("cfmakeraw"),
            FunctionDescriptor.ofVoid(ADDRESS));

    /** A window size in character cells. */
    record Size(int columns, int rows) {
    }

    /** Restores the terminal's previous mode when closed (once). */
    static final class RawMode implements AutoCloseable {
        private final int fd;
        private final byte[] saved;
        private boolean restored;

        private RawMode(int fd, byte[] saved) {
            this.fd = fd;
            this.saved = saved;
        }

        @Override
        public synchronized void close() {
            if (restored) {
                return;
            }
            restored = true;
            try (Arena a = Arena.ofConfined()) {
                MemorySegment t = a.allocate(TERMIOS_SIZE);
                t.copyFrom(MemorySegment.ofArray(saved));
                int r = (int) TCSETATTR.invokeExact(fd, TCSANOW, t);
                if (r != 0) {
                    System.err.println("krun: could not restore the terminal (run 'stty sane')");
                }
            } catch (Throwable e) {
                System.err.println("krun: could not restore the terminal (run 'stty sane')");
            }
        }
    }

    private Terminal() {
    }

    static boolean isTerminal(int fd) {
        return Posix.isatty(fd);
    }

    /** Puts {@code fd}'s terminal in raw mode (no echo, no line editing, no signals from keys). */
    static RawMode enterRawMode(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment t = a.allocate(TERMIOS_SIZE);
            if ((int) TCGETATTR.invokeExact(fd, t) != 0) {
                return null;
            }
            byte[] saved = t.toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
            CFMAKERAW.invokeExact(t);
            if ((int) TCSETATTR.invokeExact(fd, TCSANOW, t) != 0) {
                return null;
            }
            return new RawMode(fd, saved);
        } catch (Throwable e) {
            return null;
        }
    }

    /** The window size of the terminal on {@code fd}, or null when it has none. */
    static Size size(int fd) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ws = a.allocate(8); // struct winsize { u16 row, col, xpixel, ypixel }
            if (Posix.ioctl(fd, TIOCGWINSZ, ws) != 0) {
                return null;
            }
            int rows = ws.get(JAVA_SHORT, 0) & 0xffff;
            int cols = ws.get(JAVA_SHORT, 2) & 0xffff;
            return cols > 0 && rows > 0 ? new Size(cols, rows) : null;
        }
    }
}
