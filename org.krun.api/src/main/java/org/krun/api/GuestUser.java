package org.krun.api;

import java.util.List;

/**
 * The credentials the guest command runs with: user id, group id and supplementary group ids, as numbers
 * (the guest's own user database is not consulted). Without one, the command runs as root (uid 0, gid 0).
 *
 * @since 1.4
 */
public record GuestUser(long uid, long gid, List<Long> groups) {

    /** The largest id Linux accepts ((uid_t) -1 means "unchanged" to the kernel). */
    public static final long MAX_ID = 0xfffffffeL;
    /** The most supplementary groups the guest init passes on. */
    public static final int MAX_GROUPS = 64;

    public GuestUser {
        groups = List.copyOf(groups);
        check(uid, "uid");
        check(gid, "gid");
        for (long g : groups) {
            check(g, "supplementary group id");
        }
        if (groups.size() > MAX_GROUPS) {
            throw new VmConfigException("at most " + MAX_GROUPS + " supplementary groups, not " + groups.size());
        }
    }

    /** A user with no supplementary groups. */
    public GuestUser(long uid, long gid) {
        this(uid, gid, List.of());
    }

    private static void check(long id, String what) {
        if (id < 0 || id > MAX_ID) {
            throw new VmConfigException(what + " " + id + " is not between 0 and " + MAX_ID);
        }
    }
}
