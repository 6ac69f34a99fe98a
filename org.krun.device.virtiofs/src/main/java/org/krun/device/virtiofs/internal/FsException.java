package org.krun.device.virtiofs.internal;

/**
 * A filesystem operation failed with {@code errno}: the FUSE reply carries {@code -errno}. Thrown on every
 * guest mistake and host refusal, so it skips the stack trace.
 */
final class FsException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    final int errno;

    FsException(int errno) {
        super("errno " + errno, null, false, false);
        this.errno = errno;
    }
}
