package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Duration;
import java.util.concurrent.atomic.AtomicReference;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.VmExit;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One Linux boot with a share that has a DAX window, mounted with {@code dax=always}: the guest executes a
 * program and reads a file through host page cache mapped into its address space (the host process maps
 * the share's files while the guest has them, which is how the test sees that DAX was used), reads a file
 * twice the window's size whole (its kernel recycles the window's pieces), sees a change the host makes to
 * the file, and once it unmounts the share every file mapping in the window is gone. A second share is
 * mounted {@code dax=inode}, as krun mounts a read-only root: its running executable is mapped through
 * the window, a file it reads is not.
 */
class VirtioFsDaxLinuxTest {

    @TempDir
    Path tmp;

    /** This process's file mappings of files under {@code dir}. */
    private static long mappingsUnder(Path dir) throws IOException {
        String prefix = dir.toRealPath().toString() + "/";
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(prefix)).count();
    }

    /** The names of the files under {@code dir} this process maps. */
    private static java.util.SortedSet<String> filesMappedUnder(Path dir) throws IOException {
        String prefix = dir.toRealPath().toString() + "/";
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.contains(prefix))
                .map(l -> l.substring(l.indexOf(prefix) + prefix.length()))
                .collect(java.util.stream.Collectors.toCollection(java.util.TreeSet::new));
    }

    private static void awaitFile(Path p) throws InterruptedException {
        for (int i = 0; i < 6000 && !Files.exists(p); i++) {
            Thread.sleep(50);
        }
    }

    /** Small, so that one file is larger than the window: the guest's kernel must recycle its ranges. */
    private static final long WINDOW = 8L << 20;

    @Test
    void guestExecutesAndReadsThroughTheDaxWindowSeesHostChangesAndReleasesItsMappings() throws Exception {
        LinuxGuest.assumeKvm();
        Path dax = Files.createDirectories(tmp.resolve("dax"));
        Files.copy(LinuxGuest.rootfs().resolve("bin/busybox").toRealPath(), dax.resolve("busybox"),
                StandardCopyOption.COPY_ATTRIBUTES);
        Path data = Files.writeString(dax.resolve("data.txt"), "version-1");
        byte[] bigBytes = new byte[(int) (2 * WINDOW + 12345)];
        new java.util.Random(42).nextBytes(bigBytes);
        Files.write(dax.resolve("big"), bigBytes);
        String bigMd5 = java.util.HexFormat.of().formatHex(java.security.MessageDigest.getInstance("MD5").digest(bigBytes));
        // a share mounted dax=inode, as krun mounts a read-only root: only executables go through the window
        Path inode = Files.createDirectories(tmp.resolve("inode"));
        Files.copy(LinuxGuest.rootfs().resolve("bin/busybox").toRealPath(), inode.resolve("busybox"),
                StandardCopyOption.COPY_ATTRIBUTES);
        Files.writeString(inode.resolve("plain.txt"), "not an executable");
        Path rw = Files.createDirectories(tmp.resolve("rw"));
        AtomicReference<String> inodeSeen = new AtomicReference<>("the guest never got there");
        AtomicReference<String> seen = new AtomicReference<>("the guest never got there");
        Thread host = Thread.ofVirtual().start(() -> {
            try {
                awaitFile(rw.resolve("mapped"));
                inodeSeen.set(filesMappedUnder(inode).toString());
                long whileMounted = mappingsUnder(dax);
                Files.writeString(data, "version-2"); // in place, the same size
                Files.writeString(rw.resolve("changed"), "");
                awaitFile(rw.resolve("unmounted"));
                seen.set("mapped while mounted: " + whileMounted + ", after unmount: " + mappingsUnder(dax));
                Files.writeString(rw.resolve("checked"), "");
            } catch (InterruptedException | IOException e) {
                seen.set("host side failed: " + e);
            }
        });
        String wait = "i=0; while [ ! -e /rw/%s ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done";
        String script = String.join("\n",
                "echo DAX_MOUNT=$(grep ' /dax virtiofs ' /proc/mounts | grep -o 'dax=[a-z]*')",
                "/dax/busybox echo EXEC=ok",
                "echo DATA1=$(cat /dax/data.txt)",
                "echo BIG=$(md5sum /dax/big)",
                "exec 3</dax/data.txt", // keep the file open (and mapped) while the host looks
                "/inode/busybox sh -c 'echo > /rw/running; exec /inode/busybox sleep 600' &",
                "SLEEPER=$!",
                String.format(wait, "running"),
                "exec 4</inode/plain.txt",
                "echo PLAIN=$(cat /inode/plain.txt)",
                "echo > /rw/mapped",
                String.format(wait, "changed"),
                "echo DATA2=$(cat /dax/data.txt)",
                "exec 3<&- 4<&-",
                "kill $SLEEPER; wait $SLEEPER",
                "cd / && umount /dax && echo UMOUNT=ok",
                "echo > /rw/unmounted",
                String.format(wait, "checked"));
        KrunService krun = LinuxGuest.krun(new FsFactory());
        LinuxGuest.Result r = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", script)
                .device(new FsShareSpec("dax", dax, false).withDaxWindow(WINDOW))
                .mount(new GuestMount("dax", "/dax", "virtiofs", "dax=always"))
                .device(new FsShareSpec("inode", inode, true).withDaxWindow(WINDOW))
                .mount(new GuestMount("inode", "/inode", "virtiofs", "ro,dax=inode"))
                .device(new FsShareSpec("rw", rw, false))
                .mount(new GuestMount("rw", "/rw", "virtiofs", "")), null, Duration.ofMinutes(10));
        host.join(Duration.ofSeconds(10));
        String out = r.out();
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        assertTrue(out.contains("DAX_MOUNT=dax=always"), "the share is mounted with DAX: " + out);
        assertTrue(out.contains("EXEC=ok"), "a program runs from the DAX share: " + out);
        assertTrue(out.contains("DATA1=version-1"), out);
        assertTrue(out.contains("BIG=" + bigMd5), "a file twice the window's size reads whole: " + out);
        assertTrue(out.contains("PLAIN=not an executable"), out);
        assertEquals("[busybox]", inodeSeen.get(), "dax=inode: the running executable is mapped, the file read is not");
        assertTrue(out.contains("DATA2=version-2"), "the host's change is seen through the window: " + out);
        assertTrue(out.contains("UMOUNT=ok"), out);
        String s = seen.get();
        assertTrue(s.matches("mapped while mounted: [1-9][0-9]*, after unmount: 0"),
                "the share's files are mapped while the guest has them, and released at unmount: " + s);
        assertEquals(0, mappingsUnder(dax), "nothing of the share stays mapped after the VM");
        assertEquals(0, mappingsUnder(inode), "nothing of the dax=inode share stays mapped after the VM");
        assertFalse(out.contains("Bus error"), out);
    }
}
