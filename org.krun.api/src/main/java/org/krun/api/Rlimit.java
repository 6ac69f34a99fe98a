package org.krun.api;

import java.util.Locale;
import java.util.Set;

/**
 * A resource limit the guest init sets before running the command, as {@code setrlimit(2)} names it
 * without the {@code RLIMIT_} prefix ({@code NOFILE}, {@code NPROC}, ...). {@code -1} is unlimited.
 */
public record Rlimit(String resource, long soft, long hard) {

    /** The resources the guest init knows. */
    public static final Set<String> RESOURCES = Set.of("CPU", "FSIZE", "DATA", "STACK", "CORE", "RSS", "NPROC",
            "NOFILE", "MEMLOCK", "AS", "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO", "RTTIME");

    public Rlimit {
        resource = resource.toUpperCase(Locale.ROOT);
        if (!RESOURCES.contains(resource)) {
            throw new IllegalArgumentException("unknown rlimit resource '" + resource + "'");
        }
        if (soft < -1 || hard < -1 || (hard != -1 && (soft == -1 || soft > hard))) {
            throw new IllegalArgumentException("rlimit " + resource + ": soft limit must not exceed hard limit");
        }
    }

    /**
     * Parses {@code NAME=SOFT:HARD} or {@code NAME=LIMIT} (both the same), with {@code unlimited} or
     * {@code -1} for no limit.
     */
    public static Rlimit parse(String text) {
        int eq = text.indexOf('=');
        if (eq <= 0) {
            throw new IllegalArgumentException("rlimit '" + text + "' is not NAME=SOFT:HARD");
        }
        String name = text.substring(0, eq);
        String value = text.substring(eq + 1);
        int colon = value.indexOf(':');
        long soft = parseLimit(colon < 0 ? value : value.substring(0, colon), text);
        long hard = colon < 0 ? soft : parseLimit(value.substring(colon + 1), text);
        return new Rlimit(name, soft, hard);
    }

    private static long parseLimit(String s, String whole) {
        if (s.equals("unlimited") || s.equals("-1")) {
            return -1;
        }
        try {
            long v = Long.parseLong(s);
            if (v < 0) {
                throw new NumberFormatException();
            }
            return v;
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("rlimit '" + whole + "': '" + s + "' is not a limit");
        }
    }
}
