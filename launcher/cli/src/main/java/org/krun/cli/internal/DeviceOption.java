package org.krun.cli.internal;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Pattern;

import org.krun.api.ConsoleSpec;
import org.krun.api.DiskSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;

/**
 * The value of {@code --device}: {@code TYPE[,KEY=VALUE...]}, a device of any type a device bundle offers,
 * with options its factory interprets ({@link GenericDeviceSpec}). Types with options of their own on the
 * command line ({@code --disk}, {@code -v}) are sent there. Every mistake is one line.
 */
final class DeviceOption {

    private static final Pattern TYPE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]*");

    private DeviceOption() {
    }

    static GenericDeviceSpec parse(String value) {
        String[] parts = value.split(",", -1);
        String type = parts[0];
        if (!TYPE.matcher(type).matches()) {
            throw new VmConfigException("--device " + value + ": '" + type + "' is not a device type (letters, digits, . _ -)");
        }
        switch (type) {
            case DiskSpec.TYPE -> throw new VmConfigException("--device " + value + ": attach disks with --disk FILE[,OPTION...]");
            case FsShareSpec.TYPE -> throw new VmConfigException("--device " + value + ": share directories with -v HOST:GUEST[:ro]");
            case ConsoleSpec.TYPE -> throw new VmConfigException("--device " + value + ": every VM has its console already");
            default -> {
            }
        }
        Map<String, String> options = new LinkedHashMap<>();
        for (int i = 1; i < parts.length; i++) {
            String part = parts[i];
            int eq = part.indexOf('=');
            if (eq <= 0) {
                throw new VmConfigException("--device " + value + ": '" + part + "' is not KEY=VALUE");
            }
            String key = part.substring(0, eq);
            if (options.putIfAbsent(key, part.substring(eq + 1)) != null) {
                throw new VmConfigException("--device " + value + ": '" + key + "' is given twice");
            }
        }
        return new GenericDeviceSpec(type, options);
    }
}
