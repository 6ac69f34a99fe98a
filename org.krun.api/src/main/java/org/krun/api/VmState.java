package org.krun.api;

/** Where a VM is in its life. */
public enum VmState {
    /** Created, not started. */
    CREATED,
    /** Started: vCPUs run or are about to. */
    RUNNING,
    /** Stopped for any reason; see {@link VirtualMachine#exit()}. All host resources are released. */
    STOPPED
}
