package org.krun.posix;

import java.io.UncheckedIOException;

/** A failed system call: names the operation and the errno ({@code KVM_CREATE_VM: EINVAL}). */
public final class PosixException extends UncheckedIOException {
    private static final long serialVersionUID = 1L;

    private final String operation;
    private final int errno;

    public PosixException(String operation, int errno) {
        super(operation + ": " + Errno.name(errno), new java.io.IOException(Errno.describe(errno)));
        this.operation = operation;
        this.errno = errno;
    }

    public String operation() {
        return operation;
    }

    public int errno() {
        return errno;
    }
}
