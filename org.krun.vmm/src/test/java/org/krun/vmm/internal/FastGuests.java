package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeoutException;
import java.util.function.BooleanSupplier;

import org.junit.jupiter.api.Assumptions;
import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.device.console.internal.ConsoleFactory;
import org.krun.hv.kvm.internal.KvmHypervisor;

/**
 * Runs the fast guest programs (src/test/guest, built into target/test-classes/guests by make) under the
 * real KVM backend through the real core: each is an ELF that krun loads as its "kernel".
 */
final class FastGuests {
    /** A hung guest fails its test after this long instead of blocking the build. */
    static final Duration VM_TIMEOUT = Duration.ofSeconds(60);
    static final Path KVM_DEVICE = Path.of("/dev/kvm");

    private FastGuests() {
    }

    /** Skips the calling test class, loudly, where there is no usable /dev/kvm. */
    static void assumeKvm() {
        String problem = null;
        if (!Files.exists(KVM_DEVICE)) {
            problem = "/dev/kvm is absent";
        } else if (!Files.isReadable(KVM_DEVICE) || !Files.isWritable(KVM_DEVICE)) {
            problem = "/dev/kvm is not readable and writable by this user";
        }
        if (problem != null) {
            String message = "KVM guest tests were SKIPPED because " + problem
                    + ": the fast guest programs did not run and nothing was verified against a real hypervisor";
            System.err.println("*** " + message + " ***");
            Assumptions.abort(message);
        }
    }

    /** A Krun service with the KVM backend and the console, as a framework would wire it. */
    static KrunService krun(KvmHypervisor kvm) {
        KrunService krun = new KrunService();
        krun.addHypervisor(kvm);
        krun.addDeviceFactory(new ConsoleFactory());
        return krun;
    }

    static Path elf(String name) {
        URL url = FastGuests.class.getResource("/guests/" + name);
        if (url == null) {
            throw new IllegalStateException("guest program " + name + " was not built (src/test/guest, make)");
        }
        try {
            return Path.of(url.toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * A VM for guest program {@code name}: a terminal console to {@code out}, and the serial port (the
     * guest's debug line, {@code kernelLog}) to {@code serial}.
     */
    static VmConfig config(String name, int memoryMib, ByteArrayOutputStream out, ByteArrayOutputStream serial,
            org.krun.api.DeviceSpec... devices) {
        VmConfig.Builder b = VmConfig.builder();
        for (org.krun.api.DeviceSpec d : devices) {
            b.device(d);
        }
        return b
                .kernel(elf(name))
                .command("fast-guest") // the core's init is packed but never runs: there is no Linux
                .memoryMib(memoryMib)
                .console(ConsoleSpec.terminal(out, 80, 24).withStreams(out, serial))
                .kernelLog(true)
                .build();
    }

    /** Waits for vm to stop; after {@link #VM_TIMEOUT} kills it and fails with what the guest printed. */
    static VmExit await(VirtualMachine vm, ByteArrayOutputStream serial) throws InterruptedException {
        try {
            return vm.waitFor(VM_TIMEOUT);
        } catch (TimeoutException e) {
            vm.close();
            return fail(vm.config().kernel().getFileName() + " did not stop within " + VM_TIMEOUT
                    + "; killed. Guest serial output: " + serial);
        }
    }

    /** Polls until condition holds or vm stops or {@link #VM_TIMEOUT} passes; returns whether it held. */
    static boolean awaitWhileRunning(VirtualMachine vm, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + VM_TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (vm.exit().isDone() || System.nanoTime() - deadline > 0) {
                return condition.getAsBoolean();
            }
            Thread.sleep(5);
        }
        return true;
    }

    /** "0x3b, missing: X, Y" for a status whose bit i means names[i] worked. */
    static String describe(int status, String... names) {
        List<String> missing = new ArrayList<>();
        for (int i = 0; i < names.length; i++) {
            if ((status & (1 << i)) == 0) {
                missing.add(names[i]);
            }
        }
        return "0x" + Integer.toHexString(status) + (missing.isEmpty() ? "" : ", missing: " + String.join(", ", missing));
    }
}
