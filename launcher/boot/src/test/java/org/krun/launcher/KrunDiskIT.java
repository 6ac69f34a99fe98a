package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code krun run --disk} and {@code --root-disk} through the packaged launcher: bad values are one-line
 * errors, and one boot with / on a disk checks that data the guest fsynced survives {@code kill -9} of
 * the VMM (sync=full, raw and qcow2).
 */
class KrunDiskIT {

    @TempDir
    Path dir;

    private static void assertOneLineError(KrunProcess.Result r, String mention) {
        assertNotEquals(0, r.status(), r.toString());
        List<String> lines = r.err().lines().filter(l -> !l.isBlank()).toList();
        assertEquals(1, lines.size(), "exactly one line on stderr: " + r);
        assertTrue(lines.get(0).startsWith("krun: ") && lines.get(0).contains(mention), "mentions '" + mention + "': " + r);
        assertFalse(r.err().contains("Exception"), r.toString());
    }

    @Test
    void badDiskValuesAreOneLineErrors() throws Exception {
        Path raw = dir.resolve("plain.img");
        Files.write(raw, new byte[1 << 20]);
        assertOneLineError(KrunProcess.run(null, 60, "run", "--disk", "/nonexistent/disk.img", "--", "/bin/true"),
                "/nonexistent/disk.img does not exist");
        assertOneLineError(KrunProcess.run(null, 60, "run", "--disk", raw + ",format=vmdk", "--", "/bin/true"),
                "unknown disk format 'vmdk'");
        assertOneLineError(KrunProcess.run(null, 60, "run", "--disk", raw + ",sync=always", "--", "/bin/true"),
                "unknown disk sync mode 'always'");
        assertOneLineError(KrunProcess.run(null, 60, "run", "--disk", raw + ",turbo", "--", "/bin/true"),
                "unknown option 'turbo'");
        assertOneLineError(KrunProcess.run(null, 60, "run", "--disk", raw + ",id=waytoolongforavirtioserial", "--",
                "/bin/true"), "longer than 20 bytes");
        assertOneLineError(KrunProcess.run(null, 60, "run", "--disk", raw + ",format=qcow2", "--", "/bin/true"),
                "is not a qcow2 image");
        assertOneLineError(KrunProcess.run(null, 60, "run", "--root", dir.toString(), "--root-disk", raw.toString(), "--",
                "/bin/true"), "cannot be combined");
        KrunProcess.Result help = KrunProcess.run(null, 60, "run", "--help");
        assertEquals(0, help.status(), help.toString());
        for (String s : List.of("--disk", "--root-disk", "format=raw|qcow2", "sync=none", "sync=relaxed", "sync=full",
                "direct", "id=NAME", "fstype")) {
            assertTrue(help.out().contains(s), "help mentions " + s + ": " + help);
        }
    }

    @Test
    void rootDiskBootsAndFsyncedDataSurvivesKillOfTheVmm() throws Exception {
        Assumptions.assumeTrue(KrunProcess.kvmAvailable(), "/dev/kvm is missing: Linux guest tests SKIPPED");
        byte[] pattern = new byte[1 << 20];
        new Random(77).nextBytes(pattern);
        // The root disk: the default busybox rootfs with the data to write and a marker, as ext4.
        Path tree = dir.resolve("rootfs");
        run("cp", "-a", Path.of(KrunProcess.rootfs()).toRealPath() + "/.", tree.toString());
        Files.write(tree.resolve("pattern"), pattern);
        Files.writeString(tree.resolve("etc/root-disk-marker"), "root from a disk\n");
        Path rootImg = dir.resolve("root.img");
        run("mkfs.ext4", "-q", "-F", "-d", tree.toString(), rootImg.toString(), "64M");
        Path qcow2 = dir.resolve("data.qcow2");
        run("qemu-img", "create", "-q", "-f", "qcow2", qcow2.toString(), "16M");
        Path raw = dir.resolve("data.raw");
        try (var f = new java.io.RandomAccessFile(raw.toFile(), "rw")) {
            f.setLength(16 << 20);
        }

        // A private temporary directory for this launcher: killed, it cannot remove its framework storage, and
        // other krun processes on the host must not lose theirs to this test's clean-up.
        Path tmp = Files.createDirectories(dir.resolve("tmp"));
        String script = "grep ' / ' /proc/mounts; cat /etc/root-disk-marker; "
                + "dd if=/pattern of=/dev/vdb bs=65536 conv=fsync 2>/dev/null && "
                + "dd if=/pattern of=/dev/vdc bs=65536 conv=fsync 2>/dev/null && echo FSYNC-RETURNED || echo FSYNC-FAILED; "
                + "sleep 600";
        List<String> args = List.of("run", "--root-disk", rootImg.toString(),
                "--disk", qcow2 + ",format=qcow2,sync=full", "--disk", raw + ",sync=full", "--", "/bin/sh", "-c", script);
        List<String> command = new ArrayList<>(KrunProcess.command(args));
        command.add(1, "-Djava.io.tmpdir=" + tmp);
        Process p = new ProcessBuilder(command).start();
        p.getOutputStream().close();
        // Own threads, not the common pool: it may have a single thread on a 2-CPU host.
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread errCopy = Thread.ofPlatform().daemon(true).start(() -> {
            try {
                p.getErrorStream().transferTo(err);
            } catch (IOException e) {
                // the process is gone
            }
        });
        List<String> out = java.util.Collections.synchronizedList(new ArrayList<>());
        CompletableFuture<Boolean> fsyncReturned = new CompletableFuture<>();
        Thread.ofPlatform().daemon(true).start(() -> {
            try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = r.readLine()) != null) {
                    out.add(line);
                    if (line.equals("FSYNC-RETURNED")) {
                        p.destroyForcibly(); // SIGKILL, the moment the guest's fsync has returned
                        fsyncReturned.complete(true);
                    } else if (line.equals("FSYNC-FAILED")) {
                        fsyncReturned.complete(false);
                    }
                }
            } catch (IOException e) {
                // killed
            }
            fsyncReturned.complete(false);
        });
        boolean fsynced;
        try {
            fsynced = fsyncReturned.get(600, TimeUnit.SECONDS);
        } catch (java.util.concurrent.TimeoutException e) {
            fsynced = false;
            out.add("(no result within 600 s)");
        } finally {
            p.destroyForcibly();
            p.waitFor(60, TimeUnit.SECONDS);
            errCopy.join(60_000);
        }
        String report = "stdout:\n" + String.join("\n", out) + "\nstderr:\n" + err.toString(StandardCharsets.UTF_8);
        assertTrue(fsynced, "the guest reported its fsync: " + report);
        assertEquals(137, p.exitValue(), "killed with SIGKILL: " + report);
        assertTrue(out.get(0).startsWith("/dev/vda / ext4 rw"), "/ is the root disk: " + report);
        assertEquals("root from a disk", out.get(1), report);

        assertArrayEquals(pattern, Arrays.copyOf(Files.readAllBytes(raw), pattern.length), "raw disk holds the data");
        String check = run("qemu-img", "check", qcow2.toString());
        assertTrue(check.contains("No errors were found"), check);
        Path converted = dir.resolve("data-from-qcow2.raw");
        run("qemu-img", "convert", "-f", "qcow2", "-O", "raw", qcow2.toString(), converted.toString());
        assertArrayEquals(pattern, Arrays.copyOf(Files.readAllBytes(converted), pattern.length),
                "qcow2 disk holds the data, metadata included");
    }

    private static String run(String... command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), String.join(" ", command));
        assertEquals(0, p.exitValue(), String.join(" ", command) + ": " + out);
        return out;
    }
}
