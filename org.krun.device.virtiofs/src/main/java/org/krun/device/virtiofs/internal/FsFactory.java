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

    /** The DAX window of a read-only root share: 32 pieces of 2 MiB (32 executables mapped at once), a 1 MiB memory map in the guest. */
    static final long ROOT_DAX_WINDOW = 64L << 20;

    /**
     * A root directory is shared as tag {@value FsShareSpec#ROOT_TAG}, which the guest init mounts as /. A
     * read-only root (the lower layer of an ephemeral one) gets a DAX window and is mounted with dax=inode:
     * the guest executes the files the device marks (executables, {@link FuseReply#daxEligible}) through
     * host page cache mapped into its memory, not through a FUSE_READ per 128 KiB copied into its own page
     * cache, and reads everything else as before (a kernel without FUSE_DAX mounts it without: the init
     * retries without the option). A writable root is shared without: the guest's writes are cheap either
     * way, and a file the host truncates under a DAX mapping would fault the guest.
     */
    @Override
    public Optional<RootFilesystem> rootFilesystem(Path directory, boolean readOnly) {
        FsShareSpec share = new FsShareSpec(FsShareSpec.ROOT_TAG, directory, readOnly);
        return Optional.of(new RootFilesystem(readOnly ? share.withDaxWindow(ROOT_DAX_WINDOW) : share,
                new GuestMount(FsShareSpec.ROOT_TAG, "/", "virtiofs", readOnly ? "ro,dax=inode" : "")));
    }
}
