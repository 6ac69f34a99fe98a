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
 * @param tag the virtio-fs tag, at most 36 bytes of UTF-8 ({@value #ROOT_TAG} for the root)
 */
public record FsShareSpec(String tag, Path directory, boolean readOnly) implements DeviceSpec {

    /** The device type of virtio-fs shares. */
    public static final String TYPE = "fs";
    /** The tag of the share that is the guest's root, as libkrun names it. */
    public static final String ROOT_TAG = "/dev/root";
    /** virtio 1.2 §5.11.4: tag is 36 bytes, NUL-padded. */
    public static final int MAX_TAG_BYTES = 36;

    public FsShareSpec {
        Objects.requireNonNull(directory, "directory");
        if (tag == null || tag.isEmpty() || tag.getBytes(StandardCharsets.UTF_8).length > MAX_TAG_BYTES
                || tag.indexOf('\0') >= 0) {
            throw new VmConfigException("virtio-fs tag '" + tag + "' must be 1 to " + MAX_TAG_BYTES + " bytes");
        }
    }

    @Override
    public String type() {
        return TYPE;
    }
}
