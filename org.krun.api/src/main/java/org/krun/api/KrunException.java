package org.krun.api;

/** A failure of krun itself (host resources, hypervisor), as opposed to the guest's own exit. */
public class KrunException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public KrunException(String message) {
        super(message);
    }

    public KrunException(String message, Throwable cause) {
        super(message, cause);
    }
}
