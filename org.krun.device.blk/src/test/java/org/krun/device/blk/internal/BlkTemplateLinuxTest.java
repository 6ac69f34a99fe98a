package org.krun.device.blk.internal;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.DiskSpec;
import org.krun.api.VmExit;
import org.krun.device.virtiofs.internal.FsFactory;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.internal.template.TemplateCache;
import org.krun.vmm.testing.LinuxGuest;

/**
 * A disk's size is not part of a template's key (docs/templates.md): the first run boots with a 64 MiB disk
 * without partitions and is snapshotted at the init's template point; the second run gives a 128 MiB disk
 * with one MBR partition, restores that template (the cache keeps one template; the guest kernel logs the
 * capacity change, which a cold boot never does) and the guest sees the second disk as it is: its size and its
 * partition. Two boots, one of them a restore.
 */
class BlkTemplateLinuxTest {
    private static final int SECTOR = 512;
    private static final long PARTITION_START = 2048;
    private static final long PARTITION_SECTORS = 100_000;
    private static final String SCRIPT = "echo size=$(cat /sys/block/vda/size)"
            + " part=$(cat /sys/block/vda/vda1/size 2>/dev/null || echo none)"
            + " capacity-changes=$(dmesg | grep -c 'new size')";

    @TempDir
    Path dir;

    @Test
    void aRunRestoredFromATemplateSeesItsOwnDiskSizeAndPartitions() throws Exception {
        LinuxGuest.assumeKvm();
        Path cache = dir.resolve("templates");
        KrunService krun = LinuxGuest.krun(new BlkFactory(), new FsFactory());

        Path small = sized(dir.resolve("small.img"), 64L << 20);
        LinuxGuest.Result first = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", SCRIPT)
                .ephemeralRoot(true).templateCache(cache).device(DiskSpec.raw(small)));
        String firstOut = new String(first.stdout(), UTF_8);
        assertEquals(VmExit.commandExited(0), first.exit(), () -> firstOut + new String(first.stderr(), UTF_8));
        assertTrue(firstOut.contains("size=" + (64L << 20) / SECTOR + " part=none capacity-changes=0"), firstOut);
        TemplateCache templates = new TemplateCache(cache, TemplateCache.DEFAULT_MAX_TEMPLATES);
        assertEquals(1, templates.keys().size(), "one template made: " + templates.keys());

        Path big = partitioned(sized(dir.resolve("big.img"), 128L << 20));
        LinuxGuest.Result second = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", SCRIPT)
                .ephemeralRoot(true).templateCache(cache).device(DiskSpec.raw(big)));
        String secondOut = new String(second.stdout(), UTF_8);
        String secondErr = new String(second.stderr(), UTF_8);
        assertEquals(VmExit.commandExited(0), second.exit(), () -> secondOut + secondErr);
        assertEquals(1, templates.keys().size(), "the disk's size made no second template: " + templates.keys());
        assertTrue(secondOut.contains("size=" + (128L << 20) / SECTOR + " part=" + PARTITION_SECTORS
                + " capacity-changes=1"), () -> secondOut + secondErr);
        assertFalse(secondErr.contains("disk vda"), secondErr);
        System.out.printf("BlkTemplateLinuxTest: first: %s; restored: %s%n", firstOut.trim(), secondOut.trim());
    }

    private static Path sized(Path file, long bytes) throws Exception {
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.setLength(bytes);
        }
        return file;
    }

    /** One Linux partition in an MBR (the first sector): entry 1 at byte 446, the signature at 510. */
    private static Path partitioned(Path file) throws Exception {
        ByteBuffer mbr = ByteBuffer.allocate(SECTOR).order(ByteOrder.LITTLE_ENDIAN);
        mbr.put(446 + 4, (byte) 0x83).putInt(446 + 8, (int) PARTITION_START).putInt(446 + 12, (int) PARTITION_SECTORS);
        mbr.put(510, (byte) 0x55).put(511, (byte) 0xaa);
        try (RandomAccessFile f = new RandomAccessFile(file.toFile(), "rw")) {
            f.write(mbr.array());
        }
        return file;
    }
}
