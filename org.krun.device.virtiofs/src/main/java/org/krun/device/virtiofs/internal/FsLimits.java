package org.krun.device.virtiofs.internal;

/**
 * How many host resources one share may hold for its guest, each a host file descriptor: a guest that
 * reaches a bound gets an error for that request (the errno says which bound), never the host's own
 * EMFILE for the whole process, which would hurt every VM in the JVM.
 *
 * @param maxInodes inodes the guest knows at once (looked up and not yet forgotten; each holds an O_PATH
 *        descriptor), the share's root included: beyond it LOOKUP and the creating operations fail with
 *        ENFILE, and READDIRPLUS lists entries without looking them up
 * @param maxOpenFiles files and directories the guest holds open at once (OPEN, OPENDIR, CREATE): beyond
 *        it they fail with EMFILE
 * @param maxLockOwners guest lock owners holding POSIX locks at once, per open file (each holds a
 *        descriptor of its own, since OFD locks belong to open file descriptions): beyond it SETLK and
 *        SETLKW fail with ENOLCK
 */
record FsLimits(int maxInodes, int maxOpenFiles, int maxLockOwners) {

    FsLimits {
        if (maxInodes < 1 || maxOpenFiles < 1 || maxLockOwners < 1) {
            throw new IllegalArgumentException("every virtio-fs limit must be at least 1: " + maxInodes + ", "
                    + maxOpenFiles + ", " + maxLockOwners);
        }
    }

    /**
     * The defaults for a process whose descriptor limit (RLIMIT_NOFILE, soft) is {@code openFileLimit}: one
     * share takes at most half of it, so a single guest can never exhaust the JVM's descriptors; of that
     * half, an eighth goes to open files (64 to 16,384), a thirty-second to lock owners (16 to 4,096), the
     * rest to inodes (at least 256), since a Linux guest keeps every inode it has seen until memory pressure
     * makes it forget. With the usual limit of 1,048,576 that is 16,384 open files, 4,096 lock owners and
     * 503,808 inodes per share; with 1,024 it is 64, 16 and 432.
     */
    static FsLimits forOpenFileLimit(long openFileLimit) {
        long budget = Math.max(0, Math.min(openFileLimit, Integer.MAX_VALUE)) / 2;
        int openFiles = (int) Math.clamp(budget / 8, 64, 16_384);
        int lockOwners = (int) Math.clamp(budget / 32, 16, 4_096);
        int inodes = (int) Math.max(256, budget - openFiles - lockOwners);
        return new FsLimits(inodes, openFiles, lockOwners);
    }

    /** The defaults for this process ({@link #forOpenFileLimit} of its RLIMIT_NOFILE). */
    static FsLimits forThisProcess() {
        return forOpenFileLimit(HostFs.openFileLimit());
    }

    /**
     * How many inodes may be known before READDIRPLUS stops looking entries up (half the bound): those
     * lookups only save the guest a LOOKUP later, and must not use up the room explicit lookups need.
     */
    int readdirplusLookups() {
        return Math.max(1, maxInodes / 2);
    }
}
