package org.krun.vmm.internal.snapshot;

import org.krun.api.VmConfigException;

/** A snapshot that cannot be restored: missing, truncated, corrupt, or not for this VM or host. One line. */
public final class SnapshotException extends VmConfigException {
    private static final long serialVersionUID = 1L;

    public SnapshotException(String message) {
        super(message);
    }
}
