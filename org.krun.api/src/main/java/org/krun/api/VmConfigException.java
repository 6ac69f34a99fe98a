package org.krun.api;

/** A VM configuration that cannot work; the message is a single line meant for the user. */
public class VmConfigException extends KrunException {
    private static final long serialVersionUID = 1L;

    public VmConfigException(String message) {
        super(message);
    }

    public VmConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
