package org.krun.device.gpu.internal;

import java.util.Map;
import java.util.Set;

import org.krun.api.GenericDeviceSpec;
import org.krun.api.GpuSpec;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-gpu for each VM that asks for one ({@code krun run --gpu 2d}, {@code --gpu virgl} or {@code --gpu venus}); none by default. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + GpuSpec.TYPE)
public final class GpuFactory extends AbstractDeviceFactory<GpuSpec> {

    public GpuFactory() {
        super(GpuSpec.TYPE, GpuSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(GpuSpec spec) {
        if (spec.mode() != GpuSpec.Mode.TWO_D) {
            // one line if virglrenderer (or for Venus its render server or a Vulkan driver) is missing, cannot
            // start, or another VM of this process has it
            return new VirtioGpu(spec, VirglRenderer.acquire("a VM's " + spec, spec.mode() == GpuSpec.Mode.VENUS));
        }
        return new VirtioGpu(spec);
    }

    /** {@code krun run --device gpu[,mode=2d][,size=WxH][,scanouts=N][,memory=MiB]}. */
    @Override
    protected GpuSpec fromOptions(GenericDeviceSpec options) {
        Map<String, String> o = VirtioDeviceFactory.options(options, Set.of("mode", "size", "scanouts", "memory"));
        StringBuilder text = new StringBuilder(o.getOrDefault("mode", "2d"));
        for (String key : new String[] {"size", "scanouts", "memory"}) {
            if (o.containsKey(key)) {
                text.append(',').append(key).append('=').append(o.get(key));
            }
        }
        return GpuSpec.parse(text.toString());
    }
}
