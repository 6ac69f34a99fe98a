package org.krun.device.virtiofs.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;
import com.code_intelligence.jazzer.junit.FuzzTest;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.FuzzBounds;
import org.krun.spi.virtio.FuzzScratch;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.TestSharedMemory;
import org.krun.spi.virtio.Virtqueue;

/**
 * Coverage-guided fuzzing of the FUSE server (Jazzer): arbitrary request sequences ({@link FuseFuzzRequests}:
 * every opcode, lying headers, names that try to leave the share, huge and tiny sizes), in descriptor chains
 * of every shape (split headers, zero-length, tiny and 4 GiB buffers, buffers outside guest RAM), on both
 * queues, over a passthrough share of a fresh directory with small {@link FsLimits}.
 *
 * <p>Each input must keep these bounds, or it is a finding:
 * <ul>
 * <li>every request is answered: a request with a readable header and room for a reply gets a reply with
 * its unique and a length that matches the used length (FORGET, BATCH_FORGET and INTERRUPT: no reply or an
 * error), and nothing else than a FUSE error comes back;
 * <li>no request allocates more than {@link #MAX_HEAP_PER_REQUEST} on the heap (whatever size the guest
 * names; requests during which the JVM loaded a class are not judged: loading allocates), and none takes longer than {@link #MAX_TIME_PER_REQUEST} (a hang guard: lock waits are
 * interrupted after {@link #LOCK_PATIENCE});
 * <li>the share holds at most its limits' worth of host descriptors, and none is left once the share is
 * closed;
 * <li>nothing outside the share changes or shows through: the directory beside it, its secret file, the
 * file's link count, and no reply carries the secret;
 * <li>no host failure (an exception that is not a FUSE error) happens while serving.
 * </ul>
 *
 * <p>Without {@code JAZZER_FUZZ} each method runs its seeds (FuseFuzzTestInputs/METHOD/ in the test
 * resources) in the normal build; {@code JAZZER_FUZZ=1 mvn test -Dtest=FuseFuzzTest#METHOD} fuzzes one.
 */
class FuseFuzzTest {

    static final long MAX_HEAP_PER_REQUEST = 4 << 20;
    static final Duration MAX_TIME_PER_REQUEST = Duration.ofSeconds(5);
    static final Duration LOCK_PATIENCE = Duration.ofMillis(20);
    static final int MAX_REQUESTS = 64;
    /** Small, so that inputs reach every bound (ENFILE, EMFILE, ENOLCK). */
    static final FsLimits LIMITS = new FsLimits(12, 6, 3);
    /** Descriptors the JVM may open on its own during an input (class loading, JIT): not the share's. */
    static final int FD_SLACK = 4;
    static final String SECRET = "KRUN-FUZZ-SECRET-CANARY";

    // Guest memory and one queue for the server target, made once: its allocator never frees.
    static final long RAM = 16 << 20;
    static final long REQUEST_AREA = 1 << 20;
    static final long REPLY_AREA = 4 << 20;
    static final long REPLY_AREA_SIZE = 10 << 20;
    private static TestGuestMemory ram;
    /** Guest RAM of the device target, one harness after another (cleared by each). */
    private static TestGuestMemory deviceRam;
    /** The device target's event loop, one harness after another (each drains it when it closes). */
    private static java.util.concurrent.ExecutorService deviceLoop;
    private static MockDriverQueue driver;
    private static Virtqueue queue;
    private static int[] descriptors;
    private static Path base;
    private static final java.lang.management.ClassLoadingMXBean CLASSES = java.lang.management.ManagementFactory.getClassLoadingMXBean();
    private static long startFds = -1;
    private static final ScheduledExecutorService WATCHDOG = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread t = new Thread(r, "fuzz-lock-interrupter");
        t.setDaemon(true);
        return t;
    });

    static {
        // Each input makes a fresh device, whose rate limit for guest errors starts afresh: the device target
        // logged a warning (hiprio opcodes refused, ...) on 32,666 of 40,718 inputs, 5.4 MB of log in 71 s,
        // formatted and written on the event loop. No check here reads the log; host failures are asserted
        // through the server's own callback.
        FuzzBounds.quietLogs("org.krun.device.virtiofs");
    }

    private static synchronized void setUpOnce() throws IOException {
        if (ram == null) {
            ram = TestGuestMemory.create(RAM);
            driver = new MockDriverQueue(ram, 16);
            queue = driver.configuredQueue();
            descriptors = driver.reserveDescriptors(8);
            deviceRam = TestGuestMemory.create(8 << 20);
            deviceLoop = FsDeviceHarness.newLoop();
            base = scratchBase();
        }
    }

    /**
     * Where each input's share is made and deleted: tmpfs (/dev/shm) where it keeps user xattrs as a disk
     * filesystem does, else the temporary directory. Making and deleting a share's tree on ext4 (a VM's
     * disk here) cost more than half of each input's time (JFR: 84% of native samples in rmdir and unlink),
     * and the guest's fsync and syncfs there flush the host's disk; on tmpfs both are memory operations.
     * The folder is named after this process, and folders of processes that are gone are removed first
     * ({@link FuzzScratch}).
     */
    static Path scratchBase() throws IOException {
        Path shm = Path.of("/dev/shm");
        if (Files.isDirectory(shm) && Files.isWritable(shm)) {
            Path dir = FuzzScratch.folder(shm, "krun-fuse-fuzz");
            try {
                var xattrs = Files.getFileAttributeView(dir, java.nio.file.attribute.UserDefinedFileAttributeView.class);
                xattrs.write("krun-probe", ByteBuffer.wrap(new byte[] {1}));
                xattrs.delete("krun-probe");
                return dir;
            } catch (IOException | UnsupportedOperationException | NullPointerException noXattrs) {
                Files.delete(dir);
            }
        }
        return FuzzScratch.folder(Path.of(System.getProperty("java.io.tmpdir")), "krun-fuse-fuzz");
    }

    /** The server alone, on the calling thread: one request after another, as the workers serve them. */
    @FuzzTest
    void fuseServerAnswersEveryRequestWithinBounds(FuzzedDataProvider data) throws Exception {
        setUpOnce();
        Run run = new Run(base.resolve("run"));
        long fdsBefore = FuseBoundsTest.hostFds();
        startFds = startFds < 0 ? fdsBefore : startFds;
        List<String> hostErrors = new CopyOnWriteArrayList<>();
        PassthroughFs fs = new PassthroughFs(run.share, data.consumeInt(0, 7) == 0, LIMITS);
        // A DAX window of 8 MiB (four 2 MiB pieces), as the core would hand it to the device.
        TestSharedMemory window = new TestSharedMemory(VirtioFs.SHM_CACHE, 1L << 32, 8 << 20, 4);
        DaxWindow dax = new DaxWindow(window, 4);
        try {
            FuseServer server = new FuseServer(fs, dax, m -> { }, hostErrors::add);
            FuseFuzzRequests requests = new FuseFuzzRequests(data);
            for (int n = 0; n < MAX_REQUESTS && requests.hasMore(); n++) {
                serveOne(server, requests, data);
                assertTrue(FuseBoundsTest.hostFds() - fdsBefore <= total(LIMITS) + FD_SLACK,
                        "the share holds " + (FuseBoundsTest.hostFds() - fdsBefore) + " descriptors, more than its limits");
                assertTrue(dax.mappings() <= dax.maxMappings(), dax.mappings() + " DAX mappings, more than the window's bound");
                assertTrue(window.mappings() <= 1, "the DAX window is given to the guest once");
            }
            assertEquals(List.of(), hostErrors, "host failures while serving");
        } finally {
            dax.close();
            fs.close();
        }
        assertEquals(0, window.mappings(), "the DAX window outlived the session");
        long left = FuseBoundsTest.hostFds() - fdsBefore;
        assertTrue(left <= FD_SLACK, left + " descriptors left after the share closed");
        assertTrue(FuseBoundsTest.hostFds() - startFds <= 4 * FD_SLACK, "descriptors leak from input to input");
        run.checkNothingEscaped();
        run.delete();
    }

    private static void serveOne(FuseServer server, FuseFuzzRequests requests, FuzzedDataProvider data) {
        FuseFuzzRequests.Request r = requests.next();
        Chain c = Chain.lay(r.bytes(), data);
        driver.makeAvailable(descriptors[0]);
        DescriptorChain chain = queue.pop(ram.memory());
        var watchdog = r.opcode() == Fuse.SETLKW
                ? WATCHDOG.schedule(() -> server.waits().interrupt(r.unique()), LOCK_PATIENCE.toMillis(), TimeUnit.MILLISECONDS)
                : null;
        long classes = CLASSES.getTotalLoadedClassCount();
        long allocated = FuseBoundsTest.allocatedByThisThread();
        long started = System.nanoTime();
        int len = r.hiprio() ? server.handleHighPriority(chain.reader(ram.memory()), chain.writer(ram.memory()))
                : server.handle(chain.reader(ram.memory()), chain.writer(ram.memory()));
        long took = System.nanoTime() - started;
        allocated = FuseBoundsTest.allocatedByThisThread() - allocated;
        if (watchdog != null) {
            watchdog.cancel(false);
        }
        queue.addUsed(ram.memory(), chain.head(), len);
        String what = "opcode " + r.opcode() + (r.hiprio() ? " on hiprio" : "");
        // Loading (and, when fuzzing, instrumenting) a class allocates on the loading thread: not the request's doing.
        boolean loadedClasses = CLASSES.getTotalLoadedClassCount() != classes;
        assertTrue(allocated <= MAX_HEAP_PER_REQUEST || loadedClasses, what + " allocated " + allocated + " bytes");
        assertTrue(took <= MAX_TIME_PER_REQUEST.toNanos(), what + " took " + took / 1_000_000 + " ms");
        assertTrue(len >= 0 && len <= c.writable, what + ": used length " + len + " of " + c.writable);
        byte[] reply = new byte[Math.min(len, (int) Math.min(c.writable, 1 << 21))];
        if (c.inRam && reply.length > 0) {
            c.readReply(reply);
        }
        if (c.answerable()) {
            // FORGET, BATCH_FORGET and INTERRUPT get none when their header holds (a length beyond what
            // arrived is an error; bytes beyond the length are ignored).
            long headerLen = Integer.toUnsignedLong(c.headerLen(r.bytes()));
            boolean noReply = Fuse.isHighPriority(r.opcode()) && headerLen >= Fuse.IN_HEADER && headerLen <= r.bytes().length;
            if (!noReply || len != 0) {
                assertTrue(len >= Fuse.OUT_HEADER, what + " was not answered (used length " + len + ")");
                ByteBuffer h = ByteBuffer.wrap(reply).order(ByteOrder.LITTLE_ENDIAN);
                assertEquals(len, h.getInt(0), what + ": the reply's length is not the used length");
                int error = h.getInt(4);
                assertTrue(error <= 0 && error > -4096, what + ": error " + error);
                assertTrue(error == 0 || len == Fuse.OUT_HEADER, what + ": an error reply with a body");
                assertEquals(r.unique(), h.getLong(8), what + ": the reply's unique");
                if (r.hiprio() && !Fuse.isHighPriority(r.opcode())) {
                    assertEquals(-22, error, what + " must be refused (EINVAL), not served");
                }
                if (error == 0 && !r.hiprio()) {
                    requests.learn(r.opcode(), ByteBuffer.wrap(reply, 16, len - 16).slice().order(ByteOrder.LITTLE_ENDIAN));
                }
            }
        }
        if (len > 0 && new String(reply, StandardCharsets.ISO_8859_1).contains(SECRET)) {
            fail(what + ": a reply carries the secret from outside the share");
        }
    }

    /** The device with both queues and its own threads: chains in any order, then INTERRUPT, then close. */
    @FuzzTest
    void virtioFsDeviceAnswersEveryChainAndLetsGoOfEverything(FuzzedDataProvider data) throws Exception {
        setUpOnce();
        Run run = new Run(base.resolve("device-run"));
        long fdsBefore = FuseBoundsTest.hostFds();
        FsDeviceHarness h = new FsDeviceHarness(run.share, LIMITS, deviceRam, deviceLoop);
        boolean closed = false;
        try {
            FuseFuzzRequests requests = new FuseFuzzRequests(data);
            List<FsDeviceHarness.Outgoing> outgoing = new ArrayList<>();
            for (int n = 0; n < 16 && requests.hasMore(); n++) {
                FuseFuzzRequests.Request r = requests.next();
                int queue = r.hiprio() ? VirtioFs.HIPRIO_QUEUE : VirtioFs.REQUEST_QUEUE;
                int room = data.pickValue(new int[] {0, 8, 16, 4096, 65536});
                outgoing.add(new FsDeviceHarness.Outgoing(queue, r.unique(), r.bytes(), room));
            }
            // Each made available and notified in turn, in one turn of the event loop; then every chain
            // must come back within 200 ms, or it is a lock wait, presumably: the guest interrupts it.
            List<FsDeviceHarness.Sent> sent = h.sendAll(outgoing);
            List<FsDeviceHarness.Sent> waiting = h.awaitAll(sent, Duration.ofMillis(200));
            for (FsDeviceHarness.Sent s : waiting) {
                h.send(VirtioFs.HIPRIO_QUEUE, Fuse.INTERRUPT, 0, FuseClient.le(8).putLong(s.unique()).array(), 0);
            }
            for (FsDeviceHarness.Sent s : waiting) {
                if (h.await(s, MAX_TIME_PER_REQUEST) == null) {
                    fail("a request on queue " + s.queue() + " was not answered, even after its INTERRUPT");
                }
            }
            assertEquals(List.of(), h.resetReasons, "the device asked for a reset");
            // A chain comes back just before its request finishes: give the last ones a moment.
            long end = System.nanoTime() + MAX_TIME_PER_REQUEST.toNanos();
            while (h.device.requestsInFlight() != 0 && System.nanoTime() - end < 0) {
                Thread.sleep(1);
            }
            assertEquals(0, h.device.requestsInFlight(), "requests still in flight after every chain came back");
            h.close();
            closed = true;
        } finally {
            if (!closed) {
                h.close();
            }
        }
        long left = FuseBoundsTest.hostFds() - fdsBefore;
        assertTrue(left <= FD_SLACK, left + " descriptors left after the device closed");
        run.checkNothingEscaped();
        run.delete();
    }

    static long total(FsLimits l) {
        return (long) l.maxInodes() + l.maxOpenFiles() + l.maxLockOwners();
    }

    /**
     * One descriptor chain laid out from the fuzz data: the request split over up to three readable
     * descriptors (some empty), then up to three writable ones of tiny to 4 GiB lengths; now and then a
     * buffer outside guest RAM.
     */
    private record Chain(long writable, boolean inRam, boolean headerInRam, long replyAddress, long[] replyLengths) {
        static final int[] LENGTHS = {0, 1, 8, 15, 16, 17, 24, 100, 4096, 65536, 1 << 20, (1 << 20) + 16, 4 << 20, -1};

        static Chain lay(byte[] request, FuzzedDataProvider data) {
            GuestMemory mem = ram.memory();
            mem.write(REQUEST_AREA, request);
            int pieces = data.consumeInt(1, 3);
            int writables = data.consumeInt(0, 3);
            int[] cuts = new int[pieces + 1];
            cuts[pieces] = request.length;
            for (int i = 1; i < pieces; i++) {
                cuts[i] = data.consumeInt(cuts[i - 1], request.length);
            }
            boolean inRam = true;
            boolean headerInRam = true;
            int d = 0;
            for (int i = 0; i < pieces; i++, d++) {
                long address = REQUEST_AREA + cuts[i];
                if (data.consumeInt(0, 31) == 0) {
                    address = data.pickValue(new long[] {RAM - 8, RAM, 1L << 40, -4096});
                    inRam = false;
                    headerInRam &= cuts[i] >= Fuse.IN_HEADER;
                }
                int flags = i + 1 < pieces + writables ? MockDriverQueue.DESC_F_NEXT : 0;
                driver.writeDescriptor(descriptors[d], address, cuts[i + 1] - cuts[i], flags, descriptors[d + 1]);
            }
            long at = REPLY_AREA;
            long total = 0;
            long[] lengths = new long[writables];
            for (int i = 0; i < writables; i++, d++) {
                int length = data.pickValue(LENGTHS);
                lengths[i] = Integer.toUnsignedLong(length);
                long address = at;
                if (data.consumeInt(0, 31) == 0) {
                    address = data.pickValue(new long[] {RAM - 8, RAM, 1L << 40});
                }
                inRam &= address + lengths[i] <= REPLY_AREA + REPLY_AREA_SIZE && address >= REPLY_AREA && address == at;
                int flags = MockDriverQueue.DESC_F_WRITE | (i + 1 < writables ? MockDriverQueue.DESC_F_NEXT : 0);
                driver.writeDescriptor(descriptors[d], address, length, flags, descriptors[d + 1]);
                at += lengths[i];
                total += lengths[i];
            }
            return new Chain(total, inRam, headerInRam, REPLY_AREA, lengths);
        }

        /** Whether the server can read the header and must be able to write a reply. */
        boolean answerable() {
            return inRam && writable >= Fuse.OUT_HEADER;
        }

        /** The header's length field. */
        int headerLen(byte[] request) {
            return request.length < 4 ? -1 : ByteBuffer.wrap(request).order(ByteOrder.LITTLE_ENDIAN).getInt(0);
        }

        void readReply(byte[] into) {
            ram.memory().read(replyAddress, into, 0, into.length);
        }
    }

    /** A fresh share with planted symlinks, beside a directory it must never reach. */
    private static final class Run {
        final Path dir;
        final Path share;
        final Path outside;
        final Path secret;

        Run(Path dir) throws IOException {
            if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
                FuzzScratch.deleteTree(dir); // a previous input failed half-way (whatever modes the guest left)
            }
            this.dir = Files.createDirectory(dir);
            this.share = Files.createDirectory(dir.resolve("share"));
            this.outside = Files.createDirectory(dir.resolve("outside"));
            this.secret = Files.writeString(outside.resolve("secret.txt"), SECRET);
            Files.writeString(share.resolve("file"), "inside the share");
            Files.createDirectory(share.resolve("dir"));
            Files.createSymbolicLink(share.resolve("abs"), secret);
            Files.createSymbolicLink(share.resolve("rel"), Path.of("../outside/secret.txt"));
            Files.createSymbolicLink(share.resolve("dirlink"), Path.of("../outside"));
        }

        void checkNothingEscaped() throws IOException {
            assertEquals(Set.of("share", "outside"), names(dir), "beside the share");
            assertEquals(Set.of("secret.txt"), names(outside), "in the directory beside the share");
            assertEquals(SECRET, Files.readString(secret), "the secret outside the share");
            assertEquals(1, Files.getAttribute(secret, "unix:nlink"), "links to the secret");
            assertEquals("rwxr-xr-x", PosixFilePermissions.toString(Files.getPosixFilePermissions(outside)));
        }

        private static Set<String> names(Path d) throws IOException {
            try (Stream<Path> s = Files.list(d)) {
                return s.map(p -> p.getFileName().toString()).collect(Collectors.toSet());
            }
        }

        void delete() throws IOException {
            FuzzScratch.deleteTree(dir);
        }
    }
}
