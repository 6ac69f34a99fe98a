package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What a hostile guest cannot make one share take from the host: no heap buffer of the guest's size, no
 * more host descriptors than the share's {@link FsLimits}, each bound answered with its errno, and a
 * request that fails in any way is still answered.
 */
class FuseBoundsTest {
    static final int O_RDONLY = 0;
    static final int O_RDWR = 2;
    static final int O_CREAT = 0100;
    static final int F_RDLCK = 0;
    static final int F_WRLCK = 1;
    static final int F_UNLCK = 2;
    static final int EINTR = 4;
    static final int EIO = 5;
    static final int EAGAIN = 11;
    static final int EINVAL = 22;
    static final int ENFILE = 23;
    static final int EMFILE = 24;
    static final int ENOLCK = 37;

    @TempDir
    Path share;

    /** Descriptors this process has open now. */
    static long hostFds() {
        return org.krun.spi.virtio.FuzzBounds.openFds();
    }

    /** Bytes the calling thread has allocated on the heap so far. */
    static long allocatedByThisThread() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getCurrentThreadAllocatedBytes();
    }

    private static int errno(FuseClient.Reply r) {
        return -r.error();
    }

    private static long fh(FuseClient.Reply open) {
        assertEquals(0, open.error(), "open failed");
        return open.body().getLong();
    }

    private static void files(Path dir, int n) throws IOException {
        for (int i = 0; i < n; i++) {
            Files.writeString(dir.resolve(String.format("f%04d", i)), "x");
        }
    }

    // ---- guest-sized allocations

    @Test
    void readdirIntoAHugeGuestBufferAllocatesNothingOfItsSize() throws Exception {
        files(share, 300);
        try (PassthroughFs fs = new PassthroughFs(share, false);
                FuseClient c = new FuseClient(new FuseServer(fs), 64 << 20)) {
            c.init();
            long dir = fh(c.opendir(1));
            byte[] in = FuseClient.le(40).putLong(dir).putLong(0).putInt(Fuse.MAX_READ).array();
            c.send(Fuse.READDIR, 1, in, 64 << 20); // warm up: classes, the first getdents
            long before = allocatedByThisThread();
            FuseClient.Reply r = c.send(Fuse.READDIR, 1, in, 64 << 20);
            long allocated = allocatedByThisThread() - before;
            assertEquals(0, r.error());
            assertTrue(r.len() > 300 * (Fuse.DIRENT_HEADER + 8), "every entry listed: " + r.len());
            // Entries go straight into the guest's buffer: the server allocates per entry, never by the size asked.
            assertTrue(allocated < Fuse.MAX_READ / 2, "allocated " + allocated + " bytes for one READDIR of 1 MiB");

            byte[] huge = FuseClient.le(40).putLong(dir).putLong(0).putInt(Integer.MAX_VALUE).array();
            before = allocatedByThisThread();
            FuseClient.Reply refused = c.send(Fuse.READDIRPLUS, 1, huge, 64 << 20);
            allocated = allocatedByThisThread() - before;
            assertEquals(EINVAL, errno(refused), "a size beyond max_pages pages");
            assertTrue(allocated < Fuse.MAX_READ / 2, "allocated " + allocated + " bytes for a READDIRPLUS of 2 GiB");
        }
    }

    @Test
    void readsAndXattrsBeyondTheNegotiatedSizesAreRefusedOrClamped() throws Exception {
        Files.write(share.resolve("big"), new byte[3 << 20]);
        try (PassthroughFs fs = new PassthroughFs(share, false);
                FuseClient c = new FuseClient(new FuseServer(fs), 8 << 20)) {
            c.init();
            long node = FuseClient.entry(c.lookup(1, "big")).nodeid();
            long fh = fh(c.open(node, O_RDONLY));
            FuseClient.Reply full = c.send(Fuse.READ, node, FuseClient.le(40).putLong(fh).putLong(0)
                    .putInt(Fuse.MAX_READ).array(), 8 << 20);
            assertEquals(16 + Fuse.MAX_READ, full.len());
            FuseClient.Reply tooBig = c.send(Fuse.READ, node, FuseClient.le(40).putLong(fh).putLong(0)
                    .putInt(Fuse.MAX_READ + 1).array(), 8 << 20);
            assertEquals(EINVAL, errno(tooBig), "a read beyond max_pages pages");
            byte[] set = FuseClient.cat(FuseClient.le(8).putInt(3).putInt(0).array(), FuseClient.cstr("user.k"), "abc".getBytes());
            assertEquals(0, c.send(Fuse.SETXATTR, node, set).error());
            long before = allocatedByThisThread();
            FuseClient.Reply g = c.send(Fuse.GETXATTR, node, FuseClient.cat(FuseClient.le(8).putInt(-1).array(),
                    FuseClient.cstr("user.k")), 8 << 20);
            assertEquals("abc", StandardCharsets.UTF_8.decode(g.body()).toString(), "a 4 GiB buffer is clamped to 64 KiB");
            assertTrue(allocatedByThisThread() - before < (1 << 20));
        }
    }

    // ---- failures are answered

    @Test
    void anErrorWhileServingIsAnsweredWithEio() throws Exception {
        try (PassthroughFs fs = new PassthroughFs(share, false) {
                    @Override
                    Stat getattr(long nodeid) {
                        throw new OutOfMemoryError("Java heap space (injected)");
                    }
                };
                FuseClient c = new FuseClient(new FuseServer(fs, null, m -> { }, m -> { }))) {
            c.init();
            FuseClient.Reply r = c.send(Fuse.GETATTR, 1, new byte[16]);
            assertEquals(EIO, errno(r));
            assertEquals(0, c.send(Fuse.STATFS, 1, new byte[0]).error(), "the server goes on");
        }
    }

    // ---- host descriptors

    @Test
    void getlkNeverOpensAHostDescriptor() throws Exception {
        Files.writeString(share.resolve("locked"), "data");
        try (PassthroughFs fs = new PassthroughFs(share, false); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long node = FuseClient.entry(c.lookup(1, "locked")).nodeid();
            long fh = fh(c.open(node, O_RDWR));
            long before = hostFds();
            for (int owner = 1; owner <= 2000; owner++) {
                FuseClient.Reply r = c.getlk(node, fh, owner, F_WRLCK, 0, Long.MAX_VALUE);
                assertEquals(0, r.error());
                assertEquals(F_UNLCK, r.body().getInt(16), "nothing conflicts");
            }
            assertTrue(hostFds() - before <= 2, "2,000 GETLKs took " + (hostFds() - before) + " descriptors");
        }
    }

    @Test
    void getlkSeesAnotherOwnersLockButNotItsOwn() throws Exception {
        Files.writeString(share.resolve("locked"), "data");
        try (PassthroughFs fs = new PassthroughFs(share, false); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long node = FuseClient.entry(c.lookup(1, "locked")).nodeid();
            long fh = fh(c.open(node, O_RDWR));
            assertEquals(0, c.setlk(node, fh, 1, F_WRLCK, 0, 99, false, false).error());
            assertEquals(F_UNLCK, c.getlk(node, fh, 1, F_WRLCK, 0, 99).body().getInt(16), "its own lock");
            FuseClient.Reply other = c.getlk(node, fh, 2, F_WRLCK, 50, 60);
            assertEquals(F_WRLCK, other.body().getInt(16), "owner 1's lock");
            assertEquals(0, other.body().getLong(0));
            assertEquals(99, other.body().getLong(8));
            assertEquals(EAGAIN, errno(c.setlk(node, fh, 2, F_WRLCK, 50, 60, false, false)));
        }
    }

    @Test
    void lockOwnersBeyondTheBoundGetEnolckAndFlushFreesTheirs() throws Exception {
        Files.writeString(share.resolve("locked"), "data");
        FsLimits limits = new FsLimits(64, 16, 8);
        try (PassthroughFs fs = new PassthroughFs(share, false, limits); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long node = FuseClient.entry(c.lookup(1, "locked")).nodeid();
            long fh = fh(c.open(node, O_RDWR));
            long before = hostFds();
            for (int owner = 1; owner <= 8; owner++) {
                assertEquals(0, c.setlk(node, fh, owner, F_RDLCK, owner, owner, false, false).error());
            }
            assertEquals(ENOLCK, errno(c.setlk(node, fh, 9, F_RDLCK, 9, 9, false, false)));
            assertEquals(0, c.setlk(node, fh, 3, F_WRLCK, 3, 3, false, false).error(), "owners that have one keep locking");
            assertEquals(0, c.setlk(node, fh, 9, F_UNLCK, 0, Long.MAX_VALUE, false, false).error(), "unlocking needs none");
            assertEquals(8, hostFds() - before, "one descriptor per owner");
            assertEquals(0, c.flush(node, fh, 4).error()); // owner 4 closed a descriptor: its locks go
            assertEquals(0, c.setlk(node, fh, 9, F_WRLCK, 4, 4, false, false).error(), "owner 4's lock is gone, and its slot");
            assertEquals(8, fs.lockOwnerCount());
            assertEquals(0, c.release(node, fh, false).error());
            assertEquals(0, fs.lockOwnerCount());
            assertEquals(-1, hostFds() - before, "the handle's descriptor and every owner's are closed");
        }
    }

    @Test
    void lookupsBeyondTheInodeBoundGetEnfileAndForgetMakesRoom() throws Exception {
        files(share, 40);
        FsLimits limits = new FsLimits(16, 16, 16);
        try (PassthroughFs fs = new PassthroughFs(share, false, limits); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long before = hostFds();
            long first = 0;
            for (int i = 0; i < 15; i++) { // the root is the 16th
                FuseClient.Reply r = c.lookup(1, String.format("f%04d", i));
                assertEquals(0, r.error());
                first = first == 0 ? FuseClient.entry(r).nodeid() : first;
            }
            assertEquals(ENFILE, errno(c.lookup(1, "f0020")));
            assertEquals(0, c.lookup(1, "f0003").error(), "inodes the guest knows can be looked up again");
            assertEquals(ENFILE, errno(c.mkdir(1, "d", 0755)));
            assertEquals(ENFILE, errno(c.create(1, "new", O_RDWR | O_CREAT, 0644)));
            assertFalse(Files.exists(share.resolve("d")) || Files.exists(share.resolve("new")), "nothing made on the host");
            assertEquals(15, hostFds() - before, "one descriptor per inode");
            c.forget(first, 1);
            assertEquals(0, c.lookup(1, "f0020").error(), "a forgotten inode makes room");
            assertEquals(16, fs.inodeCount());
        }
    }

    @Test
    void readdirplusStopsLookingUpAtHalfTheInodeBound() throws Exception {
        files(share, 40);
        FsLimits limits = new FsLimits(16, 16, 16);
        try (PassthroughFs fs = new PassthroughFs(share, false, limits); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long dir = fh(c.opendir(1));
            FuseClient.Reply r = c.readdir(1, dir, 0, 65536, true);
            assertEquals(0, r.error());
            ByteBuffer b = r.body();
            int entries = 0;
            int withNode = 0;
            while (b.hasRemaining()) {
                long nodeid = b.getLong(b.position());
                b.position(b.position() + Fuse.ENTRY_OUT_SIZE + 16);
                int namelen = b.getInt();
                b.position((b.position() + 4 + namelen + 7) & ~7);
                entries++;
                withNode += nodeid != 0 ? 1 : 0;
            }
            assertEquals(42, entries, "every entry is listed, '.' and '..' included");
            assertEquals(8, fs.inodeCount(), "lookups stop at half the bound");
            assertEquals(7, withNode);
            assertEquals(0, c.lookup(1, "f0039").error(), "explicit lookups still have room");
        }
    }

    @Test
    void opensBeyondTheOpenFileBoundGetEmfile() throws Exception {
        files(share, 4);
        FsLimits limits = new FsLimits(64, 8, 8);
        try (PassthroughFs fs = new PassthroughFs(share, false, limits); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long node = FuseClient.entry(c.lookup(1, "f0000")).nodeid();
            long before = hostFds();
            long fh = 0;
            for (int i = 0; i < 8; i++) {
                fh = fh(c.open(node, O_RDONLY));
            }
            assertEquals(EMFILE, errno(c.open(node, O_RDONLY)));
            assertEquals(EMFILE, errno(c.opendir(1)));
            assertEquals(EMFILE, errno(c.create(1, "new", O_RDWR | O_CREAT, 0644)));
            assertFalse(Files.exists(share.resolve("new")), "nothing made on the host");
            assertEquals(8, hostFds() - before);
            assertEquals(0, c.release(node, fh, false).error());
            assertEquals(0, c.opendir(1).error(), "a released handle makes room");
        }
    }

    @Test
    void defaultBoundsAreAShareOfTheDescriptorLimit() {
        assertEquals(new FsLimits(503_808, 16_384, 4_096), FsLimits.forOpenFileLimit(1 << 20));
        assertEquals(new FsLimits(432, 64, 16), FsLimits.forOpenFileLimit(1024));
        FsLimits here = FsLimits.forThisProcess();
        long total = (long) here.maxInodes() + here.maxOpenFiles() + here.maxLockOwners();
        assertTrue(total <= Math.max(HostFs.openFileLimit() / 2, 512), here + " against RLIMIT_NOFILE " + HostFs.openFileLimit());
    }

    @Test
    void flockAndPosixWaitsEndWithEintrWhenCancelled() throws Exception {
        Files.writeString(share.resolve("locked"), "data");
        try (PassthroughFs fs = new PassthroughFs(share, false); FuseClient c = new FuseClient(new FuseServer(fs))) {
            c.init();
            long node = FuseClient.entry(c.lookup(1, "locked")).nodeid();
            long fh1 = fh(c.open(node, O_RDWR));
            long fh2 = fh(c.open(node, O_RDWR));
            assertEquals(0, c.setlk(node, fh1, 1, F_WRLCK, 0, Long.MAX_VALUE, true, false).error());
            assertEquals(0, c.setlk(node, fh1, 1, F_WRLCK, 0, Long.MAX_VALUE, false, false).error());
            c.server.cancelWaits(); // as reset and close do: waits from now on end at once
            assertEquals(EINTR, errno(c.setlk(node, fh2, 2, F_WRLCK, 0, Long.MAX_VALUE, true, true)), "flock");
            assertEquals(EINTR, errno(c.setlk(node, fh2, 2, F_WRLCK, 0, Long.MAX_VALUE, false, true)), "POSIX");
        }
    }
}
