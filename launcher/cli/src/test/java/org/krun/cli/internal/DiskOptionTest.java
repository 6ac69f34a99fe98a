package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.DiskSpec;
import org.krun.api.GuestMount;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;

import picocli.CommandLine;

class DiskOptionTest {

    private static String error(String flag, String value) {
        VmConfigException e = assertThrows(VmConfigException.class, () -> DiskOption.parse(flag, value));
        assertEquals(1, e.getMessage().lines().count());
        assertTrue(e.getMessage().startsWith(flag), e.getMessage());
        return e.getMessage();
    }

    @Test
    void aBareFileIsAWritableRawDisk() {
        DiskOption d = DiskOption.parse("--disk", "images/a.img");
        assertEquals(Path.of("images/a.img").toAbsolutePath(), d.disk().file());
        assertEquals(DiskSpec.raw(Path.of("images/a.img").toAbsolutePath()), d.disk());
        assertNull(d.fstype());
    }

    @Test
    void everyOptionIsParsed() {
        DiskSpec d = DiskOption.parse("--disk", "/x.qcow2,ro,id=data-1,format=qcow2,sync=full,direct").disk();
        assertEquals(DiskSpec.raw(Path.of("/x.qcow2")).withReadOnly(true).withId("data-1")
                .withFormat(DiskSpec.Format.QCOW2).withSync(DiskSpec.Sync.FULL).withDirect(true), d);
        assertEquals(DiskSpec.Sync.NONE, DiskOption.parse("--disk", "/x,sync=none").disk().sync());
    }

    @Test
    void rootDiskTakesAFileSystemType() {
        assertEquals("ext4", DiskOption.parse("--root-disk", "/r.img").fstype());
        DiskOption d = DiskOption.parse("--root-disk", "/r.img,fstype=ext2,ro");
        assertEquals("ext2", d.fstype());
        assertTrue(d.disk().readOnly());
        assertTrue(error("--disk", "/x,fstype=ext4").contains("--root-disk only"));
    }

    @Test
    void mistakesAreOneLineErrors() {
        assertTrue(error("--disk", "").contains("needs a file"));
        assertTrue(error("--disk", ",ro").contains("needs a file"));
        assertTrue(error("--disk", "/x,bogus").contains("unknown option 'bogus'"));
        assertTrue(error("--disk", "/x,format=vmdk").contains("unknown disk format 'vmdk'"));
        assertTrue(error("--disk", "/x,sync=sometimes").contains("unknown disk sync mode"));
        assertTrue(error("--disk", "/x,id=").contains("needs a value"));
        assertTrue(error("--disk", "/x,id=123456789012345678901").contains("longer than 20 bytes"));
        assertTrue(error("--disk", "/x,ro=yes").contains("takes no value"));
        assertTrue(error("--disk", "/x,ro,ro").contains("given twice"));
    }

    private static VmConfig config(String... args) {
        RunCommand run = new RunCommand(null);
        new CommandLine(run).parseArgs(args);
        return run.config(ConsoleSpec.discard(), false);
    }

    @Test
    void disksBecomeDevicesInOrderWithTheRootDiskFirst() {
        VmConfig c = config("--kernel", "/k", "--disk", "/a.img,ro", "--root-disk", "/r.img", "--disk",
                "/b.qcow2,format=qcow2", "--", "/bin/true");
        assertEquals(List.of(Path.of("/r.img"), Path.of("/a.img"), Path.of("/b.qcow2")),
                c.devices().stream().map(d -> ((DiskSpec) d).file()).toList());
        assertEquals(new GuestMount("/dev/vda", "/", "ext4", ""), c.rootMount().orElseThrow());
        assertFalse(c.root().isPresent(), "no directory root with a root disk");
        VmConfig ro = config("--kernel", "/k", "--root-disk", "/r.img,ro,fstype=ext2", "--", "/bin/true");
        assertEquals(new GuestMount("/dev/vda", "/", "ext2", "ro"), ro.rootMount().orElseThrow());
        VmConfigException both = assertThrows(VmConfigException.class,
                () -> config("--kernel", "/k", "--root", "/srv", "--root-disk", "/r.img", "--", "/bin/true"));
        assertTrue(both.getMessage().contains("cannot be combined"));
    }
}
