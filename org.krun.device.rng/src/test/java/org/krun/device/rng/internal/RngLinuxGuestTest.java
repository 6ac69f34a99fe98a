package org.krun.device.rng.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;
import org.krun.vmm.testing.RecordingFactory;

/**
 * One boot of krun's Linux guest with the rng factory present and the VM asking for nothing: the entropy
 * device is there by default, the guest's hw_random core picks it, {@code /dev/hwrng} gives random bytes,
 * and the kernel's random pool is seeded from it before the command runs. The guest's CPU has RDRAND here,
 * which Linux would otherwise trust to seed the pool: {@code random.trust_cpu=off} leaves the virtio-rng as
 * the only fast source, so a full pool at the start of the command is the device's doing.
 */
class RngLinuxGuestTest {

    @Test
    void guestGetsEntropyFromTheHostByDefault() throws Exception {
        LinuxGuest.assumeKvm();
        // Shell built-ins where possible: each process costs seconds on kvm-pvm hosts. Not for sysctl files:
        // the shell's read takes one byte at a time, and /proc/sys answers EOF at any offset but 0.
        String script = String.join("\n",
                "echo entropy_avail=$(cat /proc/sys/kernel/random/entropy_avail)",
                "for d in /sys/bus/virtio/devices/*; do read id < $d/device; echo device=$id; done",
                "read c < /sys/class/misc/hw_random/rng_current; echo rng_current=$c",
                "read a < /sys/class/misc/hw_random/rng_available; echo rng_available=$a",
                "echo '--- hwrng'; od -An -v -tx1 -N 1024 /dev/hwrng",
                "echo '--- hwrng again'; od -An -v -tx1 -N 32 /dev/hwrng",
                "echo '--- cmdline'; read l < /proc/cmdline; echo $l",
                "echo '--- dmesg'; dmesg; echo '--- end'");
        RecordingFactory<VirtioRng> factory = new RecordingFactory<>(new RngFactory(), VirtioRng.class);
        LinuxGuest.Result r = LinuxGuest.run(LinuxGuest.krun(factory),
                LinuxGuest.config("/bin/sh", "-c", script).kernelArg("random.trust_cpu=off"));
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        assertEquals(0, r.status(), r.toString());
        String out = r.out();

        assertEquals(List.of("0x0003", "0x0004"), values(out, "device="),
                "the console and, by default, the entropy device: " + r);
        assertEquals("virtio_rng.0", values(out, "rng_current=").get(0), "hw_random uses the virtio-rng: " + r);
        assertTrue(values(out, "rng_available=").get(0).contains("virtio_rng.0"), r.toString());

        byte[] bytes = HexFormat.of().parseHex(section(out, "--- hwrng").replaceAll("\\s", ""));
        byte[] again = HexFormat.of().parseHex(section(out, "--- hwrng again").replaceAll("\\s", ""));
        assertEquals(1024, bytes.length, "dd of /dev/hwrng: " + r);
        assertEquals(32, again.length);
        int[] counts = new int[256];
        for (byte b : bytes) {
            counts[b & 0xff]++;
        }
        long distinct = java.util.Arrays.stream(counts).filter(c -> c > 0).count();
        // 1024 uniform bytes show about 251 of the 256 values; fewer than 200 would be far outside chance.
        assertTrue(distinct >= 200, "1024 bytes from /dev/hwrng take only " + distinct + " distinct values");
        assertNotEquals(HexFormat.of().formatHex(java.util.Arrays.copyOf(bytes, 32)), HexFormat.of().formatHex(again),
                "two reads differ");

        assertTrue(section(out, "--- cmdline").contains("random.trust_cpu=off"), r.toString());
        assertEquals("256", values(out, "entropy_avail=").get(0),
                "the pool is full when the command starts, without trusting RDRAND: " + r);
        String dmesg = section(out, "--- dmesg");
        assertTrue(dmesg.contains("crng init done"), "the kernel's crng was seeded:\n" + dmesg);
        List<String> problems = dmesg.lines()
                .filter(l -> !l.contains("ommand line:")) // the command line itself says panic=-1
                .filter(l -> l.matches("(?i).*(warning|bug:|oops|call trace|kernel panic).*")
                        || l.matches("(?i).*(virtio|rng|random).*") && l.matches("(?i).*(fail|error).*"))
                .toList();
        assertEquals(List.of(), problems, "kernel log:\n" + dmesg);

        assertEquals(1, factory.created().size());
        VirtioRng rng = factory.created().get(0);
        System.out.println("[rng guest test] device served " + rng.bytesServed() + " bytes in " + rng.requestsServed()
                + " requests; " + distinct + " distinct byte values in 1024");
        assertTrue(rng.bytesServed() >= 1024 + 32 + 32, "the guest's reads, plus the kernel's seeding: "
                + rng.bytesServed());
    }

    private static List<String> values(String out, String prefix) {
        return out.lines().filter(l -> l.startsWith(prefix)).map(l -> l.substring(prefix.length())).toList();
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
