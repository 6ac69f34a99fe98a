package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Duration;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.FsShareSpec;

/**
 * Snapshots of virtio-fs: carried while the guest holds nothing on the host (before FUSE_INIT, or with only
 * the root known), and a restored device serves the share again; refused with one line otherwise.
 */
class VirtioFsSnapshotTest {
    static final FsLimits LIMITS = new FsLimits(1024, 256, 256);
    static final Duration DRAIN = Duration.ofMillis(500);

    @TempDir
    Path share;
    FsDeviceHarness h;

    @BeforeEach
    void setUp() throws Exception {
        Files.writeString(share.resolve("file"), "data");
        h = new FsDeviceHarness(share, LIMITS);
    }

    @AfterEach
    void tearDown() {
        h.close();
    }

    private static byte[] init() {
        return FuseClient.le(64).putInt(7).putInt(31).putInt(0).putInt(-1).array();
    }

    private long lookup(String name) {
        FuseClient.Reply r = h.call(Fuse.LOOKUP, 1, FuseClient.cstr(name));
        assertEquals(0, r.error());
        return FuseClient.entry(r).nodeid();
    }

    private void restoredDeviceServesTheShare(byte[] state) {
        h.restore(state, LIMITS);
        assertEquals(0, h.call(Fuse.INIT, 0, init()).error(), "a restored device accepts a fresh FUSE_INIT");
        long node = lookup("file");
        FuseClient.Reply open = h.call(Fuse.OPEN, node, FuseClient.le(8).putInt(0).array());
        assertEquals(0, open.error());
        long fh = open.body().getLong();
        FuseClient.Reply read = h.call(Fuse.READ, node, FuseClient.le(40).putLong(fh).putLong(0).putInt(64).array());
        assertEquals(0, read.error());
        byte[] data = new byte[read.body().remaining()];
        read.body().get(data);
        assertArrayEquals("data".getBytes(), data);
    }

    @Test
    void beforeFuseInitTheStateCarriesAndTheRestoredDeviceServesTheShare() {
        Object state = h.saveState(DRAIN);
        restoredDeviceServesTheShare((byte[]) state);
    }

    @Test
    void afterFuseInitWithOnlyTheRootKnownTheStateCarries() {
        assertEquals(0, h.call(Fuse.INIT, 0, init()).error());
        assertEquals(0, h.call(Fuse.STATFS, 1, new byte[0]).error());
        Object state = h.saveState(DRAIN);
        restoredDeviceServesTheShare((byte[]) state);
        assertEquals(0, h.call(Fuse.STATFS, 1, new byte[0]).error(), "the root is node id 1 again");
    }

    @Test
    void aGuestHoldingInodesOrOpenFilesIsRefusedWithOneLine() {
        assertEquals(0, h.call(Fuse.INIT, 0, init()).error());
        long node = lookup("file");
        IllegalStateException e = assertInstanceOf(IllegalStateException.class, h.saveState(DRAIN));
        assertEquals("virtio-fs test: the guest holds 1 inodes, 0 open files and 0 lock owners"
                + " (host descriptors cannot go into a snapshot)", e.getMessage());
        assertEquals(0, h.call(Fuse.OPENDIR, 1, FuseClient.le(8).putInt(0).array()).error());
        assertEquals(0, h.call(Fuse.OPEN, node, FuseClient.le(8).putInt(0).array()).error());
        e = assertInstanceOf(IllegalStateException.class, h.saveState(DRAIN));
        assertTrue(e.getMessage().contains("1 inodes, 2 open files"), e.getMessage());
        assertEquals(0, h.call(Fuse.STATFS, 1, new byte[0]).error(), "a refused snapshot leaves the device serving");
    }

    @Test
    void aGuestWithFilesMappedInItsDaxWindowIsRefusedWithOneLineAndResetReleasesTheWindow() {
        var window = new org.krun.spi.virtio.TestSharedMemory(VirtioFs.SHM_CACHE, 1L << 32, 8 << 20, 4);
        try (FsDeviceHarness d = new FsDeviceHarness(share, LIMITS, window)) {
            assertEquals(0, d.call(Fuse.INIT, 0, init()).error());
            FuseClient.Reply found = d.call(Fuse.LOOKUP, 1, FuseClient.cstr("file"));
            long node = FuseClient.entry(found).nodeid();
            assertEquals(0, d.call(Fuse.SETUPMAPPING, node, FuseClient.le(40).putLong(-1).putLong(0).putLong(2 << 20)
                    .putLong(Fuse.SETUPMAPPING_FLAG_READ).putLong(2 << 20).array()).error());
            IllegalStateException e = assertInstanceOf(IllegalStateException.class, d.saveState(DRAIN));
            assertEquals("virtio-fs test: the guest has 1 files mapped in its DAX window (host file mappings cannot go"
                    + " into a snapshot)", e.getMessage());
            assertEquals(1, window.mappings());
            d.closeDevice(Duration.ofSeconds(10));
            assertEquals(0, window.mappings(), "the window goes with the device's activation");
        }
    }

    @Test
    void aGuestWaitingForALockIsRefusedWithOneLine() throws Exception {
        assertEquals(0, h.call(Fuse.INIT, 0, init()).error());
        long node = lookup("file");
        FuseClient.Reply open = h.call(Fuse.OPEN, node, FuseClient.le(8).putInt(2).array());
        assertEquals(0, open.error());
        long fh = open.body().getLong();
        try (FileChannel ch = FileChannel.open(share.resolve("file"), StandardOpenOption.WRITE); FileLock held = ch.lock()) {
            FsDeviceHarness.Sent w = h.send(VirtioFs.REQUEST_QUEUE, Fuse.SETLKW, node,
                    FuseClient.lkIn(fh, 2, 1, 0, Long.MAX_VALUE, false), 64);
            assertNull(h.await(w, Duration.ofMillis(300)), "the lock request should wait");
            IllegalStateException e = assertInstanceOf(IllegalStateException.class, h.saveState(DRAIN));
            assertEquals("virtio-fs test: the guest waits for 1 file locks; a FUSE session's host state cannot go into a snapshot",
                    e.getMessage());
        }
    }

    @Test
    void tamperedStateIsRefusedWithOneLine() {
        VirtioFs fresh = new VirtioFs(new FsShareSpec("test", share, false), LIMITS);
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> fresh.restoreState(new byte[3]));
            assertEquals("virtio-fs test: saved state has 3 bytes, not 4", e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> fresh.restoreState(new byte[] {0, 0, 0, 2}));
            assertEquals("virtio-fs test: saved state version 2 (this krun reads 1)", e.getMessage());
        } finally {
            fresh.close();
        }
    }
}
