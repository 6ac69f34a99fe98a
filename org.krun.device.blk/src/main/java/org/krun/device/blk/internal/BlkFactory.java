package org.krun.device.blk.internal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import org.krun.api.DiskSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.AbstractDeviceFactory;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;

/**
 * Creates a virtio-blk device for each disk a VM asks for. The image is opened (and checked, for qcow2)
 * here, so a disk that cannot work fails {@code Krun.create} with a one-line message.
 */
@Component(service = VirtioDeviceFactory.class, property = VirtioDeviceFactory.TYPE_PROPERTY + "=" + DiskSpec.TYPE)
public final class BlkFactory extends AbstractDeviceFactory<DiskSpec> {

    /** I/O threads per disk: requests in flight at once. */
    static final int IO_THREADS = 4;

    public BlkFactory() {
        super(DiskSpec.TYPE, DiskSpec.class);
    }

    @Override
    protected VirtioDevice newDevice(DiskSpec disk) {
        DiskBackend backend = open(disk);
        String name = disk.file().getFileName() == null ? "disk" : disk.file().getFileName().toString();
        return new VirtioBlk(backend, disk, IoExecutor.threads("krun-blk-" + name, IO_THREADS));
    }

    /** Opens the image as the spec says. */
    static DiskBackend open(DiskSpec disk) {
        Path file = disk.file();
        if (!Files.exists(file)) {
            throw new VmConfigException("disk " + file + " does not exist");
        }
        if (Files.isDirectory(file)) {
            throw new VmConfigException("disk " + file + " is a directory, not an image file");
        }
        try {
            DiskFile f = DiskFile.open(file, !disk.readOnly(), disk.direct(), disk.sync() == DiskSpec.Sync.FULL);
            return switch (disk.format()) {
                case RAW -> RawDisk.open(f);
                case QCOW2 -> Qcow2Disk.open(f);
            };
        } catch (Qcow2Exception e) {
            throw new VmConfigException("disk " + file + " " + e.getMessage(), e);
        } catch (IOException e) {
            throw new VmConfigException(e.getMessage(), e);
        }
    }
}
