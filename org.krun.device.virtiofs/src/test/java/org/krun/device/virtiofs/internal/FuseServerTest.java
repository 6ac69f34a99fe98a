package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFileAttributes;
import java.nio.file.attribute.UserDefinedFileAttributeView;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.spi.virtio.MockDriverQueue;

/**
 * The FUSE server over a real host directory, driven through real descriptor chains, without KVM: the
 * protocol, the passthrough semantics, confinement to the share, and malformed requests.
 */
class FuseServerTest {
    static final int O_RDONLY = 0;
    static final int O_WRONLY = 1;
    static final int O_RDWR = 2;
    static final int O_CREAT = 0100;
    static final int S_IFREG = 0100000;
    static final int S_IFLNK = 0120000;

    @TempDir
    Path tmp;
    Path share;
    PassthroughFs fs;
    FuseClient c;

    @BeforeEach
    void setUp() throws Exception {
        share = Files.createDirectory(tmp.resolve("share"));
        Files.writeString(tmp.resolve("outside-secret"), "HOST-SECRET");
        Files.writeString(share.resolve("hello.txt"), "hello from the host");
        fs = new PassthroughFs(share, false);
        c = new FuseClient(new FuseServer(fs));
        assertEquals(0, c.init().error());
    }

    @AfterEach
    void tearDown() {
        c.close();
        fs.close();
    }

    private static int errno(FuseClient.Reply r) {
        return -r.error();
    }

    @Test
    void initAnswersOurVersionAndOnlyFlagsTheKernelOffered() {
        FuseClient.Reply r = c.init();
        assertEquals(0, r.error());
        ByteBuffer b = r.body();
        assertEquals(7, b.getInt());
        assertEquals(31, b.getInt());
        b.getInt(); // max_readahead
        int flags = b.getInt();
        assertEquals(Fuse.OFFERED_FLAGS, flags);
        b.getShort();
        b.getShort();
        assertEquals(Fuse.MAX_WRITE, b.getInt());
        byte[] args = FuseClient.le(64).putInt(7).putInt(41).putInt(0).putInt(Fuse.FUSE_ASYNC_READ).array();
        FuseClient.Reply narrow = c.send(Fuse.INIT, 0, args);
        assertEquals(Fuse.FUSE_ASYNC_READ, narrow.body().getInt(12));
        assertEquals(71 /* EPROTO */, errno(c.send(Fuse.INIT, 0, FuseClient.le(64).putInt(6).putInt(0).array())));
    }

    @Test
    void lookupReportsTheHostFileAndGivesOneNodePerInode() throws Exception {
        FuseClient.Entry e = FuseClient.entry(c.lookup(1, "hello.txt"));
        PosixFileAttributes a = Files.readAttributes(share.resolve("hello.txt"), PosixFileAttributes.class);
        assertEquals(Files.size(share.resolve("hello.txt")), e.size());
        assertEquals(S_IFREG, e.mode() & 0170000);
        assertTrue(e.nodeid() > 1);
        assertEquals(e.nodeid(), FuseClient.entry(c.lookup(1, "hello.txt")).nodeid(), "same inode, same node id");
        Files.createLink(share.resolve("hard"), share.resolve("hello.txt"));
        assertEquals(e.nodeid(), FuseClient.entry(c.lookup(1, "hard")).nodeid(), "a hard link is the same node");
        assertEquals(2, FuseClient.entry(c.lookup(1, "hard")).nlink());
        assertNotEquals(null, a);
    }

    @Test
    void missingNamesAndBadNamesAreErrors() {
        assertEquals(2 /* ENOENT */, errno(c.lookup(1, "nope")));
        assertEquals(22 /* EINVAL */, errno(c.lookup(1, "..")));
        assertEquals(22, errno(c.lookup(1, ".")));
        assertEquals(22, errno(c.lookup(1, "a/b")));
        assertEquals(22, errno(c.lookup(1, "../outside-secret")));
        assertEquals(2, errno(c.lookup(1, "")));
        assertEquals(36 /* ENAMETOOLONG */, errno(c.lookup(1, "x".repeat(300))));
    }

    @Test
    void createWriteReadReleaseRoundTripsThroughTheHostFile() throws Exception {
        FuseClient.Reply cr = c.create(1, "new.bin", O_RDWR | O_CREAT, 0640);
        assertEquals(0, cr.error());
        FuseClient.Entry e = FuseClient.entry(cr);
        long fh = FuseClient.createdHandle(cr);
        byte[] data = new byte[300_000];
        new Random(1).nextBytes(data);
        FuseClient.Reply w = c.write(e.nodeid(), fh, 0, data);
        assertEquals(0, w.error());
        assertEquals(data.length, w.body().getInt());
        assertArrayEquals(data, Files.readAllBytes(share.resolve("new.bin")));
        FuseClient.Reply r = c.read(e.nodeid(), fh, 1000, 5000);
        assertEquals(16 + 5000, r.len());
        byte[] got = new byte[5000];
        r.body().get(got);
        assertArrayEquals(java.util.Arrays.copyOfRange(data, 1000, 6000), got);
        assertEquals(16, c.read(e.nodeid(), fh, data.length + 10, 100).len(), "reading past the end gives nothing");
        assertEquals(0, c.release(e.nodeid(), fh, false).error());
        assertEquals(9 /* EBADF */, errno(c.read(e.nodeid(), fh, 0, 10)), "released handles are gone");
        assertEquals(0640, Files.readAttributes(share.resolve("new.bin"), PosixFileAttributes.class).permissions()
                .stream().mapToInt(p -> 1 << (8 - p.ordinal())).sum());
    }

    /** FOPEN_KEEP_CACHE in an OPEN reply's open_flags. */
    private static boolean keepsCache(FuseClient.Reply open) {
        assertEquals(0, open.error());
        return (open.body().getInt(8) & Fuse.FOPEN_KEEP_CACHE) != 0;
    }

    @Test
    void theGuestKeepsAFilesCachedPagesOnlyWhileTheFileIsUnchangedSinceItsLastOpen() throws Exception {
        long[] offset = {10_000_000_000L}; // the host clock, 10 s on: files written now look settled
        try (PassthroughFs timed = new PassthroughFs(share, false, FsLimits.forThisProcess(),
                () -> System.currentTimeMillis() * 1_000_000L + offset[0]);
                FuseClient t = new FuseClient(new FuseServer(timed))) {
            assertEquals(0, t.init().error());
            long node = FuseClient.entry(t.lookup(1, "hello.txt")).nodeid();
            assertFalse(keepsCache(t.open(node, O_RDONLY)), "the first open: nothing cached to keep");
            assertTrue(keepsCache(t.open(node, O_RDONLY)), "unchanged since the last open");
            assertTrue(keepsCache(t.open(node, O_RDWR)), "the access mode does not change the contents");

            Files.writeString(share.resolve("hello.txt"), "HELLO FROM THE HOST"); // same size, new contents
            assertFalse(keepsCache(t.open(node, O_RDONLY)), "changed on the host since the last open");
            assertTrue(keepsCache(t.open(node, O_RDONLY)), "unchanged since the open that saw the change");

            offset[0] = 0; // the clock as it is: the next change is too recent to trust its timestamps
            Files.writeString(share.resolve("hello.txt"), "hello from the hosT");
            assertFalse(keepsCache(t.open(node, O_RDONLY)));
            assertFalse(keepsCache(t.open(node, O_RDONLY)), "a change within the timestamp tick could hide behind it");
            offset[0] = 10_000_000_000L;
            assertFalse(keepsCache(t.open(node, O_RDONLY)), "the previous open's stamp was not settled");
            assertTrue(keepsCache(t.open(node, O_RDONLY)));

            assertFalse(keepsCache(t.open(node, O_RDWR | 01000 /* O_TRUNC */)), "a truncating open drops the pages");
            assertEquals(0, Files.size(share.resolve("hello.txt")));
            assertTrue(keepsCache(t.open(node, O_RDONLY)), "the guest truncated its pages with the file: nothing stale");
            long dir = FuseClient.entry(t.mkdir(1, "d", 0755)).nodeid();
            FuseClient.Reply od = t.send(Fuse.OPENDIR, dir, new byte[8]);
            assertEquals(0, od.error());
            assertEquals(0, od.body().getInt(8), "directories get no open flags");
        }
    }

    @Test
    void filesCreatedForAnotherGuestUserBelongToThatUserOnTheHost() throws Exception {
        org.junit.jupiter.api.Assumptions.assumeTrue(HostFs.geteuid() == 0, "needs root to give files away");
        c.uid = 1234;
        c.gid = 4321;
        FuseClient.Reply cr = c.create(1, "theirs", O_RDWR | O_CREAT, 0644);
        assertEquals(1234, FuseClient.entry(cr).uid());
        assertEquals(1234, Files.getAttribute(share.resolve("theirs"), "unix:uid"));
        assertEquals(4321, Files.getAttribute(share.resolve("theirs"), "unix:gid"));
    }

    @Test
    void plantedSymlinksAreNeverFollowedOnTheHost() throws Exception {
        Files.createSymbolicLink(share.resolve("abs"), tmp.resolve("outside-secret"));
        Files.createSymbolicLink(share.resolve("rel"), Path.of("../outside-secret"));
        Files.createSymbolicLink(share.resolve("dirlink"), tmp);
        for (String name : List.of("abs", "rel", "dirlink")) {
            FuseClient.Entry e = FuseClient.entry(c.lookup(1, name));
            assertEquals(S_IFLNK, e.mode() & 0170000, name + " is seen as the symlink itself");
            assertEquals(13 /* EACCES */, errno(c.open(e.nodeid(), O_RDONLY)), "a symlink node is never opened: " + name);
        }
        FuseClient.Entry dir = FuseClient.entry(c.lookup(1, "dirlink"));
        assertEquals(20 /* ENOTDIR */, errno(c.lookup(dir.nodeid(), "outside-secret")), "no lookup through a symlink");
        FuseClient.Reply rl = c.send(Fuse.READLINK, FuseClient.entry(c.lookup(1, "rel")).nodeid(), new byte[0]);
        assertEquals("../outside-secret", StandardCharsets.UTF_8.decode(rl.body()).toString());
    }

    @Test
    void linkingAPlantedSymlinkLinksTheSymlinkNotItsTarget() throws Exception {
        Files.createSymbolicLink(share.resolve("abs"), tmp.resolve("outside-secret"));
        long node = FuseClient.entry(c.lookup(1, "abs")).nodeid();
        FuseClient.Reply r = c.send(Fuse.LINK, 1, FuseClient.cat(FuseClient.le(8).putLong(node).array(), FuseClient.cstr("hard")));
        assertEquals(0, r.error());
        assertTrue(Files.isSymbolicLink(share.resolve("hard")), "the new name is the symlink itself");
        assertEquals(1, Files.getAttribute(tmp.resolve("outside-secret"), "unix:nlink"), "the file outside gained no link");
    }

    @Test
    void guestCreatedSymlinksStayTextOnTheHost() throws Exception {
        byte[] args = FuseClient.cat(FuseClient.cstr("evil"), FuseClient.cstr("/etc/shadow"));
        assertEquals(0, c.send(Fuse.SYMLINK, 1, args).error());
        assertEquals(Path.of("/etc/shadow"), Files.readSymbolicLink(share.resolve("evil")));
        FuseClient.Entry e = FuseClient.entry(c.lookup(1, "evil"));
        assertEquals(13, errno(c.open(e.nodeid(), O_RDONLY)));
    }

    @Test
    void renameAndLinkStayInsideTheShare() throws Exception {
        FuseClient.Entry sub = FuseClient.entry(c.mkdir(1, "sub", 0755));
        byte[] rename = FuseClient.cat(FuseClient.le(8).putLong(sub.nodeid()).array(), FuseClient.cstr("hello.txt"),
                FuseClient.cstr("moved.txt"));
        assertEquals(0, c.send(Fuse.RENAME, 1, rename).error());
        assertTrue(Files.exists(share.resolve("sub/moved.txt")));
        byte[] escape = FuseClient.cat(FuseClient.le(8).putLong(1).array(), FuseClient.cstr("sub"), FuseClient.cstr("../x"));
        assertEquals(22, errno(c.send(Fuse.RENAME, 1, escape)), "a target name with '/' is refused");
        assertEquals(9 /* EBADF */, errno(c.send(Fuse.LINK, 1,
                FuseClient.cat(FuseClient.le(8).putLong(999_999).array(), FuseClient.cstr("x")))), "unknown node");
        assertFalse(Files.exists(tmp.resolve("x")));
    }

    @Test
    void readOnlyShareRefusesEveryChangeWithErofs() throws Exception {
        try (PassthroughFs ro = new PassthroughFs(share, true); FuseClient rc = new FuseClient(new FuseServer(ro))) {
            rc.init();
            FuseClient.Entry hello = FuseClient.entry(rc.lookup(1, "hello.txt"));
            assertEquals(30, errno(rc.create(1, "x", O_RDWR | O_CREAT, 0644)));
            assertEquals(30, errno(rc.mkdir(1, "d", 0755)));
            assertEquals(30, errno(rc.open(hello.nodeid(), O_WRONLY)));
            assertEquals(30, errno(rc.send(Fuse.UNLINK, 1, FuseClient.cstr("hello.txt"))));
            byte[] setattr = FuseClient.le(88).putInt(PassthroughFs.FATTR_MODE).putInt(0).putLong(0).putLong(0).putLong(0)
                    .putLong(0).putLong(0).putLong(0).putInt(0).putInt(0).putInt(0).putInt(0600).array();
            assertEquals(30, errno(rc.send(Fuse.SETATTR, hello.nodeid(), setattr)));
            FuseClient.Reply open = rc.open(hello.nodeid(), O_RDONLY);
            assertEquals(0, open.error(), "reading stays possible");
            assertEquals("hello from the host", Files.readString(share.resolve("hello.txt")));
            assertFalse(Files.exists(share.resolve("x")));
        }
    }

    @Test
    void readdirListsEntriesAndItsCookiesResumeWhereTheyLeftOff() throws Exception {
        for (int i = 0; i < 500; i++) {
            Files.writeString(share.resolve("f" + i), "");
        }
        long fh = c.send(Fuse.OPENDIR, 1, FuseClient.le(8).array()).body().getLong();
        List<String> names = new ArrayList<>();
        long offset = 0;
        while (true) {
            FuseClient.Reply r = c.readdir(1, fh, offset, 4096, false);
            assertEquals(0, r.error());
            ByteBuffer b = r.body();
            if (!b.hasRemaining()) {
                break;
            }
            while (b.hasRemaining()) {
                b.getLong(); // ino
                offset = b.getLong();
                int namelen = b.getInt();
                b.getInt();
                byte[] n = new byte[namelen];
                b.get(n);
                names.add(new String(n, StandardCharsets.UTF_8));
                b.position((b.position() + 7) & ~7);
            }
        }
        assertEquals(503, names.size(), "500 files, hello.txt, '.' and '..'");
        assertEquals(names.size(), names.stream().distinct().count(), "each entry once");
        assertTrue(names.contains("hello.txt"));
    }

    @Test
    void readdirplusCountsALookupForEveryEntryItNames() throws Exception {
        long fh = c.send(Fuse.OPENDIR, 1, FuseClient.le(8).array()).body().getLong();
        int before = fs.inodeCount();
        FuseClient.Reply r = c.readdir(1, fh, 0, 65536, true);
        assertEquals(0, r.error());
        assertEquals(before + 1, fs.inodeCount(), "hello.txt was looked up");
        long node = FuseClient.entry(c.lookup(1, "hello.txt")).nodeid();
        c.forget(node, 2);
        assertEquals(before, fs.inodeCount(), "two forgets release it");
    }

    @Test
    void xattrsOutsideTheUserNamespaceLandUnderAPrefixOnTheHost() throws Exception {
        long node = FuseClient.entry(c.lookup(1, "hello.txt")).nodeid();
        byte[] args = FuseClient.cat(FuseClient.le(8).putInt(3).putInt(0).array(), FuseClient.cstr("trusted.t"), "abc".getBytes());
        assertEquals(0, c.send(Fuse.SETXATTR, node, args).error());
        UserDefinedFileAttributeView view = Files.getFileAttributeView(share.resolve("hello.txt"), UserDefinedFileAttributeView.class);
        assertTrue(view.list().contains("krun.trusted.t"), view.list().toString());
        FuseClient.Reply g = c.send(Fuse.GETXATTR, node, FuseClient.cat(FuseClient.le(8).putInt(64).array(),
                FuseClient.cstr("trusted.t")));
        assertEquals("abc", StandardCharsets.UTF_8.decode(g.body()).toString());
        FuseClient.Reply list = c.send(Fuse.LISTXATTR, node, FuseClient.le(8).putInt(256).array());
        assertEquals("trusted.t\0", StandardCharsets.UTF_8.decode(list.body()).toString());
    }

    // ---- malformed requests

    @Test
    void aRequestShorterThanItsHeaderGetsNoReply() {
        MockDriverQueue.Used u = c.sendRaw(List.of(new byte[20]), 256);
        assertEquals(0, u.len());
    }

    @Test
    void lengthsThatDisagreeWithTheChainAreEinval() {
        byte[] lies = c.header(Fuse.LOOKUP, 1, 40 + 1_000_000, 77);
        FuseClient.Reply r = FuseClient.decode(c.sendRaw(List.of(lies, FuseClient.cstr("hello.txt")), 256).written());
        assertEquals(-22, r.error());
        assertEquals(77, r.unique());
        byte[] tooShort = c.header(Fuse.GETATTR, 1, 12, 78);
        assertEquals(-22, FuseClient.decode(c.sendRaw(List.of(tooShort), 256).written()).error());
        byte[] overflow = c.header(Fuse.LOOKUP, 1, -1, 79);
        assertEquals(-22, FuseClient.decode(c.sendRaw(List.of(overflow), 256).written()).error());
    }

    @Test
    void unknownOpcodesAreEnosysAndBadNodesEbadf() {
        assertEquals(38, errno(c.send(9999, 1, new byte[0])));
        assertEquals(38, errno(c.send(39 /* IOCTL */, 1, new byte[32])));
        assertEquals(9, errno(c.send(Fuse.GETATTR, 424242, new byte[16])));
        assertEquals(9, errno(c.read(1, 31337, 0, 10)));
    }

    @Test
    void namesWithoutTerminatorAndShortArgumentsAreEinval() {
        assertEquals(22, errno(c.send(Fuse.LOOKUP, 1, "hello.txt".getBytes())));
        assertEquals(22, errno(c.send(Fuse.SETATTR, 1, new byte[10])));
        byte[] write = FuseClient.le(40).putLong(1).putLong(0).putInt(1000).array();
        assertEquals(22, errno(c.send(Fuse.WRITE, 1, FuseClient.cat(write, new byte[10]))), "size disagrees with data");
    }

    @Test
    void aReplyBufferTooSmallForAHeaderGetsNothingWritten() {
        MockDriverQueue.Used u = c.sendRaw(List.of(c.header(Fuse.GETATTR, 1, 16), new byte[16]), 8);
        assertEquals(0, u.len());
        FuseClient.Reply small = c.send(Fuse.GETATTR, 1, new byte[16], 20);
        assertEquals(-34 /* ERANGE */, small.error());
    }

    @Test
    void randomRequestsNeverEscapeAsExceptions() {
        Random rnd = new Random(7);
        for (int i = 0; i < 3000; i++) {
            int op = rnd.nextInt(60);
            long node = rnd.nextInt(4) == 0 ? rnd.nextLong() : 1 + rnd.nextInt(3);
            byte[] args = new byte[rnd.nextInt(200)];
            rnd.nextBytes(args);
            if (op == Fuse.SETLKW || op == Fuse.DESTROY || op == Fuse.INIT) {
                continue;
            }
            FuseClient.Reply r = c.send(op, node, args, 1 + rnd.nextInt(512));
            if (r != null) {
                assertTrue(r.error() <= 0);
            }
        }
        assertEquals("hello from the host", readHost("hello.txt"));
    }

    private String readHost(String name) {
        try {
            return Files.readString(share.resolve(name));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }
}
