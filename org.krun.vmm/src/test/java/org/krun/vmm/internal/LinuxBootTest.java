package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.GuestMount;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.vmm.testing.LinuxGuest;

/**
 * One boot of krun's Linux kernel through the API (no framework), checking what the guest kernel saw of
 * the machine the core built: four CPUs from the MP table, memory from e820, the console on virtio-mmio,
 * the command line the core wrote, an extra mount made by the init, and a kernel log free of warnings;
 * then signals from {@link VirtualMachine#signal} reach the command through the console's signal port.
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
                "echo scratch=$(grep ' /mnt/scratch ' /proc/mounts | cut -d' ' -f3,4 | cut -d, -f1)",
                "echo ports=$(cat /sys/class/virtio-ports/*/name | sort | tr '\\n' ,)",
                // Signals from the host: USR1 is trapped and the command goes on, TERM ends it with 7.
                "trap 'echo got=USR1' USR1",
                "trap 'echo got=TERM; exit 7' TERM",
                "echo ready=1",
                "while :; do sleep 1; done");
        LinuxGuest.Result r = runWithSignals(krun, LinuxGuest.config("/bin/sh", "-c", script).cpus(4).memoryMib(384)
                .mount(new GuestMount("tmpfs", "/mnt/scratch", "tmpfs", "ro,size=1m")).signals(true));
        assertEquals(VmExit.Reason.COMMAND_EXITED, r.exit().reason(), r.toString());
        assertEquals(7, r.status(), "the command's TERM trap ended it: " + r);
        assertTrue(r.out().contains("got=USR1\n") && r.out().indexOf("got=USR1") < r.out().indexOf("got=TERM"), r.toString());
        assertEquals("krun-signals,krun-stderr,krun-stdin,krun-stdout,", r.out().lines().filter(l -> l.startsWith("ports="))
                .findFirst().orElse("ports=").substring("ports=".length()), "the console's ports: " + r);
        assertTrue(!r.err().contains("polling for signals"), "the init waits on the signal port: " + r);
        Map<String, String> seen = r.out().lines().filter(l -> l.contains("=") && !l.startsWith("problem: ") && !l.startsWith("got="))
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

    /**
     * Runs the VM, and once the command says ready=1 asks for SIGUSR1, waits for the command to report it,
     * then asks for SIGTERM.
     */
    private static LinuxGuest.Result runWithSignals(KrunService krun, VmConfig.Builder config) throws Exception {
        CountDownLatch ready = new CountDownLatch(1);
        CountDownLatch usr1 = new CountDownLatch(1);
        ByteArrayOutputStream out = new ByteArrayOutputStream() {
            @Override
            public synchronized void write(byte[] b, int off, int len) {
                super.write(b, off, len);
                String text = toString(StandardCharsets.UTF_8);
                if (text.contains("ready=1\n")) {
                    ready.countDown();
                }
                if (text.contains("got=USR1\n")) {
                    usr1.countDown();
                }
            }
        };
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        config.console(ConsoleSpec.pipes(out, err, false));
        try (VirtualMachine vm = krun.create(config.build())) {
            vm.start();
            try {
                if (!ready.await(LinuxGuest.DEFAULT_TIMEOUT.toSeconds(), TimeUnit.SECONDS)) {
                    throw new AssertionError("the command never said ready=1");
                }
                vm.signal(10);
                if (!usr1.await(60, TimeUnit.SECONDS)) {
                    throw new AssertionError("SIGUSR1 never reached the command");
                }
                vm.signal(15);
                return new LinuxGuest.Result(vm.waitFor(Duration.ofSeconds(60)), out.toByteArray(), err.toByteArray());
            } catch (AssertionError | java.util.concurrent.TimeoutException e) {
                vm.kill();
                throw new AssertionError(e.getMessage() + "\n--- stdout\n" + out.toString(StandardCharsets.UTF_8)
                        + "--- stderr\n" + err.toString(StandardCharsets.UTF_8) + "--- console tail\n"
                        + new String(vm.consoleTail(), StandardCharsets.UTF_8), e);
            }
        }
    }
}
