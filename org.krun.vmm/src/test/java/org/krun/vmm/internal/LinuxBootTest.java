package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.krun.api.GuestMount;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One boot of krun's Linux kernel through the API (no framework), checking what the guest kernel saw of
 * the machine the core built: four CPUs from the MP table, memory from e820, the console on virtio-mmio,
 * the command line the core wrote, an extra mount made by the init, and a kernel log free of warnings.
 */
class LinuxBootTest {

    @Test
    void guestKernelSeesTheMachineTheCoreBuilt() throws Exception {
        LinuxGuest.assumeKvm();
        KrunService krun = LinuxGuest.krun();
        String script = String.join("; ",
                "echo cpus=$(nproc)",
                "echo online=$(cat /sys/devices/system/cpu/online)",
                "echo memkb=$(awk '/MemTotal/ {print $2}' /proc/meminfo)",
                "echo virtio=$(cat /sys/bus/virtio/devices/*/device | tr '\\n' ,)",
                "echo hvc0=$(test -c /dev/hvc0 && echo yes || echo no)",
                "echo cmdline=$(cat /proc/cmdline)",
                // The command line itself says panic=-1: leave those lines out.
                "echo problems=$(dmesg | grep -v 'ommand line' | grep -ciE 'warning|bug:|oops|call trace|kernel panic')",
                "dmesg | grep -v 'ommand line' | grep -iE 'warning|bug:|oops|call trace|kernel panic' | sed 's/^/problem: /'",
                "echo clocksource=$(cat /sys/devices/system/clocksource/clocksource0/current_clocksource)",
                "echo hostname=$(hostname)",
                "echo scratch=$(grep ' /mnt/scratch ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1)");
        LinuxGuest.Result r = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", script).cpus(4).memoryMib(384)
                .mount(new GuestMount("tmpfs", "/mnt/scratch", "tmpfs", "ro,size=1m")));
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        assertEquals(0, r.status(), r.toString());
        Map<String, String> seen = r.out().lines().filter(l -> l.contains("=") && !l.startsWith("problem: "))
                .collect(Collectors.toMap(l -> l.substring(0, l.indexOf('=')), l -> l.substring(l.indexOf('=') + 1)));
        assertEquals("4", seen.get("cpus"), r.toString());
        assertEquals("0-3", seen.get("online"), r.toString());
        long memkb = Long.parseLong(seen.get("memkb"));
        assertTrue(memkb > 330 * 1024 && memkb <= 384 * 1024, "about 384 MiB: " + memkb);
        assertEquals("0x0003,", seen.get("virtio"), "one virtio device, the console: " + r);
        assertEquals("yes", seen.get("hvc0"), r.toString());
        for (String arg : List.of("console=hvc0", "reboot=k", "rdinit=/krun/init", "virtio_mmio.device=4K@0xd0000000:5")) {
            assertTrue(seen.get("cmdline").contains(arg), arg + " in " + seen.get("cmdline"));
        }
        assertEquals("0", seen.get("problems"), "kernel log has warnings: " + r);
        assertEquals("krun", seen.get("hostname"), r.toString());
        assertEquals("tmpfs ro", seen.get("scratch"), "the init mounted the extra filesystem read-only: " + r);
    }
}
