package org.krun.itests;

import static org.ops4j.pax.exam.CoreOptions.bundle;
import static org.ops4j.pax.exam.CoreOptions.junitBundles;
import static org.ops4j.pax.exam.CoreOptions.systemPackages;
import static org.ops4j.pax.exam.CoreOptions.systemProperty;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.BooleanSupplier;
import java.util.stream.Stream;

import org.krun.api.ConsoleSpec;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.ops4j.pax.exam.Option;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;

/** What the integration tests share: the bundles to provision, KVM detection, the probe guest, bounded waits. */
final class ItSupport {
    /** Bounds every wait on a fast guest or a service: generous for a loaded 2-core host. */
    static final Duration WAIT = Duration.ofSeconds(60);

    private ItSupport() {
    }

    /**
     * The core bundles (target/bundles, as {@link KrunBundlesIT} runs), the named extra bundles
     * (target/more-bundles, by artifact id), JUnit, and the logging and properties every test needs.
     */
    static Option[] options(String... moreBundles) throws IOException {
        List<Option> opts = new ArrayList<>();
        try (Stream<Path> jars = Files.list(Path.of(System.getProperty("krun.bundles")))) {
            for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).sorted().toList()) {
                opts.add(bundle(jar.toUri().toString()));
            }
        }
        Path more = Path.of(System.getProperty("krun.more.bundles"));
        for (String artifactId : moreBundles) {
            try (Stream<Path> jars = Files.list(more)) {
                Path jar = jars.filter(p -> p.getFileName().toString().startsWith(artifactId + "-")).findFirst()
                        .orElseThrow(() -> new IllegalStateException(artifactId + " is not in " + more));
                opts.add(bundle(jar.toUri().toString()));
            }
        }
        opts.add(junitBundles());
        opts.add(systemPackages("org.slf4j;version=2.0.17", "org.slf4j.event;version=2.0.17",
                "org.slf4j.spi;version=2.0.17"));
        opts.add(systemProperty("krun.guests").value(System.getProperty("krun.guests")));
        // Pax Exam's own logging: warnings only (it logs each framework restart at INFO on stdout).
        opts.add(systemProperty("org.ops4j.pax.logging.DefaultServiceLog.level").value("WARN"));
        return opts.toArray(Option[]::new);
    }

    static boolean kvmUsable() {
        Path kvm = Path.of("/dev/kvm");
        boolean ok = Files.isReadable(kvm) && Files.isWritable(kvm);
        if (!ok) {
            System.err.println("*** /dev/kvm is missing or not accessible: VM tests in OSGi are SKIPPED ***");
        }
        return ok;
    }

    static Path guest(String name) {
        return Path.of(System.getProperty("krun.guests"), name);
    }

    /**
     * A VM running probe.elf (itests/src/test/guest): it prints "devices: ID ..." for the virtio-mmio slots it
     * finds and exits with their number; {@code kernelArgs} such as {@code probe.wait} change that.
     */
    static VmConfig.Builder probe(ByteArrayOutputStream out, String... kernelArgs) {
        VmConfig.Builder b = VmConfig.builder()
                .kernel(guest("probe.elf"))
                .command("fast-guest") // the core's init is packed but never runs: there is no Linux
                .memoryMib(64)
                .console(ConsoleSpec.terminal(out, 80, 24))
                .timeout(WAIT);
        for (String a : kernelArgs) {
            b.kernelArg(a);
        }
        return b;
    }

    static String text(ByteArrayOutputStream out) {
        return out.toString(StandardCharsets.UTF_8);
    }

    /** Polls until {@code condition} holds, at most {@link #WAIT}; returns whether it held. */
    static boolean await(BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + WAIT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                return false;
            }
            Thread.sleep(10);
        }
        return true;
    }

    /** Polls until the VM's console output contains {@code text} or the VM stopped. */
    static boolean awaitOutput(VirtualMachine vm, ByteArrayOutputStream out, String text) throws InterruptedException {
        return await(() -> text(out).contains(text) || vm.exit().isDone()) && text(out).contains(text);
    }

    static Bundle installed(BundleContext context, String symbolicName) {
        return Stream.of(context.getBundles()).filter(b -> symbolicName.equals(b.getSymbolicName())).findFirst()
                .orElseThrow(() -> new IllegalStateException(symbolicName + " is not installed"));
    }
}
