package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.posix.Errno;
import org.krun.spi.virtio.TestSharedMemory;

/**
 * FUSE_SETUPMAPPING and FUSE_REMOVEMAPPING against a DAX window of four 2 MiB pieces: what the guest sees
 * through the window is the host file, changes on either side show on the other, and every mapping a hostile
 * guest asks for outside the window's rules is refused with an errno and maps nothing.
 */
class FuseDaxTest {
    static final long PIECE = 2L << 20;

    @TempDir
    Path tmp;
    Path share;
    PassthroughFs fs;
    TestSharedMemory window;
    DaxWindow dax;
    FuseClient c;
    long file;

    @BeforeEach
    void setUp() throws Exception {
        share = Files.createDirectory(tmp.resolve("share"));
        Files.writeString(share.resolve("data.txt"), "version-1 of the host file");
        Files.createDirectory(share.resolve("dir"));
        fs = new PassthroughFs(share, false);
        window = new TestSharedMemory(VirtioFs.SHM_CACHE, 1L << 32, 4 * PIECE, 4);
        dax = new DaxWindow(window, 4);
        c = new FuseClient(new FuseServer(fs, dax));
        assertEquals(0, c.init().error());
        file = FuseClient.entry(c.lookup(1, "data.txt")).nodeid();
    }

    @AfterEach
    void tearDown() {
        c.close();
        dax.close();
        fs.close();
    }

    private FuseClient.Reply setup(long nodeid, long foffset, long len, long flags, long moffset) {
        return c.send(Fuse.SETUPMAPPING, nodeid,
                FuseClient.le(40).putLong(-1).putLong(foffset).putLong(len).putLong(flags).putLong(moffset).array());
    }

    private FuseClient.Reply remove(long... offsetsAndLengths) {
        var b = FuseClient.le(4 + 8 * offsetsAndLengths.length).putInt(offsetsAndLengths.length / 2);
        for (long v : offsetsAndLengths) {
            b.putLong(v);
        }
        return c.send(Fuse.REMOVEMAPPING, 1, b.array());
    }

    /** What the guest reads at {@code moffset} of the window. */
    private String guestReads(long moffset, int length) {
        MemorySegment host = window.mappedAt(0);
        byte[] b = host.asSlice(moffset, length).toArray(java.lang.foreign.ValueLayout.JAVA_BYTE);
        return new String(b, StandardCharsets.UTF_8);
    }

    @Test
    void initOffersPageAlignedMappings() {
        FuseClient.Reply r = c.init();
        int flags = r.body().getInt(12);
        assertEquals(Fuse.FUSE_MAP_ALIGNMENT, flags & Fuse.FUSE_MAP_ALIGNMENT);
        assertEquals(Fuse.MAP_ALIGNMENT_SHIFT, r.body().getShort(30));
    }

    /** INIT as a kernel with FUSE_DAX sends it: flags2 (FUSE_INIT_EXT) asking for per-file DAX. */
    static FuseClient.Reply initAskingForInodeDax(FuseClient c) {
        return c.send(Fuse.INIT, 0, FuseClient.le(64).putInt(7).putInt(41).putInt(128 * 1024).putInt(0xffffffff)
                .putInt(Fuse.FLAGS2_HAS_INODE_DAX).array());
    }

    /** fuse_attr.flags of a LOOKUP reply (fuse_entry_out: 40 bytes, then fuse_attr with flags at 84). */
    static int attrFlags(FuseClient.Reply lookup) {
        return lookup.body().getInt(40 + 84);
    }

    @Test
    void aShareWithAWindowOffersPerFileDaxAndMarksExecutablesOnly() throws Exception {
        FuseClient.Reply r = initAskingForInodeDax(c);
        assertEquals(0, r.error());
        assertEquals(Fuse.FUSE_INIT_EXT, r.body().getInt(12) & Fuse.FUSE_INIT_EXT, "flags2 follows");
        assertEquals(Fuse.FLAGS2_HAS_INODE_DAX, r.body().getInt(32), "per-file DAX for a dax=inode mount");
        Path tool = Files.writeString(share.resolve("tool"), "#!/bin/sh\n");
        assertTrue(tool.toFile().setExecutable(true));
        assertEquals(Fuse.FUSE_ATTR_DAX, attrFlags(c.lookup(1, "tool")), "an executable goes through the window");
        assertEquals(0, attrFlags(c.lookup(1, "data.txt")), "a file without execute bits goes through the page cache");
        assertEquals(0, attrFlags(c.lookup(1, "dir")), "a directory is never mapped");
    }

    @Test
    void aShareWithoutAWindowOffersNoPerFileDax() {
        try (FuseClient plain = new FuseClient(new FuseServer(fs, null))) {
            FuseClient.Reply r = initAskingForInodeDax(plain);
            assertEquals(0, r.error());
            assertEquals(0, r.body().getInt(12) & Fuse.FUSE_INIT_EXT);
            assertEquals(0, r.body().getInt(32));
        }
    }

    @Test
    void aMappedFileIsTheHostFileAndRemovingItReleasesThePiece() throws Exception {
        assertFalse(dax.attached(), "the window is given to the guest at its first mapping, not before");
        assertEquals(0, setup(file, 0, PIECE, Fuse.SETUPMAPPING_FLAG_READ, PIECE).error());
        assertEquals(1, window.mappings(), "one hypervisor mapping for the whole window");
        assertEquals(1, dax.mappings());
        assertEquals("version-1 of the host file", guestReads(PIECE, 26));

        Files.writeString(share.resolve("data.txt"), "version-2 of the host file");
        assertEquals("version-2 of the host file", guestReads(PIECE, 26), "the host's change shows through the window");

        // the guest's kernel upgrades a read mapping to a writable one by mapping the same piece again
        assertEquals(0, setup(file, 0, PIECE, Fuse.SETUPMAPPING_FLAG_READ | Fuse.SETUPMAPPING_FLAG_WRITE, PIECE).error());
        assertEquals(1, dax.mappings());
        window.mappedAt(0).asSlice(PIECE, 7).copyFrom(MemorySegment.ofArray("VERSION".getBytes(StandardCharsets.UTF_8)));
        assertEquals("VERSION-2 of the host file", Files.readString(share.resolve("data.txt")), "the guest's write reaches the host");

        assertEquals(0, remove(PIECE, PIECE).error());
        assertEquals(0, dax.mappings());
        assertEquals(-Errno.EINVAL, remove(PIECE, PIECE).error(), "a piece is removed once");
        assertEquals(1, window.mappings(), "the window stays the guest's until reset");
        dax.close();
        assertEquals(0, window.mappings(), "closing takes the window from the guest");
        assertNull(window.mappedAt(0));
    }

    @Test
    void hostileMappingsAreRefusedAndMapNothing() {
        long read = Fuse.SETUPMAPPING_FLAG_READ;
        assertEquals(-Errno.EINVAL, setup(file, 0, PIECE, read, 4 * PIECE).error(), "outside the window");
        assertEquals(-Errno.EINVAL, setup(file, 0, 2 * PIECE, read, 3 * PIECE).error(), "leaves the window");
        assertEquals(-Errno.EINVAL, setup(file, 0, PIECE, read, -PIECE).error(), "negative offset");
        assertEquals(-Errno.EINVAL, setup(file, 0, PIECE, read, 100).error(), "unaligned window offset");
        assertEquals(-Errno.EINVAL, setup(file, 100, PIECE, read, 0).error(), "unaligned file offset");
        assertEquals(-Errno.EINVAL, setup(file, 0, 4095, read, 0).error(), "not whole pages");
        assertEquals(-Errno.EINVAL, setup(file, 0, 0, read, 0).error(), "empty");
        assertEquals(-Errno.EINVAL, setup(file, Long.MAX_VALUE - 4095, PIECE, read, 0).error(), "file offset overflow");
        assertEquals(-Errno.EINVAL, setup(file, 0, PIECE, 1L << 5, 0).error(), "unknown flags");
        long dir = FuseClient.entry(c.lookup(1, "dir")).nodeid();
        assertEquals(-Errno.EINVAL, setup(dir, 0, PIECE, read, 0).error(), "a directory");
        assertEquals(-Errno.EINVAL, setup(1, 0, PIECE, read, 0).error(), "the root");
        assertTrue(setup(9999, 0, PIECE, read, 0).error() < 0, "a node the guest was never given");
        assertEquals(0, dax.mappings());
        assertFalse(dax.attached(), "nothing refused reaches the hypervisor");

        assertEquals(0, setup(file, 0, PIECE, read, 0).error());
        assertEquals(-Errno.EINVAL, setup(file, 0, 2 * PIECE, read, 0).error(), "overlaps in part");
        assertEquals(-Errno.EINVAL, setup(file, 0, PIECE, read, PIECE / 2).error(), "overlaps in part");
        assertEquals(-Errno.EINVAL, remove(0, PIECE / 2).error(), "removes part of a mapping");
        assertEquals(-Errno.EINVAL, remove(PIECE, PIECE).error(), "removes what is not mapped");
        for (int i = 1; i < 4; i++) {
            assertEquals(0, setup(file, 0, PIECE, read, i * PIECE).error());
        }
        assertEquals(4, dax.mappings());
        assertEquals(-Errno.EINVAL, c.send(Fuse.REMOVEMAPPING, 1, FuseClient.le(4).putInt(0).array()).error(), "no entries");
        assertEquals(-Errno.EINVAL, c.send(Fuse.REMOVEMAPPING, 1, FuseClient.le(20).putInt(2).putLong(0).putLong(PIECE).array())
                .error(), "a count beyond the entries sent");
        assertEquals(0, remove(0, PIECE, PIECE, PIECE, 2 * PIECE, PIECE, 3 * PIECE, PIECE).error());
        assertEquals(0, dax.mappings());
    }

    @Test
    void destroyAndANewInitDropEveryMappingTheGuestCannotRemoveAnyMore() {
        assertEquals(0, setup(file, 0, PIECE, Fuse.SETUPMAPPING_FLAG_READ, 0).error());
        assertEquals(0, setup(file, 0, PIECE, Fuse.SETUPMAPPING_FLAG_READ, PIECE).error());
        assertEquals(0, c.send(Fuse.DESTROY, 0, new byte[0]).error());
        assertEquals(0, dax.mappings(), "the unmounting guest's kernel sends DESTROY, then no REMOVEMAPPING");
        assertEquals(1, window.mappings(), "the window stays the guest's");
        assertEquals(0, c.init().error());
        assertEquals(0, setup(file, 0, PIECE, Fuse.SETUPMAPPING_FLAG_READ, 0).error(), "the range is free again");
        assertEquals(0, c.init().error());
        assertEquals(0, dax.mappings(), "a new connection starts with none");
    }

    @Test
    void theWindowHoldsAtMostItsBoundOfMappings() {
        try (DaxWindow small = new DaxWindow(new TestSharedMemory(0, 1L << 32, 4 * PIECE, 4), 2);
                FuseClient s = new FuseClient(new FuseServer(fs, small))) {
            byte[][] pieces = new byte[3][];
            for (int i = 0; i < 3; i++) {
                pieces[i] = FuseClient.le(40).putLong(-1).putLong(0).putLong(PIECE).putLong(Fuse.SETUPMAPPING_FLAG_READ)
                        .putLong(i * PIECE).array();
            }
            assertEquals(0, s.send(Fuse.SETUPMAPPING, file, pieces[0]).error());
            assertEquals(0, s.send(Fuse.SETUPMAPPING, file, pieces[1]).error());
            assertEquals(-Errno.ENOSPC, s.send(Fuse.SETUPMAPPING, file, pieces[2]).error());
            assertEquals(2, small.mappings());
        }
    }

    @Test
    void aReadOnlyShareRefusesWritableMappings() {
        try (PassthroughFs ro = new PassthroughFs(share, true);
                DaxWindow w = new DaxWindow(new TestSharedMemory(0, 1L << 32, 4 * PIECE, 4), 4);
                FuseClient r = new FuseClient(new FuseServer(ro, w))) {
            long node = FuseClient.entry(r.lookup(1, "data.txt")).nodeid();
            byte[] write = FuseClient.le(40).putLong(-1).putLong(0).putLong(PIECE)
                    .putLong(Fuse.SETUPMAPPING_FLAG_READ | Fuse.SETUPMAPPING_FLAG_WRITE).putLong(0).array();
            assertEquals(-Errno.EROFS, r.send(Fuse.SETUPMAPPING, node, write).error());
            assertEquals(0, w.mappings());
        }
    }

    @Test
    void withoutAWindowMappingsAreNotImplemented() {
        try (FuseClient plain = new FuseClient(new FuseServer(fs))) {
            byte[] args = FuseClient.le(40).putLong(-1).putLong(0).putLong(PIECE).putLong(Fuse.SETUPMAPPING_FLAG_READ)
                    .putLong(0).array();
            assertEquals(-Errno.ENOSYS, plain.send(Fuse.SETUPMAPPING, file, args).error());
        }
    }
}
