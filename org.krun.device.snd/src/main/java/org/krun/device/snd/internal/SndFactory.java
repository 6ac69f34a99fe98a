package org.krun.device.snd.internal;

import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.krun.api.GenericDeviceSpec;
import org.krun.api.SoundSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-snd for each VM that asks for one ({@code krun run --sound}). */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + SoundSpec.TYPE)
public final class SndFactory extends AbstractDeviceFactory<SoundSpec> {

    public SndFactory() {
        super(SoundSpec.TYPE, SoundSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(SoundSpec spec) {
        SoundBackend backend = switch (spec.backend()) {
            case SoundSpec.WAV -> new WavBackend(spec.playbackFile().orElseThrow(), spec.captureFile().orElse(null));
            case SoundSpec.NULL -> spec.captureFile().isPresent()
                    ? new WavBackend(null, spec.captureFile().get())
                    : new NullBackend();
            case SoundSpec.PULSE -> new PulseBackend(null);
            default -> throw new VmConfigException("sound backend '" + spec.backend() + "' is not offered by org.krun.device.snd");
        };
        return new VirtioSnd(backend, PcmClock.system("krun-snd-timer"));
    }

    /** {@code krun run --device snd,backend=null|wav,file=FILE,capture=FILE}. */
    @Override
    protected SoundSpec fromOptions(GenericDeviceSpec options) {
        Map<String, String> o = VirtioDeviceFactory.options(options, Set.of("backend", "file", "capture"));
        String backend = o.getOrDefault("backend", o.containsKey("file") ? SoundSpec.WAV : SoundSpec.NULL);
        return new SoundSpec(backend, Optional.ofNullable(o.get("file")).map(Path::of),
                Optional.ofNullable(o.get("capture")).map(Path::of));
    }
}
