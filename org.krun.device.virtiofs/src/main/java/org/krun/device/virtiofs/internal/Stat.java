package org.krun.device.virtiofs.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.MemorySegment;

/** What statx(2) said of an inode (linux/stat.h struct statx), as the FUSE replies need it. */
record Stat(long ino, long dev, int mode, int nlink, int uid, int gid, int rdevMajor, int rdevMinor, long size,
        long blocks, int blksize, long atimeSec, int atimeNsec, long mtimeSec, int mtimeNsec, long ctimeSec,
        int ctimeNsec) {

    static Stat of(MemorySegment s) {
        int mode = s.get(JAVA_SHORT, 28) & 0xffff;
        long dev = hostDev(s.get(JAVA_INT, 136), s.get(JAVA_INT, 140));
        return new Stat(s.get(JAVA_LONG, 32), dev, mode, s.get(JAVA_INT, 16), s.get(JAVA_INT, 20), s.get(JAVA_INT, 24),
                s.get(JAVA_INT, 128), s.get(JAVA_INT, 132), s.get(JAVA_LONG, 40), s.get(JAVA_LONG, 48),
                s.get(JAVA_INT, 4),
                s.get(JAVA_LONG, 64), s.get(JAVA_INT, 72), // atime
                s.get(JAVA_LONG, 112), s.get(JAVA_INT, 120), // mtime
                s.get(JAVA_LONG, 96), s.get(JAVA_INT, 104)); // ctime
    }

    /** glibc's makedev (sys/sysmacros.h): the 64-bit dev_t the host's mknod takes. */
    static long hostDev(int major, int minor) {
        long ma = major & 0xffffffffL;
        long mi = minor & 0xffffffffL;
        return ((ma & 0xfffff000L) << 32) | ((ma & 0xfffL) << 8) | ((mi & 0xffffff00L) << 12) | (mi & 0xffL);
    }

    /** The kernel's new_encode_dev: the 32-bit device number FUSE carries (fuse_attr.rdev, fuse_mknod_in.rdev). */
    static int fuseDev(int major, int minor) {
        return (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);
    }

    static int fuseDevMajor(int dev) {
        return (dev & 0xfff00) >>> 8;
    }

    static int fuseDevMinor(int dev) {
        return (dev & 0xff) | ((dev >>> 12) & 0xfff00);
    }

    int fuseRdev() {
        return fuseDev(rdevMajor, rdevMinor);
    }

    boolean isDirectory() {
        return (mode & HostFs.S_IFMT) == HostFs.S_IFDIR;
    }

    boolean isRegular() {
        return (mode & HostFs.S_IFMT) == HostFs.S_IFREG;
    }

    boolean isSymlink() {
        return (mode & HostFs.S_IFMT) == HostFs.S_IFLNK;
    }
}
