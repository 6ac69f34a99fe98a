package org.krun.vmm.internal.initramfs;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.channels.ServerSocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;

class InitramfsTest {
    private static final byte[] INIT = "\u007fELF pretend init".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] CONFIG = "{\"cmd\":[\"/bin/sh\"]}\n".getBytes(StandardCharsets.US_ASCII);
    private static final long MTIME = 1_700_000_000L;

    @TempDir
    Path tmp;

    private static void perms(Path p, String rwx) throws IOException {
        Files.setPosixFilePermissions(p, PosixFilePermissions.fromString(rwx));
    }

    private static Path file(Path p, String content, String rwx) throws IOException {
        Files.writeString(p, content);
        perms(p, rwx);
        Files.setLastModifiedTime(p, FileTime.fromMillis(MTIME * 1000));
        return p;
    }

    /** The whole initramfs as the guest gets it, written over dirty memory. */
    private static byte[] build(Initramfs initramfs) {
        byte[] out = new byte[(int) initramfs.size()];
        Arrays.fill(out, (byte) 0xee);
        ByteBuffer b = ByteBuffer.wrap(out);
        initramfs.writeTo(b);
        assertEquals(out.length, b.position(), "size() is exactly what writeTo() writes");
        return out;
    }

    private static Map<String, NewcReader.Member> byName(List<NewcReader.Member> members) {
        Map<String, NewcReader.Member> map = new LinkedHashMap<>();
        for (NewcReader.Member m : members) {
            assertEquals(null, map.put(m.name(), m), "duplicate member " + m.name());
        }
        return map;
    }

    @Test
    void rootTreeRoundTripsThroughTheArchive() throws IOException {
        Path root = Files.createDirectory(tmp.resolve("root"));
        Path etc = Files.createDirectory(root.resolve("etc"));
        file(etc.resolve("hostname"), "krun\n", "rw-r--r--");
        file(etc.resolve("shadow"), "root:*:1::::::\n", "rw-------");
        Path bin = Files.createDirectory(root.resolve("bin"));
        file(bin.resolve("tool"), "#!/bin/sh\necho hi\n", "rwxr-xr-x");
        Files.createSymbolicLink(bin.resolve("sh"), Path.of("tool"));
        Files.createSymbolicLink(root.resolve("abs"), Path.of("/etc/hostname"));
        file(root.resolve("empty"), "", "rw-rw----");
        Path deep = Files.createDirectories(root.resolve("a/b/c"));
        perms(deep, "rwx------");
        perms(root.resolve("a"), "rwxr-x---");
        String big = "0123456789abcdef".repeat(4097) + "xyz"; // not a multiple of 4
        file(deep.resolve("data.bin"), big, "rw-r-----");

        Initramfs initramfs = Initramfs.plan(Optional.of(root), Optional.empty(), INIT, CONFIG);
        List<NewcReader.Member> members = NewcReader.read(build(initramfs));
        assertEquals(initramfs.memberCount() + 1, members.size(), "every member, then the trailer");
        assertEquals(CpioWriter.TRAILER, members.getLast().name());
        Map<String, NewcReader.Member> m = byName(members.subList(0, members.size() - 1));

        assertEquals(Set.of("etc", "etc/hostname", "etc/shadow", "bin", "bin/tool", "bin/sh", "abs", "empty", "a",
                "a/b", "a/b/c", "a/b/c/data.bin", "dev", "dev/console", "krun", "krun/init", "krun/config.json"),
                m.keySet(), "paths relative to the root, the root itself not a member");

        assertEquals(CpioEntry.S_IFREG | 0644, m.get("etc/hostname").mode());
        assertEquals("krun\n", m.get("etc/hostname").text());
        assertEquals(MTIME, m.get("etc/hostname").mtime());
        assertEquals(0600, m.get("etc/shadow").permissions());
        assertEquals(CpioEntry.S_IFREG | 0755, m.get("bin/tool").mode());
        assertEquals("#!/bin/sh\necho hi\n", m.get("bin/tool").text());
        assertEquals(CpioEntry.S_IFLNK, m.get("bin/sh").type());
        assertEquals("tool", m.get("bin/sh").text());
        assertEquals("/etc/hostname", m.get("abs").text());
        assertEquals(CpioEntry.S_IFREG | 0660, m.get("empty").mode());
        assertEquals(0, m.get("empty").data().length);
        assertEquals(CpioEntry.S_IFDIR | 0750, m.get("a").mode());
        assertEquals(CpioEntry.S_IFDIR | 0700, m.get("a/b/c").mode());
        assertEquals(2, m.get("a/b/c").nlink());
        assertEquals(big, m.get("a/b/c/data.bin").text());
        assertEquals(0640, m.get("a/b/c/data.bin").permissions());
        for (NewcReader.Member member : m.values()) {
            assertEquals(0, member.uid(), member.name() + " owned by root in the guest");
            assertEquals(0, member.gid(), member.name());
        }
        Set<Long> inodes = new HashSet<>();
        m.values().forEach(member -> assertTrue(inodes.add(member.ino()), "inode of " + member.name()));

        List<String> order = members.stream().map(NewcReader.Member::name).toList();
        assertTrue(order.indexOf("a") < order.indexOf("a/b"), "parents before children");
        assertTrue(order.indexOf("a/b") < order.indexOf("a/b/c"));
        assertTrue(order.indexOf("a/b/c") < order.indexOf("a/b/c/data.bin"));
        assertTrue(order.indexOf("etc") < order.indexOf("etc/hostname"));
        assertTrue(order.indexOf("bin/tool") < order.indexOf("dev"), "krun's members come after the root's");
        assertTrue(order.indexOf("krun") < order.indexOf("krun/init"));
        Files.delete(root.resolve("abs")); // JUnit warns about links leaving its directory
    }

    @Test
    void krunsInitConfigAndConsoleAreAdded() {
        Initramfs initramfs = Initramfs.plan(Optional.empty(), Optional.empty(), INIT, CONFIG);
        List<NewcReader.Member> members = NewcReader.read(build(initramfs));
        assertEquals(List.of("dev", "dev/console", "krun", "krun/init", "krun/config.json", CpioWriter.TRAILER),
                members.stream().map(NewcReader.Member::name).toList());
        Map<String, NewcReader.Member> m = byName(members);
        assertEquals(CpioEntry.S_IFDIR | 0755, m.get("dev").mode());
        assertEquals(CpioEntry.S_IFCHR | 0600, m.get("dev/console").mode());
        assertEquals(5, m.get("dev/console").rdevMajor());
        assertEquals(1, m.get("dev/console").rdevMinor());
        assertEquals(CpioEntry.S_IFREG | 0755, m.get("krun/init").mode());
        assertArrayEquals(INIT, m.get("krun/init").data());
        assertEquals(CpioEntry.S_IFREG | 0644, m.get("krun/config.json").mode());
        assertArrayEquals(CONFIG, m.get("krun/config.json").data());
        assertEquals("/" + "krun/init", Initramfs.INIT_PATH);
        assertEquals("/" + "krun/config.json", Initramfs.CONFIG_PATH);
    }

    @Test
    void userInitrdComesFirstPaddedWithZerosTo4Bytes() throws IOException {
        byte[] initrd = {'A', 'B', 'C', 'D', 'E'};
        Path file = Files.write(tmp.resolve("initrd.img"), initrd);
        Initramfs initramfs = Initramfs.plan(Optional.empty(), Optional.of(file), INIT, CONFIG);
        Initramfs alone = Initramfs.plan(Optional.empty(), Optional.empty(), INIT, CONFIG);
        assertEquals(8 + alone.size(), initramfs.size());

        byte[] out = build(initramfs);
        assertArrayEquals(initrd, Arrays.copyOf(out, 5));
        assertArrayEquals(new byte[3], Arrays.copyOfRange(out, 5, 8), "padding between initrd and archive");
        int[] end = new int[1];
        List<NewcReader.Member> members = NewcReader.read(out, 8, end);
        assertEquals(out.length, end[0]);
        assertEquals("dev", members.getFirst().name());
    }

    @Test
    void userInitrdOfAlignedSizeIsNotPadded() throws IOException {
        byte[] initrd = "0707".getBytes(StandardCharsets.US_ASCII);
        Path file = Files.write(tmp.resolve("initrd.img"), initrd);
        Initramfs initramfs = Initramfs.plan(Optional.empty(), Optional.of(file), INIT, CONFIG);
        byte[] out = build(initramfs);
        assertArrayEquals(initrd, Arrays.copyOf(out, 4));
        assertEquals("070701", new String(out, 4, 6, StandardCharsets.US_ASCII));
    }

    @Test
    void rootGivenAsASymlinkIsArchivedAsItsTarget() throws IOException {
        Path root = Files.createDirectory(tmp.resolve("real"));
        file(root.resolve("f"), "x", "rw-r--r--");
        Path link = Files.createSymbolicLink(tmp.resolve("link"), root);
        List<NewcReader.Member> members = NewcReader.read(build(
                Initramfs.plan(Optional.of(link), Optional.empty(), INIT, CONFIG)));
        assertEquals("f", members.getFirst().name());
        assertEquals(CpioEntry.S_IFREG, members.getFirst().type());
    }

    @Test
    void fifosAreArchivedAndSocketsSkipped() throws Exception {
        Path root = Files.createDirectory(tmp.resolve("root"));
        Process p = new ProcessBuilder("mkfifo", "-m", "0620", root.resolve("pipe").toString()).start();
        assertEquals(0, p.waitFor());
        try (ServerSocketChannel s = ServerSocketChannel.open(StandardProtocolFamily.UNIX)) {
            s.bind(UnixDomainSocketAddress.of(root.resolve("sock")));
            Map<String, NewcReader.Member> m = byName(NewcReader.read(build(
                    Initramfs.plan(Optional.of(root), Optional.empty(), INIT, CONFIG))));
            assertEquals(CpioEntry.S_IFIFO | 0620, m.get("pipe").mode());
            assertEquals(0, m.get("pipe").data().length);
            assertFalse(m.containsKey("sock"));
        }
    }

    @Test
    void missingRootIsAConfigurationError() {
        Path missing = tmp.resolve("no-such-root");
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> Initramfs.plan(Optional.of(missing), Optional.empty(), INIT, CONFIG));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }

    @Test
    void missingInitrdIsAConfigurationError() {
        Path missing = tmp.resolve("no-such-initrd");
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> Initramfs.plan(Optional.empty(), Optional.of(missing), INIT, CONFIG));
        assertTrue(e.getMessage().contains(missing.toString()), e.getMessage());
    }

    @Test
    void fileThatGrewSinceThePlanDoesNotOverrunItsSlot() throws IOException {
        Path root = Files.createDirectory(tmp.resolve("root"));
        Path f = file(root.resolve("log"), "1234", "rw-r--r--");
        Initramfs initramfs = Initramfs.plan(Optional.of(root), Optional.empty(), INIT, CONFIG);
        Files.writeString(f, "123456789");
        Map<String, NewcReader.Member> m = byName(NewcReader.read(build(initramfs)));
        assertEquals("1234", m.get("log").text(), "the archive holds the size that was planned");
    }

    @Test
    void fileThatShrankSinceThePlanIsAnError() throws IOException {
        Path root = Files.createDirectory(tmp.resolve("root"));
        Path f = file(root.resolve("log"), "12345678", "rw-r--r--");
        Initramfs initramfs = Initramfs.plan(Optional.of(root), Optional.empty(), INIT, CONFIG);
        Files.writeString(f, "1");
        VmConfigException e = assertThrows(VmConfigException.class,
                () -> initramfs.writeTo(ByteBuffer.allocate((int) initramfs.size())));
        assertTrue(e.getMessage().contains("shrank"), e.getMessage());
    }
}
