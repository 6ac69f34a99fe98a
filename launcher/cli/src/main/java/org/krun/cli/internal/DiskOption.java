package org.krun.cli.internal;

import java.nio.file.Path;
import java.util.HashSet;
import java.util.Set;

import org.krun.api.DiskSpec;
import org.krun.api.VmConfigException;

/**
 * The value of {@code --disk} and {@code --root-disk}: {@code FILE[,ro][,id=NAME][,format=raw|qcow2]
 * [,sync=none|relaxed|full][,direct]}, and for the root disk also {@code fstype=TYPE}. Every mistake is a
 * one-line {@link VmConfigException} naming the flag and the offending part.
 *
 * @param disk the disk
 * @param fstype the root file system's type ({@code ext4} unless given); only for {@code --root-disk}
 */
record DiskOption(DiskSpec disk, String fstype) {

    static final String DEFAULT_FSTYPE = "ext4";

    /** Parses {@code value} of {@code flag} ({@code --disk} or {@code --root-disk}). */
    static DiskOption parse(String flag, String value) {
        boolean root = flag.equals("--root-disk");
        String[] parts = value.split(",", -1);
        if (parts[0].isEmpty()) {
            throw new VmConfigException(flag + " needs a file: '" + value + "'");
        }
        DiskSpec disk = DiskSpec.raw(Path.of(parts[0]).toAbsolutePath());
        String fstype = root ? DEFAULT_FSTYPE : null;
        Set<String> seen = new HashSet<>();
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            int eq = part.indexOf('=');
            String name = eq < 0 ? part : part.substring(0, eq);
            String arg = eq < 0 ? null : part.substring(eq + 1);
            if (!seen.add(name)) {
                throw new VmConfigException(flag + " " + value + ": '" + name + "' is given twice");
            }
            try {
                switch (name) {
                    case "ro" -> disk = disk.withReadOnly(flag(flag, value, name, arg));
                    case "direct" -> disk = disk.withDirect(flag(flag, value, name, arg));
                    case "id" -> disk = disk.withId(required(flag, value, name, arg));
                    case "format" -> disk = disk.withFormat(DiskSpec.Format.parse(required(flag, value, name, arg)));
                    case "sync" -> disk = disk.withSync(DiskSpec.Sync.parse(required(flag, value, name, arg)));
                    case "fstype" -> {
                        if (!root) {
                            throw new VmConfigException(flag + " " + value + ": fstype is for --root-disk only");
                        }
                        fstype = required(flag, value, name, arg);
                    }
                    default -> throw new VmConfigException(flag + " " + value + ": unknown option '" + name + "'");
                }
            } catch (VmConfigException e) {
                if (e.getMessage().startsWith(flag)) {
                    throw e;
                }
                throw new VmConfigException(flag + " " + value + ": " + e.getMessage());
            }
        }
        return new DiskOption(disk, fstype);
    }

    private static boolean flag(String flag, String value, String name, String arg) {
        if (arg != null) {
            throw new VmConfigException(flag + " " + value + ": '" + name + "' takes no value");
        }
        return true;
    }

    private static String required(String flag, String value, String name, String arg) {
        if (arg == null || arg.isEmpty()) {
            throw new VmConfigException(flag + " " + value + ": '" + name + "' needs a value (" + name + "=...)");
        }
        return arg;
    }
}
