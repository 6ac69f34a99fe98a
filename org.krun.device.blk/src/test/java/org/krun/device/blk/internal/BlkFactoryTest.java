package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.DiskSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;
import org.krun.spi.virtio.VirtioDevice;

/** The factory: a disk that cannot work fails VM creation with one line naming the file and the reason. */
class BlkFactoryTest {

    @TempDir
    Path dir;

    private final BlkFactory factory = new BlkFactory();

    private String refusal(DiskSpec spec) {
        VmConfigException e = assertThrows(VmConfigException.class, () -> factory.create(spec).close());
        assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        return e.getMessage();
    }

    @Test
    void servesTheBlkType() {
        assertEquals("blk", factory.type());
        assertThrows(VmConfigException.class, () -> factory.create(new GenericDeviceSpec("blk", Map.of())));
    }

    @Test
    void createsADeviceForEachFormat() throws Exception {
        Path raw = dir.resolve("a.raw");
        Files.write(raw, new byte[1 << 20]);
        try (VirtioDevice d = factory.create(DiskSpec.raw(raw))) {
            VirtioBlk blk = assertInstanceOf(VirtioBlk.class, d);
            assertEquals(0, blk.deviceFeatures() & VirtioBlk.F_RO);
        }
        Path qcow2 = dir.resolve("a.qcow2");
        HostFiles.ok("qemu-img", "create", "-q", "-f", "qcow2", qcow2.toString(), "3M");
        try (VirtioDevice d = factory.create(DiskSpec.raw(qcow2).withFormat(DiskSpec.Format.QCOW2).withReadOnly(true))) {
            assertEquals(VirtioBlk.F_RO, d.deviceFeatures() & VirtioBlk.F_RO);
            byte[] capacity = new byte[8];
            d.readConfig(0, capacity);
            assertEquals(3 * 2048, java.nio.ByteBuffer.wrap(capacity).order(java.nio.ByteOrder.LITTLE_ENDIAN).getLong(),
                    "the virtual size, not the file size");
        }
    }

    @Test
    void refusesDisksThatCannotWork() throws Exception {
        assertTrue(refusal(DiskSpec.raw(dir.resolve("missing.img"))).contains("does not exist"));
        assertTrue(refusal(DiskSpec.raw(dir)).contains("is a directory"));
        Path empty = dir.resolve("empty.img");
        Files.write(empty, new byte[0]);
        assertTrue(refusal(DiskSpec.raw(empty)).contains("smaller than one 512-byte sector"));
        Path raw = dir.resolve("raw.img");
        Files.write(raw, new byte[1 << 20]);
        String notQcow2 = refusal(DiskSpec.raw(raw).withFormat(DiskSpec.Format.QCOW2));
        assertTrue(notQcow2.startsWith("disk " + raw + " is not a qcow2 image"), notQcow2);
        Path backed = dir.resolve("backed.qcow2");
        HostFiles.ok("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", raw.toString(), backed.toString());
        assertTrue(refusal(DiskSpec.raw(backed).withFormat(DiskSpec.Format.QCOW2)).contains("has a backing file"));
    }

    @Test
    void aDiskInUseByAnotherVmIsRefused() throws Exception {
        Path raw = dir.resolve("shared.img");
        Files.write(raw, new byte[1 << 20]);
        try (VirtioDevice first = factory.create(DiskSpec.raw(raw))) {
            assertTrue(refusal(DiskSpec.raw(raw)).contains("in use"));
        }
        try (VirtioDevice a = factory.create(DiskSpec.raw(raw).withReadOnly(true));
                VirtioDevice b = factory.create(DiskSpec.raw(raw).withReadOnly(true))) {
            assertEquals(VirtioBlk.F_RO, b.deviceFeatures() & VirtioBlk.F_RO, "read-only disks can be shared");
        }
    }
}
