package org.krun.spi.virtio;

import java.util.Objects;

import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * The base of a factory whose devices are described by one spec type: {@link #type()} is fixed, and
 * {@link #create(DeviceSpec)} hands {@link #newDevice} the spec as its own type, or a one-line
 * {@link VmConfigException} naming what came instead. A {@link GenericDeviceSpec} of this type (as
 * {@code krun run --device TYPE,KEY=VALUE} makes it) goes through {@link #fromOptions} first.
 *
 * @param <S> the spec type this factory's devices are made from
 */
@ConsumerType
public abstract class AbstractDeviceFactory<S extends DeviceSpec> implements VirtioDeviceFactory {

    private final String type;
    private final Class<S> specType;

    protected AbstractDeviceFactory(String type, Class<S> specType) {
        this.type = Objects.requireNonNull(type, "type");
        this.specType = Objects.requireNonNull(specType, "specType");
    }

    @Override
    public final String type() {
        return type;
    }

    @Override
    public final VirtioDevice create(DeviceSpec spec) {
        if (spec instanceof GenericDeviceSpec g && !specType.isInstance(spec)) {
            return newDevice(fromOptions(g));
        }
        return newDevice(VirtioDeviceFactory.expect(spec, specType));
    }

    /** A device for one VM, from its spec; throws a one-line {@link VmConfigException} if it cannot work. */
    protected abstract VirtioDevice newDevice(S spec);

    /**
     * The spec that generic options stand for ({@link VirtioDeviceFactory#options} checks their names).
     * By default this device type takes no generic spec.
     */
    protected S fromOptions(GenericDeviceSpec options) {
        throw new VmConfigException("a '" + type + "' device takes a " + specType.getSimpleName()
                + ", not options on the command line");
    }
}
