package org.krun.itests;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertFalse;
import static org.junit.Assert.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import javax.inject.Inject;

import org.junit.Assume;
import org.junit.Before;
import org.junit.Test;
import org.junit.runner.RunWith;
import org.krun.api.ConsoleSpec;
import org.krun.api.DiskSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.api.VsockPort;
import org.krun.api.VsockSpec;
import org.ops4j.pax.exam.Configuration;
import org.ops4j.pax.exam.Option;
import org.ops4j.pax.exam.junit.PaxExam;
import org.ops4j.pax.exam.spi.reactors.ExamReactorStrategy;
import org.ops4j.pax.exam.spi.reactors.PerClass;

/**
 * Malicious guests under KVM, in one framework with a well-behaved neighbour: hostile.elf
 * (src/test/guest) attacks every device it has (console, entropy, balloon, a raw disk, a virtio-fs share,
 * vsock with a port map) with descriptor loops, buffers and rings outside RAM, zero and 4 GiB lengths,
 * malformed indirect tables, runaway avail indexes, queues reconfigured while running, reset storms,
 * notification floods and configuration garbage. The VMM stays up, the hostile VMs keep running (their
 * devices refuse what they are sent), the neighbour (ticker.elf) keeps making progress, kill() ends each
 * hostile VM promptly, and nothing outside the disk image and the share changes.
 */
@RunWith(PaxExam.class)
@ExamReactorStrategy(PerClass.class)
public class HostileGuestIT {
    private static final int HOSTILE_VMS = 2;
    /**
     * Rounds each hostile guest completes before it is killed: hostile.c rotates through its 11 attacks,
     * one per device per round, so every device meets every attack.
     */
    private static final int ROUNDS = 11;
    /** The longest the attack phase may take (a kvm-pvm host under load manages a round in about 2 s). */
    private static final Duration ATTACK_LIMIT = Duration.ofMinutes(5);
    private static final Duration BASELINE = Duration.ofSeconds(5);
    private static final long DISK_BYTES = 4L << 20;
    /** "Promptly" for kill(): the standard is one second; a loaded CI host gets some slack here. */
    private static final long KILL_BOUND_MILLIS = 5_000;
    private static final Pattern ROUND = Pattern.compile("round (\\d+)\n");

    @Inject
    Krun krun;

    @Configuration
    public Option[] config() throws IOException {
        return ItSupport.options("org.krun.device.rng", "org.krun.device.balloon", "org.krun.device.blk",
                "org.krun.device.virtiofs", "org.krun.device.vsock");
    }

    @Before
    public void needsKvm() {
        Assume.assumeTrue("/dev/kvm is missing", ItSupport.kvmUsable());
    }

    /** Counts the lines written to it, keeping only the last few hundred bytes. */
    static final class LineCounter extends OutputStream {
        private final AtomicLong lines = new AtomicLong();
        private final StringBuilder tail = new StringBuilder();

        @Override
        public synchronized void write(int b) {
            if (b == '\n') {
                lines.incrementAndGet();
            }
            tail.append((char) (b & 0xff));
            if (tail.length() > 512) {
                tail.delete(0, tail.length() - 256);
            }
        }

        @Override
        public synchronized void write(byte[] b, int off, int len) {
            for (int i = 0; i < len; i++) {
                write(b[off + i]);
            }
        }

        long lines() {
            return lines.get();
        }

        synchronized String tail() {
            return tail.toString();
        }

        /** The last round the hostile guest reported on its serial line, 0 before the first. */
        long lastRound() {
            Matcher m = ROUND.matcher(tail());
            long last = 0;
            while (m.find()) {
                last = Long.parseLong(m.group(1));
            }
            return last;
        }
    }

    private record Hostile(VirtualMachine vm, LineCounter serial, Path disk, Path share, Path outside) {
    }

    private Hostile hostile(Path dir, int i) throws IOException {
        Path disk = dir.resolve("disk-" + i + ".img");
        try (RandomAccessFile f = new RandomAccessFile(disk.toFile(), "rw")) {
            f.setLength(DISK_BYTES);
        }
        Path share = Files.createDirectories(dir.resolve("share-" + i));
        Files.writeString(share.resolve("inside"), "the guest may do anything to this\n");
        Path outside = Files.writeString(dir.resolve("outside-" + i), "never to be touched\n");
        LineCounter serial = new LineCounter();
        VmConfig config = VmConfig.builder()
                .kernel(ItSupport.guest("hostile.elf"))
                .command("fast-guest")
                .memoryMib(64)
                .kernelArg("hostile.seed=" + (i + 1))
                .console(ConsoleSpec.terminal(OutputStream.nullOutputStream(), 80, 24)
                        .withStreams(OutputStream.nullOutputStream(), serial))
                .kernelLog(true)
                .device(DiskSpec.raw(disk))
                .device(new FsShareSpec("hostile", share, false))
                // a port map and no socket impersonation: the guest's garbage must not reach any network
                .device(VsockSpec.create().withPort(new VsockPort(5000, dir.resolve("nobody-" + i + ".sock"), false)))
                .timeout(Duration.ofMinutes(10))
                .build();
        return new Hostile(krun.create(config), serial, disk, share, outside);
    }

    @Test
    public void hostileGuestsNeitherStopTheirNeighbourNorOutliveTheirKill() throws Exception {
        Path dir = Files.createTempDirectory("krun-hostile");
        LineCounter ticks = new LineCounter();
        List<Hostile> hostiles = new ArrayList<>();
        try (VirtualMachine ticker = krun.create(VmConfig.builder().kernel(ItSupport.guest("ticker.elf"))
                .command("fast-guest").memoryMib(64).console(ConsoleSpec.terminal(ticks, 80, 24))
                .timeout(Duration.ofMinutes(10)).build())) {
            ticker.start();
            assertTrue("the neighbour ticks: " + ticks.tail(), ItSupport.await(() -> ticks.lines() > 0));
            long alone = ticksDuring(ticks, BASELINE);

            for (int i = 0; i < HOSTILE_VMS; i++) {
                hostiles.add(hostile(dir, i));
            }
            for (Hostile h : hostiles) {
                h.vm().start();
            }
            for (Hostile h : hostiles) {
                assertTrue("hostile guest finished a round of attacks on every device: " + h.serial().tail(),
                        ItSupport.await(() -> h.serial().lastRound() >= 1 || h.vm().exit().isDone()));
            }
            long roundsBefore = hostiles.stream().mapToLong(h -> h.serial().lastRound()).sum();
            long ticksBefore = ticks.lines();
            long attackStart = System.nanoTime();
            long deadline = attackStart + ATTACK_LIMIT.toNanos();
            while (hostiles.stream().anyMatch(h -> h.serial().lastRound() < ROUNDS && !h.vm().exit().isDone())
                    && System.nanoTime() < deadline) {
                Thread.sleep(100);
            }
            double attackSeconds = (System.nanoTime() - attackStart) / 1e9;
            long beside = ticks.lines() - ticksBefore;
            long rounds = hostiles.stream().mapToLong(h -> h.serial().lastRound()).sum() - roundsBefore;

            for (Hostile h : hostiles) {
                assertFalse("the hostile VM is still running, its devices refusing what it sends: "
                        + h.vm().exit().getNow(null) + "; serial: " + h.serial().tail(), h.vm().exit().isDone());
            }
            for (Hostile h : hostiles) {
                assertTrue("every device met every attack: " + h.serial().lastRound() + " of " + ROUNDS
                        + " rounds in " + ATTACK_LIMIT.toSeconds() + " s", h.serial().lastRound() >= ROUNDS);
            }
            assertTrue("the neighbour made progress beside the hostile guests (" + beside + " ticks in "
                    + attackSeconds + " s)", beside > 0);

            List<Long> killMillis = new ArrayList<>();
            for (Hostile h : hostiles) {
                long start = System.nanoTime();
                h.vm().kill();
                VmExit exit = h.vm().waitFor(Duration.ofMillis(KILL_BOUND_MILLIS + 5_000));
                long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                killMillis.add(millis);
                assertEquals(VmExit.Reason.KILLED, exit.reason());
                assertTrue("kill() ended the hostile VM in " + millis + " ms", millis <= KILL_BOUND_MILLIS);
                h.vm().close();
            }
            long after = ticks.lines();
            assertTrue("the neighbour still ticks after the kills",
                    ItSupport.await(() -> ticks.lines() > after + 10 || ticker.exit().isDone()) && !ticker.exit().isDone());

            for (Hostile h : hostiles) {
                assertEquals("the disk image kept its size", DISK_BYTES, Files.size(h.disk()));
                assertEquals("never to be touched\n", Files.readString(h.outside(), StandardCharsets.UTF_8));
            }
            try (Stream<Path> entries = Files.list(dir)) {
                List<String> names = entries.map(p -> p.getFileName().toString()).sorted().toList();
                assertEquals("nothing appeared beside the shares", List.of("disk-0.img", "disk-1.img", "outside-0",
                        "outside-1", "share-0", "share-1"), names);
            }
            System.out.printf("hostile guests: %d VMs, %d attack rounds in %.1f s; neighbour %.1f ticks/s alone, "
                    + "%.1f ticks/s beside them; kill() took %s ms%n", HOSTILE_VMS, rounds, attackSeconds,
                    alone / (double) BASELINE.toSeconds(), beside / attackSeconds, killMillis);
        } finally {
            hostiles.forEach(h -> h.vm().close());
            deleteTree(dir);
        }
    }

    private static long ticksDuring(LineCounter ticks, Duration d) throws InterruptedException {
        long start = ticks.lines();
        Thread.sleep(d.toMillis());
        return ticks.lines() - start;
    }

    private static void deleteTree(Path dir) throws IOException {
        try (Stream<Path> all = Files.walk(dir)) {
            for (Path p : all.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(p);
            }
        }
    }
}
