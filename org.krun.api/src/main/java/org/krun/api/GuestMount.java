package org.krun.api;

import java.util.Objects;

/**
 * A filesystem the guest init mounts before running the command, as {@code mount(2)} takes it: a block
 * device or a virtio-fs tag as {@code source}, a guest path, a filesystem type and options ({@code "ro"}
 * first makes it read-only; the rest goes to the filesystem). As the VM's root mount, {@code target} is
 * {@code "/"}: the init switches to it.
 */
public record GuestMount(String source, String target, String fstype, String options) {

    public GuestMount {
        for (String s : new String[] {source, target, fstype}) {
            if (s == null || s.isEmpty()) {
                throw new VmConfigException("a guest mount needs a source, a target and a filesystem type");
            }
        }
        options = options == null ? "" : options;
        if (!target.startsWith("/")) {
            throw new VmConfigException("mount target must be an absolute guest path, not '" + target + "'");
        }
        for (String s : new String[] {source, target, fstype, options}) {
            if (s.indexOf('\0') >= 0) {
                throw new VmConfigException("mount of " + target + " contains a NUL character");
            }
        }
        Objects.requireNonNull(options);
    }

    /** Whether the options make this mount read-only. */
    public boolean readOnly() {
        return options.equals("ro") || options.startsWith("ro,");
    }
}
