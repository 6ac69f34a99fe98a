package org.krun.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;

import org.junit.jupiter.api.Test;

class DiskSpecTest {

    @Test
    void defaultsAreARelaxedWritableRawDisk() {
        DiskSpec d = DiskSpec.raw(Path.of("/tmp/x.img"));
        assertEquals("blk", d.type());
        assertFalse(d.readOnly());
        assertEquals("", d.id());
        assertEquals(DiskSpec.Format.RAW, d.format());
        assertEquals(DiskSpec.Sync.RELAXED, d.sync());
        assertFalse(d.direct());
        DiskSpec nulls = DiskSpec.raw(Path.of("/x")).withId(null).withFormat(null).withSync(null);
        assertEquals("", nulls.id());
        assertEquals(DiskSpec.Format.RAW, nulls.format());
        assertEquals(DiskSpec.Sync.RELAXED, nulls.sync());
    }

    @Test
    void withersChangeOneThing() {
        DiskSpec d = DiskSpec.raw(Path.of("/x")).withReadOnly(true).withId("abc").withFormat(DiskSpec.Format.QCOW2)
                .withSync(DiskSpec.Sync.FULL).withDirect(true);
        assertTrue(d.readOnly());
        assertEquals("abc", d.id());
        assertEquals(DiskSpec.Format.QCOW2, d.format());
        assertEquals(DiskSpec.Sync.FULL, d.sync());
        assertTrue(d.direct());
        assertEquals(DiskSpec.raw(Path.of("/x")).withReadOnly(true).withId("abc").withFormat(DiskSpec.Format.QCOW2)
                .withSync(DiskSpec.Sync.FULL).withDirect(true), d, "equal when all properties are");
        assertEquals(d.hashCode(), DiskSpec.raw(Path.of("/x")).withReadOnly(true).withId("abc")
                .withFormat(DiskSpec.Format.QCOW2).withSync(DiskSpec.Sync.FULL).withDirect(true).hashCode());
        assertNotEquals(d, d.withDirect(false));
    }

    @Test
    void idIsAtMostTwentyPrintableAsciiBytes() {
        assertEquals(20, DiskSpec.raw(Path.of("/x")).withId("12345678901234567890").id().length());
        VmConfigException tooLong = assertThrows(VmConfigException.class,
                () -> DiskSpec.raw(Path.of("/x")).withId("123456789012345678901"));
        assertTrue(tooLong.getMessage().contains("longer than 20 bytes"), tooLong.getMessage());
        assertThrows(VmConfigException.class, () -> DiskSpec.raw(Path.of("/x")).withId("caf\u00e9"));
        assertThrows(VmConfigException.class, () -> DiskSpec.raw(Path.of("/x")).withId("a\nb"));
        assertThrows(NullPointerException.class, () -> DiskSpec.raw(null));
    }

    @Test
    void formatAndSyncParseTheirNamesOnly() {
        assertEquals(DiskSpec.Format.QCOW2, DiskSpec.Format.parse("QCOW2"));
        assertEquals(DiskSpec.Format.RAW, DiskSpec.Format.parse("raw"));
        assertTrue(assertThrows(VmConfigException.class, () -> DiskSpec.Format.parse("vmdk")).getMessage()
                .contains("unknown disk format 'vmdk'"));
        assertEquals(DiskSpec.Sync.NONE, DiskSpec.Sync.parse("none"));
        assertEquals(DiskSpec.Sync.FULL, DiskSpec.Sync.parse("Full"));
        assertThrows(VmConfigException.class, () -> DiskSpec.Sync.parse("always"));
    }
}
