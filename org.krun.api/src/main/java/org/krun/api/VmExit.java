package org.krun.api;

/**
 * How a VM ended.
 *
 * @param reason what stopped it
 * @param status the guest command's exit status when {@code reason} is {@link Reason#COMMAND_EXITED}
 *        (0-255, with 125 setup failed, 126 not executable, 127 not found and 128+n killed by signal n);
 *        otherwise the status a process wrapping the VM should exit with
 * @param detail a human-readable line, empty when there is nothing to add
 */
public record VmExit(Reason reason, int status, String detail) {

    /** Why a VM stopped. */
    public enum Reason {
        /** The guest init reported the command's exit status and the guest rebooted. */
        COMMAND_EXITED,
        /** The guest rebooted or powered off without reporting a status. */
        GUEST_STOPPED,
        /** The guest or the hypervisor failed (triple fault, emulation failure, VMM error). */
        FAILED,
        /** {@link VirtualMachine#kill()} or {@link VirtualMachine#close()} stopped it. */
        KILLED,
        /** The configured timeout expired. */
        TIMED_OUT
    }

    public VmExit {
        if (reason == null) {
            throw new IllegalArgumentException("reason is null");
        }
        detail = detail == null ? "" : detail;
    }

    public static VmExit commandExited(int status) {
        return new VmExit(Reason.COMMAND_EXITED, status, "");
    }

    public static VmExit guestStopped(String detail) {
        return new VmExit(Reason.GUEST_STOPPED, 1, detail);
    }

    public static VmExit failed(String detail) {
        return new VmExit(Reason.FAILED, 1, detail);
    }

    public static VmExit killed() {
        return new VmExit(Reason.KILLED, 137, "killed");
    }

    public static VmExit timedOut(String detail) {
        return new VmExit(Reason.TIMED_OUT, 124, detail);
    }
}
