package org.krun.device.blk.internal;

import java.io.IOException;

/** A qcow2 image krun refuses or finds damaged; the message completes "image FILE ...". */
final class Qcow2Exception extends IOException {
    private static final long serialVersionUID = 1L;

    Qcow2Exception(String message) {
        super(message);
    }
}
