package org.krun.spi.virtio;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * What a device needs of the guest besides its driver: arguments on the guest kernel's command line (the
 * switch that turns on transparent socket impersonation, say), and small files the guest init provides
 * before the command runs ({@code /etc/resolv.conf}, {@code /etc/hosts}). The init never writes them into a
 * root the user shares live: it lays them over existing files there (a bind mount of a copy in guest
 * memory) and, where the root is the guest's own (an initramfs, or an ephemeral root), writes them.
 *
 * @param kernelArgs arguments for the guest kernel's command line
 * @param files guest paths (absolute) and the contents that replace what is there; a path given by several
 *        devices gets the contents joined, in device order
 * @param appends guest paths and lines added to what is there ({@code /etc/hosts} entries)
 */
public record GuestSetup(List<String> kernelArgs, Map<String, String> files, Map<String, String> appends) {

    /** Nothing. */
    public static final GuestSetup NONE = new GuestSetup(List.of(), Map.of(), Map.of());

    public GuestSetup {
        kernelArgs = List.copyOf(kernelArgs);
        files = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(files));
        appends = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(appends));
        for (String path : concat(files, appends)) {
            if (!path.startsWith("/") || path.contains("\0") || path.contains("/../") || path.endsWith("/..")) {
                throw new IllegalArgumentException("guest file path '" + path + "' is not a plain absolute path");
            }
        }
        for (String a : kernelArgs) {
            Objects.requireNonNull(a);
            if (a.isEmpty() || a.contains(" ") || a.contains("\0")) {
                throw new IllegalArgumentException("kernel argument '" + a + "' is empty or holds a space");
            }
        }
    }

    private static List<String> concat(Map<String, String> a, Map<String, String> b) {
        List<String> all = new java.util.ArrayList<>(a.keySet());
        all.addAll(b.keySet());
        return all;
    }
}
