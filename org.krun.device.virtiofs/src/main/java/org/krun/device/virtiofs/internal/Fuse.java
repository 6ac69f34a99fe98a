package org.krun.device.virtiofs.internal;

/**
 * The FUSE protocol as this server speaks it (include/uapi/linux/fuse.h, protocol 7.31): opcodes, INIT
 * flags, struct sizes, and the largest sizes it accepts from the guest.
 */
final class Fuse {
    private Fuse() {
    }

    static final int IN_HEADER = 40;
    static final int OUT_HEADER = 16;
    static final int KERNEL_VERSION = 7;
    static final int MINOR_VERSION = 31;
    static final int PAGE_SIZE = 4096;
    /** What INIT offers as max_pages; the kernel never sends a READ, WRITE or READDIR larger than this many pages. */
    static final int MAX_PAGES = 256;
    /** INIT's max_write, and the largest READ and READDIR size accepted (max_pages pages). */
    static final int MAX_WRITE = MAX_PAGES * PAGE_SIZE;
    static final int MAX_READ = MAX_WRITE;
    /** Longest argument block accepted for anything but WRITE (names, xattr values up to 64 KiB, structs). */
    static final int MAX_ARGS = 128 * 1024;
    /** XATTR_SIZE_MAX and XATTR_LIST_MAX (linux/limits.h): the kernel clamps xattr buffers to these. */
    static final int MAX_XATTR = 64 * 1024;
    /** How long the guest may cache names and attributes: short, since host processes may change the tree. */
    static final long VALID_SECONDS = 1;

    // opcodes (enum fuse_opcode)
    static final int LOOKUP = 1;
    static final int FORGET = 2;
    static final int GETATTR = 3;
    static final int SETATTR = 4;
    static final int READLINK = 5;
    static final int SYMLINK = 6;
    static final int MKNOD = 8;
    static final int MKDIR = 9;
    static final int UNLINK = 10;
    static final int RMDIR = 11;
    static final int RENAME = 12;
    static final int LINK = 13;
    static final int OPEN = 14;
    static final int READ = 15;
    static final int WRITE = 16;
    static final int STATFS = 17;
    static final int RELEASE = 18;
    static final int FSYNC = 20;
    static final int SETXATTR = 21;
    static final int GETXATTR = 22;
    static final int LISTXATTR = 23;
    static final int REMOVEXATTR = 24;
    static final int FLUSH = 25;
    static final int INIT = 26;
    static final int OPENDIR = 27;
    static final int READDIR = 28;
    static final int RELEASEDIR = 29;
    static final int FSYNCDIR = 30;
    static final int GETLK = 31;
    static final int SETLK = 32;
    static final int SETLKW = 33;
    static final int ACCESS = 34;
    static final int CREATE = 35;
    static final int INTERRUPT = 36;
    static final int DESTROY = 38;
    static final int BATCH_FORGET = 42;
    static final int FALLOCATE = 43;
    static final int READDIRPLUS = 44;
    static final int RENAME2 = 45;
    static final int LSEEK = 46;
    static final int COPY_FILE_RANGE = 47;
    static final int SETUPMAPPING = 48;
    static final int REMOVEMAPPING = 49;
    static final int SYNCFS = 50;

    // INIT flags
    static final int FUSE_ASYNC_READ = 1;
    static final int FUSE_POSIX_LOCKS = 1 << 1;
    static final int FUSE_ATOMIC_O_TRUNC = 1 << 3;
    static final int FUSE_BIG_WRITES = 1 << 5;
    static final int FUSE_FLOCK_LOCKS = 1 << 10;
    static final int FUSE_DO_READDIRPLUS = 1 << 13;
    static final int FUSE_READDIRPLUS_AUTO = 1 << 14;
    static final int FUSE_PARALLEL_DIROPS = 1 << 18;
    static final int FUSE_MAX_PAGES = 1 << 22;
    /** init_out.map_alignment holds log2 of the alignment SETUPMAPPING's offsets and lengths need. */
    static final int FUSE_MAP_ALIGNMENT = 1 << 26;
    static final int OFFERED_FLAGS = FUSE_ASYNC_READ | FUSE_POSIX_LOCKS | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES
            | FUSE_FLOCK_LOCKS | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES
            | FUSE_MAP_ALIGNMENT;
    /** init_in/init_out carry flags2, the upper 32 bits of the flags (protocol 7.36). */
    static final int FUSE_INIT_EXT = 1 << 30;
    /**
     * FUSE_HAS_INODE_DAX (bit 33, bit 1 of flags2): the server says per file, with {@link #FUSE_ATTR_DAX}
     * in its attributes, which files a share mounted {@code dax=inode} maps through the DAX window.
     */
    static final int FLAGS2_HAS_INODE_DAX = 1 << 1;
    /** fuse_attr.flags: map this file through the DAX window (for a {@code dax=inode} mount). */
    static final int FUSE_ATTR_DAX = 1 << 1;
    /** log2 of {@link #PAGE_SIZE}: DAX mappings are whole pages of the file and of the window. */
    static final int MAP_ALIGNMENT_SHIFT = 12;

    /** fuse_setupmapping_in.flags. */
    static final long SETUPMAPPING_FLAG_WRITE = 1;
    static final long SETUPMAPPING_FLAG_READ = 1 << 1;
    /** FUSE_REMOVEMAPPING_MAX_ENTRY: a page of struct fuse_removemapping_one, the most one request carries. */
    static final int REMOVEMAPPING_MAX = PAGE_SIZE / 16;

    /** fuse_open_out.open_flags: the guest keeps the pages it cached of the file (no invalidation at open). */
    static final int FOPEN_KEEP_CACHE = 1 << 1;
    static final int FUSE_RELEASE_FLOCK_UNLOCK = 1 << 1;
    static final int FUSE_LK_FLOCK = 1;
    static final int FUSE_FSYNC_FDATASYNC = 1;

    // struct sizes
    static final int ENTRY_OUT_SIZE = 128;
    static final int ATTR_OUT_SIZE = 104;
    static final int DIRENT_HEADER = 24;
    static final int WRITE_IN_SIZE = 40;

    /** Requests that belong on the hiprio queue (virtio 1.2 §5.11.6.2), and only there. */
    static boolean isHighPriority(int opcode) {
        return opcode == FORGET || opcode == BATCH_FORGET || opcode == INTERRUPT;
    }
}
