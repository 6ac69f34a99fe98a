package org.krun.spi.virtio;

/** A request needed more bytes than its descriptor chain offers: the driver's mistake. */
public final class ShortChainException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public ShortChainException(String message) {
        super(message);
    }
}
