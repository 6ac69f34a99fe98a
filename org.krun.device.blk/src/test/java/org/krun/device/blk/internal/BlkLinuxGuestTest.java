package org.krun.device.blk.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.DiskSpec;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;

/**
 * Two boots of krun's Linux kernel. The first has four disks, checking the device from the guest's side
 * and the images from the host's after the VM has stopped; the second runs from a root disk. The guest runs blkcheck (src/test/guest), one process
 * doing every step, from a test root: the default busybox rootfs plus blkcheck and the host's mke2fs.
 *
 * <ul>
 * <li>vda: an empty 96 MiB raw image, serial {@code krun-scratch}, sync=full: the guest makes an ext4 file
 * system on it (mke2fs discards and zeroes through the device), writes and fsyncs files, unmounts; the
 * host finds it clean ({@code e2fsck -fn}) holding those files.
 * <li>vdb: a 32 MiB ext4 image the host made with files in it, O_DIRECT: the guest reads the files, deletes
 * the big one and trims the file system; the host sees the image's allocated blocks shrink.
 * <li>vdc: a 1 MiB raw image, read-only, a 20-byte serial: the guest cannot open it for writing and reads
 * what the host put there; the file is unchanged.
 * <li>vdd: a 64 MiB qcow2 image from {@code qemu-img create}: direct writes, discard and write-zeroes from
 * the guest, read back, and 8 threads reading at once; the host finds it clean ({@code qemu-img check})
 * and holding exactly what the guest wrote.
 * </ul>
 * The disks appear in the order given, with their sizes and serials, and the guest kernel logs no I/O error.
 * The test rootfs costs a few seconds to copy; each boot tens of seconds on kvm-pvm hosts.
 */
class BlkLinuxGuestTest {
    private static final int VDA = 96 << 20;
    private static final int VDB = 32 << 20;
    private static final int VDC = 1 << 20;
    private static final int VDD = 64 << 20;

    @TempDir
    Path dir;

    @Test
    void linuxGuestUsesFourDisksAndTheHostFindsThemIntact() throws Exception {
        LinuxGuest.assumeKvm();
        Path root = testRootfs(dir.resolve("rootfs"));

        Path vda = dir.resolve("scratch.img");
        try (var f = new java.io.RandomAccessFile(vda.toFile(), "rw")) {
            f.setLength(VDA);
        }
        Path vdb = hostMadeExt4(dir.resolve("hostmade.img"));
        long vdbBlocksBefore = HostFiles.allocatedBlocks(vdb);
        Path vdc = dir.resolve("readonly.img");
        byte[] readOnlyContent = GuestPatterns.pattern(4, 0, VDC);
        Files.write(vdc, readOnlyContent);
        Path vdd = dir.resolve("guest.qcow2");
        HostFiles.ok("qemu-img", "create", "-q", "-f", "qcow2", vdd.toString(), Integer.toString(VDD));

        List<String> steps = List.of("info:vda", "info:vdb", "info:vdc", "info:vdd", "readonly:vdc",
                "mkfs:vda", "mount:vda:/mnt/a:noinit_itable", "writefiles:/mnt/a", "umount:/mnt/a",
                "mount:vdb:/mnt/b", "readfiles:/mnt/b", "trim:/mnt/b:big.bin", "umount:/mnt/b",
                "pattern:vdd", "kernelerrors");
        List<String> command = new ArrayList<>(List.of("/usr/local/bin/blkcheck"));
        command.addAll(steps);
        BlkFactory blk = new BlkFactory();
        LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(blk), LinuxGuest.config().root(root).command(command)
                .device(DiskSpec.raw(vda).withId("krun-scratch").withSync(DiskSpec.Sync.FULL))
                .device(DiskSpec.raw(vdb).withDirect(true))
                .device(DiskSpec.raw(vdc).withReadOnly(true).withId("ABCDEFGHIJKLMNOPQRST"))
                .device(DiskSpec.raw(vdd).withFormat(DiskSpec.Format.QCOW2)), null, Duration.ofSeconds(600));
        System.out.println("guest output:\n" + r); // for the record, in the test report
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        assertEquals(0, r.status(), r.toString());
        Map<String, String> seen = HostBlkcheck.parse(r.out());
        assertEquals("done", seen.get("blkcheck"), r.toString());

        // order, sizes, serials and limits as the guest kernel sees them
        assertEquals(Integer.toString(VDA / 512), seen.get("vda.size"), r.toString());
        assertEquals(Integer.toString(VDB / 512), seen.get("vdb.size"), r.toString());
        assertEquals(Integer.toString(VDC / 512), seen.get("vdc.size"), r.toString());
        assertEquals(Integer.toString(VDD / 512), seen.get("vdd.size"), "the qcow2 virtual size: " + r);
        assertEquals("krun-scratch", seen.get("vda.serial"), r.toString());
        assertEquals("", seen.get("vdb.serial"), r.toString());
        assertEquals("ABCDEFGHIJKLMNOPQRST", seen.get("vdc.serial"), r.toString());
        assertEquals("0", seen.get("vda.ro"), r.toString());
        assertEquals("1", seen.get("vdc.ro"), r.toString());
        assertEquals("write back", seen.get("vda.cache_type"), "F_FLUSH negotiated: " + r);
        assertEquals("254", seen.get("vda.max_segments"), r.toString());
        assertEquals("512", seen.get("vda.logical_block"), r.toString());
        assertTrue(Long.parseLong(seen.get("vda.discard_max")) >= 1 << 30, r.toString());
        assertTrue(Long.parseLong(seen.get("vda.write_zeroes_max")) >= 1 << 30, r.toString());
        assertEquals("0", seen.get("vdc.discard_max"), "a read-only disk offers no discard: " + r);
        assertEquals("4096", seen.get("vdb.discard_granularity"), r.toString());
        assertEquals("65536", seen.get("vdd.discard_granularity"), "qcow2 discards whole clusters: " + r);

        // vdc: read-only
        assertTrue(List.of("EPERM", "EROFS", "EACCES").contains(seen.get("vdc.write")), r.toString());
        assertEquals("1", seen.get("vdc.blkroget"), r.toString());
        assertEquals(String.format("%016x", GuestPatterns.fnv1a(readOnlyContent)), seen.get("vdc.hash"), r.toString());
        assertArrayEquals(readOnlyContent, Files.readAllBytes(vdc), "the read-only image is untouched");

        // vda: ext4 made and written by the guest
        assertEquals("0", seen.get("vda.mkfs"), r.toString());
        assertEquals("ok", seen.get("vda.mount"), r.toString());
        assertEquals("3", seen.get("writefiles"), r.toString());
        assertEquals("ok", seen.get("umount./mnt/a"), r.toString());
        assertFsckClean(vda);
        assertArrayEquals(GuestPatterns.pattern(1, 0, 1 << 20), debugfsCat(vda, "/pattern.bin"));
        assertEquals("hello from the guest\n", new String(debugfsCat(vda, "/small.txt"), StandardCharsets.UTF_8));
        assertEquals("nested\n", new String(debugfsCat(vda, "/sub/nested.txt"), StandardCharsets.UTF_8));
        assertTrue(HostFiles.ok("dumpe2fs", "-h", vda.toString()).contains("guestmade"), "the guest's label");

        // vdb: prepared on the host, read and trimmed by the guest
        assertEquals("ok", seen.get("vdb.mount"), r.toString());
        assertEquals(GuestPatterns.fileHash(HELLO), seen.get("readfiles.hello"), r.toString());
        assertEquals(GuestPatterns.fileHash(GuestPatterns.pattern(3, 0, BIG)), seen.get("readfiles.big"), r.toString());
        assertTrue(Long.parseLong(seen.get("trim")) >= BIG, "FITRIM trimmed the deleted file's blocks: " + r);
        assertEquals("ok", seen.get("umount./mnt/b"), r.toString());
        long vdbBlocksAfter = HostFiles.allocatedBlocks(vdb);
        assertTrue(vdbBlocksAfter <= vdbBlocksBefore - BIG / 512,
                "discard gave the big file's blocks back to the host: " + vdbBlocksBefore + " -> " + vdbBlocksAfter);
        assertFsckClean(vdb);
        assertArrayEquals(HELLO, debugfsCat(vdb, "/hello.txt"));

        // vdd: qcow2 written by the guest
        assertEquals("ok", seen.get("vdd.discard"), r.toString());
        assertEquals("ok", seen.get("vdd.zeroout"), r.toString());
        assertEquals("0", seen.get("vdd.readback_bad_chunks"), r.toString());
        assertEquals("0", seen.get("vdd.parallel_bad_reads"), r.toString());
        HostFiles.Run check = HostFiles.run("qemu-img", "check", vdd.toString());
        assertEquals(0, check.status(), check.output());
        assertTrue(check.output().contains("No errors were found"), check.output());
        Path vddRaw = dir.resolve("guest-qcow2.raw");
        Files.write(vddRaw, GuestPatterns.afterPatternStep(VDD));
        HostFiles.Run compare = HostFiles.run("qemu-img", "compare", "-f", "qcow2", "-F", "raw", vdd.toString(),
                vddRaw.toString());
        assertEquals(0, compare.status(), "the qcow2 image holds what the guest wrote: " + compare.output());

        assertEquals("0", seen.get("kernel.errors"), "the guest kernel logged I/O errors: " + r);
    }

    /**
     * A second boot, through the API's root mount: / on an ext4 disk (the test root, made on the host), a
     * second disk mounted by the init at /mnt/data. The guest writes files to both; when the command has
     * exited the init leaves them clean (unmounted, root remounted read-only), so the host's
     * {@code e2fsck -fn} passes without a journal replay and finds the files.
     */
    @Test
    void linuxGuestRunsFromARootDiskAndLeavesItsFileSystemsClean() throws Exception {
        LinuxGuest.assumeKvm();
        Path tree = testRootfs(dir.resolve("rootfs"));
        Path rootImg = dir.resolve("root.img");
        HostFiles.ok("mkfs.ext4", "-q", "-F", "-L", "rootdisk", "-d", tree.toString(), rootImg.toString(), "64M");
        Path dataImg = dir.resolve("data.img");
        HostFiles.ok("mkfs.ext4", "-q", "-F", "-L", "datadisk", dataImg.toString(), "16M");

        LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(new BlkFactory()), org.krun.api.VmConfig.builder()
                .kernel(LinuxGuest.kernel()).memoryMib(256)
                .rootMount(new org.krun.api.GuestMount("/dev/vda", "/", "ext4", ""))
                .mount(new org.krun.api.GuestMount("/dev/vdb", "/mnt/data", "ext4", ""))
                .device(DiskSpec.raw(rootImg))
                .device(DiskSpec.raw(dataImg).withSync(DiskSpec.Sync.NONE))
                .command("/usr/local/bin/blkcheck", "mounts", "writefiles:/", "writefiles:/mnt/data", "kernelerrors"),
                null, Duration.ofSeconds(600));
        System.out.println("guest output:\n" + r);
        assertEquals(0, r.status(), r.toString());
        Map<String, String> seen = HostBlkcheck.parse(r.out());
        assertEquals("/dev/vda ext4 rw", seen.get("mount./"), "/ is the root disk: " + r);
        assertEquals("/dev/vdb ext4 rw", seen.get("mount./mnt/data"), r.toString());
        assertEquals("3", seen.get("writefiles"), r.toString());
        assertEquals("0", seen.get("kernel.errors"), r.toString());
        for (Path image : List.of(rootImg, dataImg)) {
            assertFsckClean(image);
            assertFalse(HostFiles.ok("dumpe2fs", "-h", image.toString()).contains("needs_recovery"),
                    image + " was left clean, no journal to replay");
            assertArrayEquals(GuestPatterns.pattern(1, 0, 1 << 20), debugfsCat(image, "/pattern.bin"));
        }
    }

    private static final byte[] HELLO = "hello from the host\n".getBytes(StandardCharsets.UTF_8);
    private static final int BIG = 2 << 20;

    /** A 32 MiB ext4 image made on the host with hello.txt and big.bin (2 MiB of pattern seed 3). */
    private Path hostMadeExt4(Path image) throws Exception {
        Path content = dir.resolve("hostmade-content");
        Files.createDirectories(content);
        Files.write(content.resolve("hello.txt"), HELLO);
        Files.write(content.resolve("big.bin"), GuestPatterns.pattern(3, 0, BIG));
        HostFiles.ok("mkfs.ext4", "-q", "-F", "-L", "hostmade", "-d", content.toString(), image.toString(), "32M");
        return image;
    }

    private static void assertFsckClean(Path image) throws Exception {
        HostFiles.Run fsck = HostFiles.run("e2fsck", "-fn", image.toString());
        assertEquals(0, fsck.status(), "e2fsck -fn " + image + ":\n" + fsck.output());
    }

    private static byte[] debugfsCat(Path image, String file) throws Exception {
        Process p = new ProcessBuilder("debugfs", "-R", "cat " + file, image.toString())
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertEquals(0, p.waitFor());
        return out;
    }

    /**
     * The default busybox rootfs plus blkcheck and the host's mke2fs with the shared libraries it needs
     * (user-mode code runs natively in the guest, so the host's binaries run there).
     */
    static Path testRootfs(Path root) throws Exception {
        HostFiles.ok("cp", "-a", LinuxGuest.rootfs().toRealPath() + "/.", root.toString());
        Path bin = root.resolve("usr/local/bin");
        Files.createDirectories(bin);
        Files.copy(HostBlkcheck.binary(), bin.resolve("blkcheck"), StandardCopyOption.REPLACE_EXISTING);
        Files.setPosixFilePermissions(bin.resolve("blkcheck"), PosixFilePermissions.fromString("rwxr-xr-x"));
        Path mke2fs = Path.of("/sbin/mke2fs").toRealPath();
        Files.deleteIfExists(root.resolve("sbin/mke2fs")); // busybox's, which makes only ext2
        copyWithLibraries(mke2fs, root, "sbin/mke2fs");
        Files.createDirectories(root.resolve("etc"));
        Files.copy(Path.of("/etc/mke2fs.conf"), root.resolve("etc/mke2fs.conf"), StandardCopyOption.REPLACE_EXISTING);
        return root;
    }

    private static void copyWithLibraries(Path binary, Path root, String as) throws Exception {
        Path target = root.resolve(as);
        Files.createDirectories(target.getParent());
        Files.copy(binary, target, StandardCopyOption.REPLACE_EXISTING);
        for (String line : HostFiles.ok("ldd", binary.toString()).lines().toList()) {
            String path = null;
            int arrow = line.indexOf("=> ");
            if (arrow >= 0) {
                path = line.substring(arrow + 3).trim().split(" ")[0];
            } else if (line.trim().startsWith("/")) {
                path = line.trim().split(" ")[0];
            }
            if (path == null || !path.startsWith("/")) {
                continue; // linux-vdso
            }
            Path lib = root.resolve(path.substring(1));
            Files.createDirectories(lib.getParent());
            Files.copy(Path.of(path).toRealPath(), lib, StandardCopyOption.REPLACE_EXISTING);
        }
    }
}
