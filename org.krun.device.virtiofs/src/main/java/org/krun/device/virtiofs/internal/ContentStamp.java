package org.krun.device.virtiofs.internal;

/**
 * What a regular file's contents were, as far as its metadata tells, when the guest opened it: size, mtime and
 * ctime. A write, a truncate, a {@code utimensat} or a rename over it all change ctime, which the host sets
 * and nobody can set back.
 *
 * <p>Used to decide whether the guest may keep the file's pages cached across an open (FUSE's
 * {@code FOPEN_KEEP_CACHE}): without it the guest kernel drops every cached page of a file at each open
 * (close-to-open consistency), so a shell script that runs busybox ten times reads its 2 MiB ten times
 * through the queue. Keeping them is safe when nothing changed since the guest's previous open: the
 * stamp is the same, and it was <em>settled</em> when taken, that is, its ctime was older than
 * {@link #SETTLED_NANOS} at the moment it was read. A file changed within that time could be changed again
 * within the same timestamp tick without its stamp changing (file systems keep coarse times: a jiffy on
 * ext4, 2 s on FAT), so such a file is read afresh at its next open, as before.
 */
record ContentStamp(long size, long mtimeSec, int mtimeNsec, long ctimeSec, int ctimeNsec, boolean settled) {

    /** How old a ctime must be for its stamp to be trusted: more than any file system's timestamp tick. */
    static final long SETTLED_NANOS = 3_000_000_000L;

    /** The stamp of {@code st}, read at {@code nowNanos} (nanoseconds of the host's real-time clock). */
    static ContentStamp of(Stat st, long nowNanos) {
        boolean settled;
        try {
            long ctime = Math.addExact(Math.multiplyExact(st.ctimeSec(), 1_000_000_000L), st.ctimeNsec());
            settled = Math.subtractExact(nowNanos, ctime) > SETTLED_NANOS;
        } catch (ArithmeticException e) {
            settled = false; // a time no clock reaches: trust nothing
        }
        return new ContentStamp(st.size(), st.mtimeSec(), st.mtimeNsec(), st.ctimeSec(), st.ctimeNsec(), settled);
    }

    /**
     * Whether a guest that opened the file when it had stamp {@code before} may keep what it cached then,
     * now that it has this stamp: both settled and alike.
     */
    boolean keeps(ContentStamp before) {
        return before != null && before.settled && settled && size == before.size && mtimeSec == before.mtimeSec
                && mtimeNsec == before.mtimeNsec && ctimeSec == before.ctimeSec && ctimeNsec == before.ctimeNsec;
    }
}
