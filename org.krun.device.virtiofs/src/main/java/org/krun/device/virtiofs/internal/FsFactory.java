package org.krun.device.virtiofs.internal;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/** Creates a virtio-fs device for each share of each VM. */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + FsShareSpec.TYPE)
public final class FsFactory extends AbstractDeviceFactory<FsShareSpec> {

    public FsFactory() {
        super(FsShareSpec.TYPE, FsShareSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(FsShareSpec share) {
        if (!Files.isDirectory(share.directory())) {
            throw new VmConfigException("shared directory " + share.directory() + " does not exist or is not a directory");
        }
        if (!Files.isReadable(share.directory()) || !Files.isExecutable(share.directory())) {
            throw new VmConfigException("shared directory " + share.directory() + " is not accessible");
        }
        return new VirtioFs(share);
    }

    /** A root directory is shared as tag {@value FsShareSpec#ROOT_TAG}, which the guest init mounts as /. */
    @Override
    public Optional<RootFilesystem> rootFilesystem(Path directory, boolean readOnly) {
        return Optional.of(new RootFilesystem(new FsShareSpec(FsShareSpec.ROOT_TAG, directory, readOnly),
                new GuestMount(FsShareSpec.ROOT_TAG, "/", "virtiofs", readOnly ? "ro" : "")));
    }
}
