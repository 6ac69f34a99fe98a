package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
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
import org.krun.spi.virtio.MockDriverQueue;

/**
 * The device with its two queues and real threads: what the hiprio queue serves and refuses, and that every
 * lock wait ends when the guest interrupts it, the driver resets the device or the VM closes it, so a
 * hostile or unlucky guest can never make the VM unkillable.
 *
 * <p>Bounded waits: "ends within 5 s" stands for "ends promptly" (a wait ends within a few milliseconds of
 * its cancellation; 5 s only keeps a slow machine from failing the test); "still waiting after 300 ms"
 * checks a request really waits before it is cancelled.
 */
class VirtioFsTest {
    static final int O_RDWR = 2;
    static final int F_WRLCK = 1;
    static final int F_UNLCK = 2;
    static final int EINTR = 4;
    static final int EINVAL = 22;
    static final Duration PROMPTLY = Duration.ofSeconds(5);
    static final Duration A_WHILE = Duration.ofMillis(300);

    @TempDir
    Path share;
    FsDeviceHarness h;
    long node;

    @BeforeEach
    void setUp() throws Exception {
        Files.writeString(share.resolve("locked"), "data");
        h = new FsDeviceHarness(share, new FsLimits(1024, 256, 256));
        assertEquals(0, h.call(Fuse.INIT, 0, FuseClient.le(64).putInt(7).putInt(31).putInt(0).putInt(-1).array()).error());
        node = FuseClient.entry(h.call(Fuse.LOOKUP, 1, FuseClient.cstr("locked"))).nodeid();
    }

    @AfterEach
    void tearDown() {
        h.close();
    }

    private long open() {
        FuseClient.Reply r = h.call(Fuse.OPEN, node, FuseClient.le(8).putInt(O_RDWR).array());
        assertEquals(0, r.error());
        return r.body().getLong();
    }

    private FsDeviceHarness.Sent setlkw(long fh, long owner, boolean flock) {
        return h.send(VirtioFs.REQUEST_QUEUE, Fuse.SETLKW, node, FuseClient.lkIn(fh, owner, F_WRLCK, 0, Long.MAX_VALUE, flock), 64);
    }

    private static int errno(MockDriverQueue.Used u) {
        return -FuseClient.decode(u.written()).error();
    }

    /** A request that waits for a lock the host holds: it must still be waiting after a while. */
    private FsDeviceHarness.Sent waiting(FsDeviceHarness.Sent s) {
        assertNull(h.await(s, A_WHILE), "the lock request should wait");
        return s;
    }

    private void interrupt(long unique) {
        FsDeviceHarness.Sent i = h.send(VirtioFs.HIPRIO_QUEUE, Fuse.INTERRUPT, 0, FuseClient.le(8).putLong(unique).array(), 64);
        MockDriverQueue.Used u = h.await(i, PROMPTLY);
        assertNotNull(u, "the INTERRUPT chain comes back");
        assertEquals(0, u.len(), "INTERRUPT is never replied to");
    }

    // ---- the hiprio queue

    @Test
    void aSetlkwOnTheHiprioQueueIsRefusedWithoutBlockingTheLoop() throws Exception {
        long fh = open();
        try (FileChannel ch = FileChannel.open(share.resolve("locked"), StandardOpenOption.WRITE); FileLock held = ch.lock()) {
            // A host process's lock (this JVM's fcntl lock conflicts with the device's OFD locks).
            FsDeviceHarness.Sent s = h.send(VirtioFs.HIPRIO_QUEUE, Fuse.SETLKW, node,
                    FuseClient.lkIn(fh, 7, F_WRLCK, 0, Long.MAX_VALUE, false), 64);
            MockDriverQueue.Used u = h.await(s, PROMPTLY);
            assertNotNull(u, "the hiprio queue was blocked by a SETLKW");
            assertEquals(EINVAL, errno(u), "only FORGET, BATCH_FORGET and INTERRUPT belong on the hiprio queue");
            assertEquals(0, h.call(Fuse.STATFS, 1, new byte[0]).error(), "the loop serves requests");
            h.closeDevice(PROMPTLY);
        }
    }

    @Test
    void forgetOnTheHiprioQueueReleasesTheInode() {
        PassthroughFs fs = h.device.session().server.fs();
        int before = fs.inodeCount();
        FsDeviceHarness.Sent f = h.send(VirtioFs.HIPRIO_QUEUE, Fuse.FORGET, node, FuseClient.le(8).putLong(1).array(), 0);
        assertEquals(0, h.await(f, PROMPTLY).len());
        assertEquals(before - 1, fs.inodeCount());
    }

    // ---- lock waits end on INTERRUPT, reset and close

    @Test
    void interruptEndsAWaitingPosixLockWithEintr() {
        long fh = open();
        assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh, 1, F_WRLCK, 0, Long.MAX_VALUE, false)).error());
        FsDeviceHarness.Sent w = waiting(setlkw(fh, 2, false));
        interrupt(w.unique());
        MockDriverQueue.Used u = h.await(w, PROMPTLY);
        assertNotNull(u, "the interrupted SETLKW was not answered");
        assertEquals(EINTR, errno(u));
        FuseClient.Reply probe = h.call(Fuse.GETLK, node, FuseClient.lkIn(fh, 3, F_WRLCK, 0, Long.MAX_VALUE, false));
        assertEquals(F_WRLCK, probe.body().getInt(16), "owner 1 still holds its lock, owner 2 got none");
    }

    @Test
    void interruptEndsAWaitingFlockWithEintr() {
        long fh1 = open();
        long fh2 = open();
        assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh1, 1, F_WRLCK, 0, Long.MAX_VALUE, true)).error());
        FsDeviceHarness.Sent w = waiting(setlkw(fh2, 2, true));
        interrupt(w.unique());
        MockDriverQueue.Used u = h.await(w, PROMPTLY);
        assertNotNull(u, "the interrupted flock was not answered");
        assertEquals(EINTR, errno(u));
    }

    @Test
    void anInterruptThatOvertakesItsRequestStillEndsIt() {
        long fh = open();
        assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh, 1, F_WRLCK, 0, Long.MAX_VALUE, false)).error());
        interrupt(4242); // on the hiprio queue, before the request it names arrives on the request queue
        FsDeviceHarness.Sent w = h.send(VirtioFs.REQUEST_QUEUE, 4242, Fuse.SETLKW, node,
                FuseClient.lkIn(fh, 2, F_WRLCK, 0, Long.MAX_VALUE, false), 64);
        MockDriverQueue.Used u = h.await(w, PROMPTLY);
        assertNotNull(u, "the SETLKW waits although it was interrupted");
        assertEquals(EINTR, errno(u));
    }

    @Test
    void anUnlockHandsTheLockToAWaiter() {
        long fh = open();
        assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh, 1, F_WRLCK, 0, Long.MAX_VALUE, false)).error());
        FsDeviceHarness.Sent w = waiting(setlkw(fh, 2, false));
        assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh, 1, F_UNLCK, 0, Long.MAX_VALUE, false)).error());
        MockDriverQueue.Used u = h.await(w, PROMPTLY);
        assertNotNull(u, "the waiter did not get the lock");
        assertEquals(0, errno(u));
    }

    @Test
    void resetEndsWaitingLocksPromptly() throws Exception {
        long fh1 = open();
        long fh2 = open();
        try (FileChannel ch = FileChannel.open(share.resolve("locked"), StandardOpenOption.WRITE); FileLock held = ch.lock()) {
            assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh1, 1, F_WRLCK, 0, Long.MAX_VALUE, true)).error());
            waiting(setlkw(fh2, 2, false));
            waiting(setlkw(fh2, 3, true));
            assertEquals(2, h.device.requestsInFlight());
            LockWaits waits = h.device.session().server.waits();
            assertEquals(2, waits.waiting());
            h.onLoop(() -> {
                h.device.reset(); // the driver's reset, on the loop: it waits for the requests in flight
                return null;
            });
            assertEquals(0, waits.waiting(), "both waits ended");
        }
    }

    @Test
    void closeEndsWaitingLocksPromptly() throws Exception {
        long fh1 = open();
        long fh2 = open();
        try (FileChannel ch = FileChannel.open(share.resolve("locked"), StandardOpenOption.WRITE); FileLock held = ch.lock()) {
            assertEquals(0, h.call(Fuse.SETLK, node, FuseClient.lkIn(fh1, 1, F_WRLCK, 0, Long.MAX_VALUE, true)).error());
            waiting(setlkw(fh2, 2, false));
            waiting(setlkw(fh2, 3, true));
            h.closeDevice(PROMPTLY);
        }
    }

    // ---- work in flight is bounded

    @Test
    void aDriverRepublishingAWaitingRequestCannotGrowWorkBeyondTheQueueSize() throws Exception {
        long fh = open();
        try (FileChannel ch = FileChannel.open(share.resolve("locked"), StandardOpenOption.WRITE); FileLock held = ch.lock()) {
            FsDeviceHarness.Sent w = waiting(setlkw(fh, 2, false));
            // The same head again and again, as much as the ring allows (never more than its size ahead of
            // the device): each is a new request to the device.
            int perRound = h.requests.size() - 1;
            int rounds = VirtioFs.MAX_IN_FLIGHT / perRound + 1;
            for (int round = 0; round < rounds; round++) {
                h.onLoop(() -> {
                    for (int i = 0; i < perRound; i++) {
                        h.requests.makeAvailable(w.head());
                    }
                    h.device.queueNotify(VirtioFs.REQUEST_QUEUE);
                    return null;
                });
            }
            assertEquals(VirtioFs.MAX_IN_FLIGHT, h.device.requestsInFlight(), "requests in flight");
            assertEquals(java.util.List.of(), h.resetReasons);
            h.closeDevice(PROMPTLY);
        }
    }
}
