package org.krun.launcher;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * What krun's standard streams are, checked before anything else runs. A stream the caller closed
 * ({@code <&-}, {@code >&-}) is not there to the process, and the JVM's first files (its {@code lib/modules},
 * a jar) take its number: read as stdin, the guest would get the JDK's files; written as stdout, output would go
 * nowhere. So a standard stream that is missing, or is one of the JVM's own files, counts as closed: a closed
 * stdin is end-of-file for the command, a closed (or read-only) stdout or stderr is an error, as writing to a
 * closed descriptor is. The {@code krun} script catches these first; this is the check for every other way in.
 *
 * @param stdinClosed whether fd 0 is closed: the command reads end-of-file, and nothing reads fd 0
 * @param error why krun cannot run with these streams, if it cannot
 */
record StandardStreams(boolean stdinClosed, Optional<String> error) {

    /** Set for the command line when fd 0 is closed (see {@link #stdinClosed()}). */
    static final String STDIN_PROPERTY = "krun.stdin";

    private static final int O_ACCMODE = 3;
    private static final int O_RDONLY = 0;

    /**
     * Reads fds 0-2 of the process whose {@code /proc/PID} is {@code proc}, whose JVM lives in {@code javaHome}
     * and whose launcher jar (with its class path, {@code lib/}) lies in {@code launcherDir}.
     */
    static StandardStreams inspect(Path proc, Path javaHome, Path launcherDir) {
        boolean stdinClosed = !open(proc, 0, javaHome, launcherDir);
        Optional<String> error = Optional.empty();
        String[] names = {null, "standard output (fd 1)", "standard error (fd 2)"};
        for (int fd = 2; fd >= 1; fd--) {
            if (!open(proc, fd, javaHome, launcherDir)) {
                error = Optional.of(names[fd] + " is closed: give krun somewhere to write (>/dev/null to discard)");
            } else if ((flags(proc, fd) & O_ACCMODE) == O_RDONLY) {
                error = Optional.of(names[fd] + " is open only for reading: give krun somewhere to write");
            }
        }
        return new StandardStreams(stdinClosed, error);
    }

    /** The streams of this process. */
    static StandardStreams ofThisProcess(Path launcherDir) {
        return inspect(Path.of("/proc/self"), Path.of(System.getProperty("java.home")), launcherDir);
    }

    /** Whether {@code fd} is open on something other than one of the files the JVM opens for itself. */
    private static boolean open(Path proc, int fd, Path javaHome, Path launcherDir) {
        Path target;
        try {
            target = Files.readSymbolicLink(proc.resolve("fd").resolve(Integer.toString(fd)));
        } catch (IOException | UnsupportedOperationException e) {
            return false;
        }
        if (!target.isAbsolute()) {
            return true; // pipe:[N], socket:[N], anon_inode:...
        }
        String name = target.getFileName() == null ? "" : target.getFileName().toString();
        boolean jvmOwn = target.startsWith(javaHome) || target.startsWith(launcherDir) && name.endsWith(".jar")
                || name.endsWith(".jsa") || name.endsWith(".aot"); // class data sharing, ahead-of-time caches
        return !jvmOwn;
    }

    /** The file status flags of {@code fd} ({@code /proc/PID/fdinfo/FD}, octal), 0 when unknown. */
    private static int flags(Path proc, int fd) {
        try {
            for (String line : Files.readAllLines(proc.resolve("fdinfo").resolve(Integer.toString(fd)))) {
                if (line.startsWith("flags:")) {
                    return Integer.parseInt(line.substring(6).trim(), 8);
                }
            }
        } catch (IOException | NumberFormatException e) {
            // unknown: take it as writable; writing will tell
        }
        return O_ACCMODE;
    }
}
