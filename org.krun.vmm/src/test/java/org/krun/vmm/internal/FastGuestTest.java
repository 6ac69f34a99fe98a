package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.hv.kvm.internal.KvmHypervisor;

/**
 * Small freestanding guest programs of ours (src/test/guest), no Linux, run under the real KVM backend
 * through the real core: port I/O and MMIO exits, the virtio-mmio transport and console driven from the
 * guest side, and interrupts through the in-kernel irqchip (irqfd -> IOAPIC -> local APIC -> IDT). Each
 * program reports one bit per check that passed on the exit-status port. Needs /dev/kvm.
 */
class FastGuestTest {
    private static final int MEMORY_MIB = 64;

    private static KvmHypervisor kvm;
    private static KrunService krun;

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream serial = new ByteArrayOutputStream();

    @BeforeAll
    static void openKvm() {
        FastGuests.assumeKvm();
        kvm = KvmHypervisor.open();
        krun = FastGuests.krun(kvm);
    }

    @AfterAll
    static void closeKvm() {
        if (kvm != null) {
            kvm.close();
        }
    }

    private VmExit run(String program) throws InterruptedException {
        VirtualMachine vm = krun.create(FastGuests.config(program, MEMORY_MIB, out, serial));
        vm.start();
        return FastGuests.await(vm, serial);
    }

    private void assertStatus(VmExit exit, int expected, String... checks) {
        assertEquals(VmExit.Reason.COMMAND_EXITED, exit.reason(), () -> exit + "; guest serial output: " + serial);
        assertEquals(FastGuests.describe(expected, checks), FastGuests.describe(exit.status(), checks),
                () -> "guest serial output: " + serial);
    }

    @Test
    void guestPortIoReachesCmosSerialAndExitStatusDevices() throws Exception {
        VmExit exit = run("portio.elf");

        assertStatus(exit, 0x3f, "CMOS update-in-progress clear", "CMOS BCD 24-hour mode", "CMOS time in BCD",
                "CMOS valid", "serial transmitter idle", "unclaimed port reads all ones");
    }

    @Test
    void guestSeesVirtioMmioRegistersAndAllOnesWhereNoDeviceIs() throws Exception {
        VmExit exit = run("mmio.elf");

        assertStatus(exit, 0x7f, "magic", "version 2", "device id console", "vendor id KRUN",
                "unclaimed MMIO reads all ones", "config space 80x24", "VERSION_1 offered");
    }

    @Test
    void virtioQueueDrivenFromGuestDeliversOutputInputAndInterrupts() throws Exception {
        VirtualMachine vm = krun.create(FastGuests.config("virtio.elf", MEMORY_MIB, out, serial));
        vm.start();
        String hello = "hello from the guest\n";
        boolean greeted = FastGuests.awaitWhileRunning(vm, () -> out.toString(US_ASCII).contains(hello));
        // Host input sent only once the guest waits in `hlt` for its receive buffer to be used.
        OutputStream input = vm.consoleInput();
        input.write("ping\n".getBytes(US_ASCII));
        input.flush();
        VmExit exit = FastGuests.await(vm, serial);

        assertTrue(greeted, () -> "no greeting on the transmit queue; " + exit + "; serial: " + serial);
        assertStatus(exit, 0x7f, "device found", "FEATURES_OK only with VERSION_1", "DRIVER_OK",
                "transmit buffer used", "transmit interrupt", "input echoed", "receive interrupt");
        assertEquals(hello + "ping\n", out.toString(US_ASCII));
    }
}
