package org.krun.spi.virtio;

import java.nio.file.Path;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;

import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.GuestMount;
import org.krun.api.VmConfigException;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * Registered by a device bundle: creates a fresh device for each VM that asks for {@link #type()}.
 * Service property {@value #TYPE_PROPERTY} carries the type (the core indexes factories by it); where
 * several factories serve one type, {@code service.ranking} decides which one does.
 */
@ConsumerType
public interface VirtioDeviceFactory {

    String TYPE_PROPERTY = "krun.device.type";

    /** The {@link DeviceSpec#type()} this factory serves ({@code console}, {@code blk}, ...). */
    String type();

    /**
     * Creates a device for one VM. Validates {@code spec} and throws
     * {@link org.krun.api.VmConfigException} with a one-line message if it cannot work.
     */
    VirtioDevice create(DeviceSpec spec);

    /**
     * The device every VM gets while this factory is present, unless the VM asks for this type itself or
     * turns default devices off ({@link org.krun.api.VmConfig#defaultDevices()}): an entropy source or a
     * balloon, as libkrun gives every VM. Empty (the default) for devices that must be asked for.
     */
    default Optional<DeviceSpec> defaultSpec() {
        return Optional.empty();
    }

    /**
     * The default device for one VM, for factories whose default depends on the rest of its configuration
     * (socket impersonation only for a VM without a network card, say); {@link #defaultSpec()} unless
     * overridden.
     *
     * @since 1.1
     */
    default Optional<DeviceSpec> defaultSpec(org.krun.api.VmConfig config) {
        return defaultSpec();
    }

    /**
     * The device that serves host directory {@code directory} as the guest's root filesystem
     * ({@link org.krun.api.VmConfig#root()}), and how the guest mounts it, for device types that can (a
     * filesystem share, as libkrun's krun_set_root uses virtio-fs); read-only when {@code readOnly} (the
     * guest then writes into a layer of its own). Empty (the default) for the others; without any, the core
     * packs the directory into the initramfs.
     */
    default Optional<RootFilesystem> rootFilesystem(Path directory, boolean readOnly) {
        return Optional.empty();
    }

    /**
     * A root filesystem a factory offers.
     *
     * @param device the device to add to the VM
     * @param mount how the guest init mounts it (target {@code /})
     */
    record RootFilesystem(DeviceSpec device, GuestMount mount) {
        public RootFilesystem {
            Objects.requireNonNull(device, "device");
            Objects.requireNonNull(mount, "mount");
        }
    }

    /**
     * {@code spec} as the record a factory takes, or a {@link org.krun.api.VmConfigException} naming what
     * came instead: the first line of most {@link #create} methods.
     */
    static <T extends DeviceSpec> T expect(DeviceSpec spec, Class<T> type) {
        if (!type.isInstance(spec)) {
            throw new org.krun.api.VmConfigException("a '" + spec.type() + "' device takes a " + type.getSimpleName()
                    + ", not " + spec.getClass().getSimpleName());
        }
        return type.cast(spec);
    }

    /**
     * The options of a {@link GenericDeviceSpec} (as {@code krun run --device TYPE,KEY=VALUE} makes them),
     * checked against the ones a factory knows: a one-line {@link VmConfigException} names an unknown one.
     */
    static Map<String, String> options(GenericDeviceSpec spec, Set<String> known) {
        for (String key : spec.options().keySet()) {
            if (!known.contains(key)) {
                throw new VmConfigException("a '" + spec.type() + "' device has no option '" + key + "'"
                        + (known.isEmpty() ? " (it takes none)" : " (it takes: " + String.join(", ", new TreeSet<>(known)) + ")"));
            }
        }
        return spec.options();
    }

    /** {@code value} of option {@code key} as on/off (also true/false, yes/no, 1/0), or {@code otherwise} when absent. */
    static boolean flag(GenericDeviceSpec spec, String key, boolean otherwise) {
        String v = spec.options().get(key);
        if (v == null) {
            return otherwise;
        }
        return switch (v.toLowerCase(java.util.Locale.ROOT)) {
            case "on", "true", "yes", "1" -> true;
            case "off", "false", "no", "0" -> false;
            default -> throw new VmConfigException("option " + key + " of a '" + spec.type() + "' device is on or off, not '" + v + "'");
        };
    }
}
