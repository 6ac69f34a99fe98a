package org.krun.device.balloon.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;
import org.krun.vmm.testing.RecordingFactory;

/**
 * One boot of krun's Linux guest with the balloon offered by default: the guest driver binds and turns on
 * free page reporting, and memory a guest process takes and frees leaves the host's resident set again.
 *
 * <p>The host measures the resident size of the guest RAM mapping (smaps of this JVM: the VM runs
 * in-process) before the guest allocates, while it holds the memory, and after it frees it, polling with
 * a bound: Linux reports free blocks of 128 KiB and up (the page-reporting order 5 the balloon sets on the
 * kernel command line) about two seconds after they become free. The size depends on the host: 1 GiB with hardware virtualisation; 64 MiB on kvm-pvm,
 * where the first touch of each guest page costs about 2 ms (measured here: 8 MiB in 3.7 s).
 */
class BalloonLinuxGuestTest {

    private static void log(String s) {
        System.out.println("[balloon guest test] " + s);
    }

    @Test
    void memoryTheGuestFreesLeavesTheHostsResidentSet() throws Exception {
        LinuxGuest.assumeKvm();
        HostKind host = HostKind.detect();
        int allocMib = host.fast() ? 1024 : 64;
        int memoryMib = host.fast() ? 2048 : 512;
        log("host: " + host + "; the guest allocates " + allocMib + " MiB of " + memoryMib + " MiB"
                + (host.fast() ? "" : " (1 GiB where hardware virtualisation exists)"));

        String script = String.join("\n",
                "for d in /sys/bus/virtio/devices/*; do read id < $d/device; read f < $d/features; echo device=$id features=$f; done",
                "read o < /sys/module/page_reporting/parameters/page_reporting_order; echo reporting_order=$o",
                "echo ready; read x",
                "memhog " + allocMib + " touch || echo memhog failed",
                "while read k v u; do [ $k = MemFree: ] && echo memfree_kib=$v; done < /proc/meminfo",
                "echo '--- dmesg'; dmesg; echo '--- end'");
        // Built from src/test/guest into the test classes by the module's build (exec-maven-plugin).
        Path memhog = Path.of(BalloonLinuxGuestTest.class.getResource("/guests/memhog").toURI());
        RecordingFactory<VirtioBalloon> factory = new RecordingFactory<>(new BalloonFactory(), VirtioBalloon.class);
        long baseline;
        long peak;
        long after;
        long holdingMs;
        try (TestRoot root = TestRoot.of(LinuxGuest.rootfs(), memhog);
             GuestSession guest = new GuestSession(LinuxGuest.krun(factory),
                     LinuxGuest.config("/bin/sh", "-c", script).root(root.path()).memoryMib(memoryMib))) {
            guest.await("^ready$", LinuxGuest.DEFAULT_TIMEOUT);
            baseline = GuestRamRss.residentKib(memoryMib);
            log("booted; guest RAM resident on the host: " + baseline / 1024 + " MiB (JVM VmRSS "
                    + GuestRamRss.processRssKib() / 1024 + " MiB)");

            guest.send("go");
            Matcher holding = guest.await("^memhog: holding \\d+ MiB \\(touch, (\\d+) ms\\)$", Duration.ofSeconds(
                    host.fast() ? 120 : 600));
            holdingMs = Long.parseLong(holding.group(1));
            peak = GuestRamRss.residentKib(memoryMib);
            log("guest holds " + allocMib + " MiB (touched in " + holdingMs + " ms): resident " + peak / 1024
                    + " MiB, +" + (peak - baseline) / 1024 + " MiB");
            assertTrue(peak - baseline >= allocMib * 1024L / 2,
                    "the guest's allocation shows in the host's resident set: " + baseline + " -> " + peak + " KiB");

            guest.send("free");
            guest.await("^memhog: released$", Duration.ofSeconds(120));
            long grown = peak - baseline;
            long freedAt = System.nanoTime();
            after = peak;
            long lastChange = System.nanoTime();
            // Bounded poll: until most of it is back and the size has been steady for 5 s, or 90 s.
            while (System.nanoTime() - freedAt < Duration.ofSeconds(90).toNanos()) {
                Thread.sleep(500);
                long now = GuestRamRss.residentKib(memoryMib);
                if (now != after) {
                    after = now;
                    lastChange = System.nanoTime();
                }
                boolean most = peak - after >= grown * 2 / 3;
                if (most && System.nanoTime() - lastChange > Duration.ofSeconds(5).toNanos()) {
                    break;
                }
            }
            log("guest freed it: resident " + after / 1024 + " MiB, " + (peak - after) / 1024 + " MiB of the "
                    + grown / 1024 + " MiB it grew released (" + (100 * (peak - after) / Math.max(1, grown)) + "%), within "
                    + (lastChange - freedAt) / 1_000_000 + " ms of the release");

            guest.send("exit");
            VmExit exit = guest.finish(Duration.ofSeconds(120));
            String out = guest.out();
            assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), exit + "\n" + out + guest.err());
            assertEquals(0, exit.status(), out);

            // What the guest kernel saw
            Map<String, String> devices = out.lines().filter(l -> l.startsWith("device="))
                    .collect(Collectors.toMap(l -> l.substring(7, l.indexOf(' ')), l -> l.substring(l.indexOf("features=") + 9)));
            assertTrue(devices.containsKey("0x0005"), "the balloon is on the bus by default: " + out);
            String features = devices.get("0x0005");
            assertEquals('1', features.charAt(5), "VIRTIO_BALLOON_F_PAGE_REPORTING negotiated: " + features);
            assertEquals('1', features.charAt(2), "VIRTIO_BALLOON_F_DEFLATE_ON_OOM negotiated: " + features);
            assertEquals('1', features.charAt(32), "VIRTIO_F_VERSION_1: " + features);
            String dmesg = section(out, "--- dmesg");
            assertTrue(dmesg.contains("Free page reporting enabled"), "the driver registered for page reporting:\n" + dmesg);
            List<String> problems = dmesg.lines()
                    .filter(l -> !l.contains("ommand line:")) // the command line itself says panic=-1
                    .filter(l -> l.matches("(?i).*(warning|bug:|oops|call trace|kernel panic).*")
                            || l.matches("(?i).*(virtio|balloon).*") && l.matches("(?i).*(fail|error).*"))
                    .toList();
            assertEquals(List.of(), problems, "kernel log:\n" + dmesg);
            log("guest: " + out.lines().filter(l -> l.startsWith("reporting_order=") || l.startsWith("memfree_kib="))
                    .collect(Collectors.joining(", ")));
        }

        // What the device did
        assertEquals(1, factory.created().size());
        VirtioBalloon balloon = factory.created().get(0);
        log("device: " + balloon.freePageReports() + " free page reports, " + balloon.reportedBytes() / (1 << 20)
                + " MiB reported, " + balloon.releasedBytes() / (1 << 20) + " MiB released, " + balloon.rejected()
                + " refused");
        assertTrue(balloon.freePageReports() > 0);
        assertEquals(0, balloon.rejected(), "Linux sends only well-formed reports");
        assertTrue(balloon.releasedBytes() >= (peak - after) * 1024, "released at least what left the resident set");

        // The point of it all
        long grown = peak - baseline;
        assertTrue(peak - after >= grown * 2 / 3, "most of the " + grown + " KiB the guest took and freed left the "
                + "host's resident set: " + baseline + " -> " + peak + " -> " + after + " KiB");
    }

    /** The lines after {@code marker} up to the next {@code --- } line. */
    private static String section(String out, String marker) {
        List<String> lines = new ArrayList<>();
        boolean in = false;
        for (String l : out.lines().toList()) {
            if (l.startsWith("--- ")) {
                in = l.equals(marker);
                continue;
            }
            if (in) {
                lines.add(l);
            }
        }
        return String.join("\n", lines);
    }
}
