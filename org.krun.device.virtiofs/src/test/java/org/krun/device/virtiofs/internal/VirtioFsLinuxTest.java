package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.VmExit;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One Linux boot with its root on virtio-fs (a copy of the default rootfs in a temporary directory):
 * the POSIX checks of fstest run in the guest, files cross between host and guest in both directions
 * with the right content, modes and owner, a read-only share refuses writes, and every escape attempt
 * from the guest stays inside the share.
 */
class VirtioFsLinuxTest {
    static final int BIG_DIR_ENTRIES = 10_000;

    @TempDir
    Path tmp;

    private static Path guestProgram(String name) throws URISyntaxException {
        return Path.of(VirtioFsLinuxTest.class.getResource("/guest/" + name).toURI());
    }

    /** Copies the default busybox rootfs (symlinks as symlinks). */
    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path target = to.resolve(from.relativize(p).toString());
                if (Files.isSymbolicLink(p)) {
                    Files.createSymbolicLink(target, Files.readSymbolicLink(p));
                } else if (Files.isDirectory(p)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(p, target, StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
    }

    @Test
    void guestRootOnVirtioFsBehavesLikeALocalFilesystemAndStaysInsideTheShare() throws Exception {
        LinuxGuest.assumeKvm();
        Path root = tmp.resolve("root");
        copyTree(LinuxGuest.rootfs().toRealPath(), root);
        Files.copy(guestProgram("fstest"), root.resolve("fstest"));
        Files.setPosixFilePermissions(root.resolve("fstest"), PosixFilePermissions.fromString("rwxr-xr-x"));
        Files.createDirectories(root.resolve("work"));
        Path big = Files.createDirectories(root.resolve("big"));
        for (int i = 0; i < BIG_DIR_ENTRIES; i++) {
            Files.createFile(big.resolve(String.format("e%05d", i)));
        }
        Files.writeString(root.resolve("from-host.txt"), "written by the host\n");
        Path secret = Files.writeString(tmp.resolve("outside-secret"), "HOST-SECRET\n");
        Files.createSymbolicLink(root.resolve("planted-abs"), secret);
        Files.createSymbolicLink(root.resolve("planted-rel"), Path.of("../outside-secret"));
        Path ro = Files.createDirectories(tmp.resolve("ro"));
        Files.writeString(ro.resolve("ro-file"), "read-only data\n");
        Path rw = Files.createDirectories(tmp.resolve("rw"));
        Path changing = Files.writeString(rw.resolve("changing"), "version-1");
        // Once the guest has read it three times (the last two opens may keep its cached pages), the host
        // rewrites it with contents of the same size, then says go.
        Thread changer = Thread.ofVirtual().start(() -> {
            try {
                while (!Files.exists(rw.resolve("ready"))) {
                    Thread.sleep(50);
                }
                Files.writeString(changing, "version-2");
                Files.writeString(rw.resolve("go"), "");
            } catch (InterruptedException | IOException e) {
                // the guest never got there: its output says so
            }
        });

        String script = String.join("\n",
                "/fstest /work /big " + BIG_DIR_ENTRIES,
                "echo FSTEST_EXIT=$?",
                "echo HOSTFILE=$(cat /from-host.txt)",
                "echo guest data > /written-by-guest.txt && chmod 640 /written-by-guest.txt",
                "mkdir /guest-dir && chown 1000:1000 /guest-dir",
                "echo RO=$(cat /ro/ro-file)",
                "echo x > /ro/new 2>/dev/null && echo RO_WRITE=allowed || echo RO_WRITE=refused",
                "rm /ro/ro-file 2>/dev/null && echo RO_RM=allowed || echo RO_RM=refused",
                "echo shared > /rw/guest-file && echo RW_WRITE=ok",
                // the guest keeps a file's pages across opens only while the host has not changed it
                "cat /rw/changing >/dev/null; cat /rw/changing >/dev/null; echo CACHED=$(cat /rw/changing)",
                "echo ready > /rw/ready; i=0; while [ ! -e /rw/go ] && [ $i -lt 300 ]; do sleep 0.2; i=$((i+1)); done",
                "echo CHANGED=$(cat /rw/changing)",
                "echo ROOT_MOUNT=$(grep ' / virtiofs ' /proc/mounts | cut -d' ' -f1)",
                "echo RO_MOUNT=$(grep ' /ro virtiofs ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)",
                // escape attempts: none may print the secret
                "cat /../outside-secret 2>&1",
                "cat /../../outside-secret 2>&1",
                "cat /planted-abs 2>&1",
                "cat /planted-rel 2>&1",
                "ln -s " + secret + " /guest-abs && cat /guest-abs 2>&1",
                "ln -s ../../outside-secret /guest-rel && cat /guest-rel 2>&1",
                "cat /proc/self/root/../outside-secret 2>&1",
                "mkdir -p /race/a && (for i in 1 2 3 4 5 6 7 8 9 10; do mv /race/a /race/b; ln -s ../.. /race/a; "
                        + "rm /race/a; mv /race/b /race/a; done) & for i in 1 2 3 4 5 6 7 8 9 10; do "
                        + "cat /race/a/../../outside-secret 2>/dev/null; done; wait",
                "echo ESCAPES_DONE",
                "sync");
        KrunService krun = LinuxGuest.krun(new FsFactory());
        LinuxGuest.Result r = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", script)
                .root(root)
                .device(new FsShareSpec("ro", ro, true))
                .mount(new GuestMount("ro", "/ro", "virtiofs", "ro"))
                .device(new FsShareSpec("rw", rw, false))
                .mount(new GuestMount("rw", "/rw", "virtiofs", "")), null, java.time.Duration.ofMinutes(20));
        changer.interrupt();
        String out = r.out();
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());

        out.lines().filter(l -> l.startsWith("DONE passed=")).forEach(l -> System.out.println("[virtio-fs guest test] fstest " + l));
        List<String> failures = out.lines().filter(l -> l.startsWith("FAIL")).toList();
        assertEquals(List.of(), failures, "fstest checks that failed in the guest");
        assertTrue(out.contains("DONE passed=") && out.contains("failed=0"), out);
        assertTrue(out.contains("FSTEST_EXIT=0"), out);
        assertTrue(out.lines().filter(l -> l.startsWith("PASS readdir_large")).count() == 4, "the 10,000-entry listing: " + out);

        assertTrue(out.contains("HOSTFILE=written by the host"), "host files reach the guest: " + out);
        assertEquals("guest data\n", Files.readString(root.resolve("written-by-guest.txt")), "guest files reach the host");
        assertEquals("rw-r-----", PosixFilePermissions.toString(Files.getPosixFilePermissions(root.resolve("written-by-guest.txt"))));
        assertEquals((int) Files.getAttribute(tmp, "unix:uid"), Files.getAttribute(root.resolve("written-by-guest.txt"),
                "unix:uid"), "the guest root's files belong to the user running krun");
        assertEquals(1000, Files.getAttribute(root.resolve("guest-dir"), "unix:uid", LinkOption.NOFOLLOW_LINKS));

        assertTrue(out.contains("RO=read-only data"), out);
        assertTrue(out.contains("RO_WRITE=refused") && out.contains("RO_RM=refused"), out);
        assertEquals("read-only data\n", Files.readString(ro.resolve("ro-file")));
        assertFalse(Files.exists(ro.resolve("new")));
        assertTrue(out.contains("RW_WRITE=ok"), out);
        assertEquals("shared\n", Files.readString(rw.resolve("guest-file")));
        assertTrue(out.contains("CACHED=version-1"), out);
        assertTrue(out.contains("CHANGED=version-2"), "a file the host changed is read afresh at the guest's next open: " + out);
        assertTrue(out.contains("ROOT_MOUNT=/dev/root"), out);
        assertTrue(out.contains("RO_MOUNT=ro"), out);

        assertTrue(out.contains("ESCAPES_DONE"), out);
        assertFalse(out.contains("HOST-SECRET"), "a guest read a host file outside its share:\n" + out);
        assertEquals(secret, Files.readSymbolicLink(root.resolve("guest-abs")), "the guest's symlink is stored as text");
    }
}
