package org.krun.vmm.internal.initramfs;

import java.nio.file.Path;

/**
 * One member of a newc cpio archive. Exactly one of {@code data} (bytes given here) or {@code source} (a
 * host file read while writing) supplies a regular file's contents; symlinks carry their target in
 * {@code data}.
 */
record CpioEntry(String name, int mode, int uid, int gid, long mtime, int rdevMajor, int rdevMinor, byte[] data,
        Path source, long size) {

    static final int S_IFMT = 0170000;
    static final int S_IFDIR = 0040000;
    static final int S_IFREG = 0100000;
    static final int S_IFLNK = 0120000;
    static final int S_IFCHR = 0020000;
    static final int S_IFBLK = 0060000;
    static final int S_IFIFO = 0010000;

    static CpioEntry directory(String name, int perm, long mtime) {
        return new CpioEntry(name, S_IFDIR | perm, 0, 0, mtime, 0, 0, null, null, 0);
    }

    static CpioEntry file(String name, int perm, long mtime, byte[] data) {
        return new CpioEntry(name, S_IFREG | perm, 0, 0, mtime, 0, 0, data, null, data.length);
    }

    static CpioEntry hostFile(String name, int perm, long mtime, Path source, long size) {
        return new CpioEntry(name, S_IFREG | perm, 0, 0, mtime, 0, 0, null, source, size);
    }

    static CpioEntry symlink(String name, long mtime, byte[] target) {
        return new CpioEntry(name, S_IFLNK | 0777, 0, 0, mtime, 0, 0, target, null, target.length);
    }

    static CpioEntry node(String name, int mode, long mtime, int major, int minor) {
        return new CpioEntry(name, mode, 0, 0, mtime, major, minor, null, null, 0);
    }
}
