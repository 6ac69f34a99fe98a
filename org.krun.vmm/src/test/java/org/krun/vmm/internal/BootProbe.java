package org.krun.vmm.internal;

import java.nio.file.Path;
import java.time.Duration;
import java.util.Arrays;

import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.device.console.internal.ConsoleFactory;
import org.krun.hv.kvm.internal.KvmHypervisor;

/** Manual probe: boots the default kernel and rootfs with the kernel log on, runs args as the command. */
public final class BootProbe {
    public static void main(String[] args) throws Exception {
        KrunService krun = new KrunService();
        krun.addHypervisor(KvmHypervisor.open());
        krun.addDeviceFactory(new ConsoleFactory());
        String home = System.getProperty("user.home");
        VmConfig config = VmConfig.builder()
                .kernel(Path.of(System.getProperty("kernel", home + "/.cache/krun/kernel/current/vmlinux")))
                .root(Path.of(home + "/.cache/krun/rootfs/default"))
                .cpus(Integer.getInteger("cpus", 1)).memoryMib(Integer.getInteger("mem", 256))
                .command(Arrays.asList(args))
                .console(ConsoleSpec.pipes(System.out, System.err, Boolean.getBoolean("stdin")))
                .kernelLog(Boolean.getBoolean("klog"))
                .timeout(Duration.ofSeconds(Integer.getInteger("timeout", 300)))
                .build();
        long t0 = System.nanoTime();
        VirtualMachine vm = krun.create(config);
        vm.start();
        if (Boolean.getBoolean("stdin")) {
            Thread.ofPlatform().daemon(true).start(() -> {
                try (var in = vm.consoleInput()) {
                    System.in.transferTo(in);
                } catch (java.io.IOException e) {
                    e.printStackTrace();
                }
            });
        }
        VmExit exit = vm.waitFor();
        System.err.printf("exit: %s after %.1f s%n", exit, (System.nanoTime() - t0) / 1e9);
        System.exit(exit.status());
    }
}
