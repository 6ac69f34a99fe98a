package org.krun.shell.internal;

/**
 * A krun:* command that failed, as the shell user should read it: Gogo's console prints a failed command's
 * exception with {@code toString()}, which for other exceptions starts with the class name
 * ({@code org.krun.api.VmConfigException: ...}). This one reads as its message alone, on one line; the
 * original stays the cause, for {@code $exception printStackTrace}.
 */
final class CommandFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    CommandFailure(Throwable cause) {
        super(oneLine(cause), cause);
    }

    private static String oneLine(Throwable e) {
        if (e instanceof InterruptedException) {
            return "interrupted";
        }
        String m = e.getMessage();
        if (m == null || m.isBlank()) {
            return e.getClass().getSimpleName();
        }
        return String.join(" ", m.strip().lines().map(String::strip).toList());
    }

    @Override
    public String toString() {
        return getMessage();
    }
}
