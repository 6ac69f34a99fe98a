package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.hv.kvm.internal.KvmHypervisor;

/**
 * {@link VirtualMachine#consoleTail()} under a real guest: what the guest writes to its console is kept by
 * the core, also when the embedder discards the console, and is still there after the VM stopped. Needs
 * /dev/kvm.
 */
class ConsoleTailGuestTest {
    private static KvmHypervisor kvm;
    private static KrunService krun;

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

    @Test
    void tailHoldsGuestConsoleOutputAfterTheVmStoppedEvenWithADiscardedConsole() throws Exception {
        ByteArrayOutputStream serial = new ByteArrayOutputStream();
        VmConfig config = FastGuests.config("virtio.elf", 64, new ByteArrayOutputStream(), serial).toBuilder()
                .console(ConsoleSpec.terminal(OutputStream.nullOutputStream(), 80, 24))
                .kernelLog(false)
                .build();
        VirtualMachine vm = krun.create(config);
        vm.start();
        assertTrue(FastGuests.awaitWhileRunning(vm,
                () -> new String(vm.consoleTail(), US_ASCII).equals("hello from the guest\n")),
                () -> "tail while running: " + new String(vm.consoleTail(), US_ASCII));
        OutputStream input = vm.consoleInput();
        input.write("tail\n".getBytes(US_ASCII));
        input.flush();

        VmExit exit = FastGuests.await(vm, serial);

        assertEquals(VmExit.commandExited(0x7f), exit);
        assertEquals("hello from the guest\ntail\n", new String(vm.consoleTail(), US_ASCII));
    }
}
