package org.krun.api;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Objects;

/**
 * A host directory shared with the guest over virtio-fs under {@code tag}; the guest mounts it with
 * {@code mount -t virtiofs TAG DIR} (krun's init does, for the root and for every
 * {@link VmConfig#mounts()} entry of type virtiofs). The guest can reach nothing outside
 * {@code directory}. A read-only share refuses every change with EROFS.
 *
 * <p>With a DAX window ({@code daxWindowBytes} &gt; 0, virtio 1.2 §5.11.5 shared memory region 0) the guest
 * may mount the share with {@code dax=always} (or {@code dax=inode}): it then reads, writes and executes files
 * through host page cache mapped into its address space, in 2 MiB pieces, instead of copying them with
 * FUSE_READ requests into its own page cache. The window costs the guest 64 bytes of memory map per 4 KiB of
 * it (2 MiB for 128 MiB) and the host nothing until the guest maps files.
 *
 * @param tag the virtio-fs tag, at most 36 bytes of UTF-8 ({@value #ROOT_TAG} for the root)
 * @param daxWindowBytes the DAX window's size: 0 for none, or a multiple of 2 MiB up to {@link #MAX_DAX_WINDOW}
 *        (since 1.6)
 */
public record FsShareSpec(String tag, Path directory, boolean readOnly, long daxWindowBytes) implements DeviceSpec {

    /** The device type of virtio-fs shares. */
    public static final String TYPE = "fs";
    /** The tag of the share that is the guest's root, as libkrun names it. */
    public static final String ROOT_TAG = "/dev/root";
    /** virtio 1.2 §5.11.4: tag is 36 bytes, NUL-padded. */
    public static final int MAX_TAG_BYTES = 36;
    /** The granule of a DAX window: the guest maps files in pieces of 2 MiB. Since 1.6. */
    public static final long DAX_GRANULE = 2L << 20;
    /** The largest DAX window: 16 GiB of guest-physical address space. Since 1.6. */
    public static final long MAX_DAX_WINDOW = 16L << 30;

    /** A share without a DAX window. */
    public FsShareSpec(String tag, Path directory, boolean readOnly) {
        this(tag, directory, readOnly, 0);
    }

    public FsShareSpec {
        Objects.requireNonNull(directory, "directory");
        if (tag == null || tag.isEmpty() || tag.getBytes(StandardCharsets.UTF_8).length > MAX_TAG_BYTES
                || tag.indexOf('\0') >= 0) {
            throw new VmConfigException("virtio-fs tag '" + tag + "' must be 1 to " + MAX_TAG_BYTES + " bytes");
        }
        if (daxWindowBytes < 0 || daxWindowBytes % DAX_GRANULE != 0 || daxWindowBytes > MAX_DAX_WINDOW) {
            throw new VmConfigException("virtio-fs share '" + tag + "': a DAX window of " + daxWindowBytes
                    + " bytes is not a multiple of 2 MiB up to 16 GiB");
        }
    }

    /** This share with a DAX window of {@code bytes} (0: none). Since 1.6. */
    public FsShareSpec withDaxWindow(long bytes) {
        return new FsShareSpec(tag, directory, readOnly, bytes);
    }

    @Override
    public String type() {
        return TYPE;
    }
}
