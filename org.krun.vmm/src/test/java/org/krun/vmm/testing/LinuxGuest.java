package org.krun.vmm.testing;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeoutException;

import org.junit.jupiter.api.Assumptions;
import org.krun.api.ConsoleSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.device.console.internal.ConsoleFactory;
import org.krun.hv.kvm.internal.KvmHypervisor;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.krun.vmm.internal.KrunService;

/**
 * Boots krun's Linux kernel and default rootfs for guest tests, without a framework: the real core, the
 * KVM backend, the console and whatever device factories the test adds, wired as DS would wire them.
 * Boots cost tens of seconds on kvm-pvm hosts: put many checks into one guest command.
 *
 * <p>Kernel and rootfs come from the system properties {@code krun.kernel} and {@code krun.rootfs} (the
 * build passes the ones {@code run-tests} built), else from the cache in the home directory.
 */
public final class LinuxGuest {
    /** A boot plus a short command; generous for a loaded kvm-pvm host. */
    public static final Duration DEFAULT_TIMEOUT = Duration.ofSeconds(300);

    private LinuxGuest() {
    }

    /** What one guest run produced. */
    public record Result(VmExit exit, byte[] stdout, byte[] stderr) {
        public String out() {
            return new String(stdout, StandardCharsets.UTF_8);
        }

        public String err() {
            return new String(stderr, StandardCharsets.UTF_8);
        }

        public int status() {
            return exit.status();
        }

        @Override
        public String toString() {
            return exit + "\n--- stdout\n" + out() + "--- stderr\n" + err();
        }
    }

    /** Skips the calling test, loudly, where there is no usable /dev/kvm; fails where the kernel is missing. */
    public static void assumeKvm() {
        Path kvm = Path.of("/dev/kvm");
        if (!Files.isReadable(kvm) || !Files.isWritable(kvm)) {
            String message = "Linux guest tests were SKIPPED because /dev/kvm is missing or not accessible";
            System.err.println("*** " + message + " ***");
            Assumptions.abort(message);
        }
        if (!Files.isRegularFile(kernel())) {
            throw new IllegalStateException("guest kernel " + kernel() + " is missing: build it with guest/kernel/build.sh "
                    + "(./run-tests does)");
        }
    }

    public static Path kernel() {
        String p = System.getProperty("krun.kernel");
        return p != null && !p.isEmpty() && !p.startsWith("${") ? Path.of(p)
                : Path.of(System.getProperty("user.home"), ".cache/krun/kernel/current/vmlinux");
    }

    public static Path rootfs() {
        String p = System.getProperty("krun.rootfs");
        return p != null && !p.isEmpty() && !p.startsWith("${") ? Path.of(p)
                : Path.of(System.getProperty("user.home"), ".cache/krun/rootfs/default");
    }

    /** A Krun service with the KVM backend, the console and {@code devices}. */
    public static KrunService krun(VirtioDeviceFactory... devices) {
        KrunService krun = new KrunService();
        krun.addHypervisor(KvmHypervisor.open());
        krun.addDeviceFactory(new ConsoleFactory());
        for (VirtioDeviceFactory f : devices) {
            krun.addDeviceFactory(f);
        }
        return krun;
    }

    /** A configuration with krun's kernel and default rootfs, 1 vCPU, 256 MiB. */
    public static VmConfig.Builder config(String... command) {
        return VmConfig.builder().kernel(kernel()).root(rootfs()).memoryMib(256).command(command);
    }

    /**
     * Runs the VM to completion with its console captured (pipes mode, optional stdin bytes) and kills it
     * if it outlives {@code timeout}.
     */
    public static Result run(Krun krun, VmConfig.Builder config, byte[] stdin, Duration timeout) throws Exception {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        config.console(ConsoleSpec.pipes(out, err, stdin != null));
        try (VirtualMachine vm = krun.create(config.build())) {
            vm.start();
            if (stdin != null) {
                Thread.ofPlatform().daemon(true).start(() -> {
                    try (var in = vm.consoleInput()) {
                        in.write(stdin);
                    } catch (java.io.IOException e) {
                        // the VM stopped before reading everything
                    }
                });
            }
            VmExit exit;
            try {
                exit = vm.waitFor(timeout);
            } catch (TimeoutException e) {
                vm.kill();
                throw new AssertionError("guest did not finish within " + timeout + "\n--- stdout\n"
                        + out.toString(StandardCharsets.UTF_8) + "--- stderr\n" + err.toString(StandardCharsets.UTF_8));
            }
            return new Result(exit, out.toByteArray(), err.toByteArray());
        }
    }

    public static Result run(Krun krun, VmConfig.Builder config) throws Exception {
        return run(krun, config, null, DEFAULT_TIMEOUT);
    }
}
