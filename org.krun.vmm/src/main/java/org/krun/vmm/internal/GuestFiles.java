package org.krun.vmm.internal;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The files the devices of one VM ask the guest init to provide ({@code GuestSetup}), merged: contents that
 * replace a file and lines added to one, each path's pieces joined with newlines in device order.
 */
final class GuestFiles {
    /** The most bytes of files one VM's devices may hand the init (they travel in its config file). */
    static final int MAX_BYTES = 64 * 1024;

    private final Map<String, String> replace = new LinkedHashMap<>();
    private final Map<String, String> append = new LinkedHashMap<>();
    private int bytes;

    void add(org.krun.spi.virtio.GuestSetup setup) {
        merge(replace, setup.files());
        merge(append, setup.appends());
    }

    private void merge(Map<String, String> into, Map<String, String> files) {
        files.forEach((path, content) -> {
            bytes += path.length() + content.length();
            if (bytes > MAX_BYTES) {
                throw new org.krun.api.VmConfigException("the devices' guest files exceed " + MAX_BYTES + " bytes");
            }
            into.merge(path, content, (a, b) -> a.endsWith("\n") ? a + b : a + "\n" + b);
        });
    }

    Map<String, String> replace() {
        return replace;
    }

    Map<String, String> append() {
        return append;
    }
}
