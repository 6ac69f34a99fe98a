package org.krun.spi.virtio;

/**
 * The driver made a malformed descriptor chain available. {@link #head()} is the chain's head index when
 * it is valid, so the device can return the chain as used (with length 0) and carry on; -1 when even the
 * head is unusable and the queue cannot continue.
 */
public final class InvalidChainException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int head;

    public InvalidChainException(int head, String message) {
        super(message);
        this.head = head;
    }

    public int head() {
        return head;
    }
}
