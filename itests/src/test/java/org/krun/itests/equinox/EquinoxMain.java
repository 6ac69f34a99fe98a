package org.krun.itests.equinox;

import java.io.ByteArrayOutputStream;
import java.io.OutputStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.stream.Stream;

import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.Constants;
import org.osgi.framework.ServiceReference;
import org.osgi.framework.launch.Framework;
import org.osgi.framework.launch.FrameworkFactory;

/**
 * Run by {@code EquinoxIT} in a JVM of its own whose class path holds only Eclipse Equinox and this
 * class: the framework an embedder would start, with no krun or logging classes beside it. Installs the
 * bundles named on the command line, starts them, and boots a fast guest through the {@code Krun} service
 * found in the framework. krun's types live in the bundles, not here, so they are used by reflection, as
 * any code outside the framework would. Prints one line per fact: {@code BUNDLE name state},
 * {@code STATUS n}, {@code OUTPUT text}.
 *
 * <p>Arguments: the fast guest program ({@code virtio.elf}), then the bundle jars.
 */
public final class EquinoxMain {

    private EquinoxMain() {
    }

    public static void main(String[] args) throws Exception {
        Path guest = Path.of(args[0]);
        Path storage = Files.createTempDirectory("krun-equinox-");
        Map<String, String> props = new HashMap<>();
        props.put(Constants.FRAMEWORK_STORAGE, storage.toString());
        props.put(Constants.FRAMEWORK_STORAGE_CLEAN, Constants.FRAMEWORK_STORAGE_CLEAN_ONFIRSTINIT);
        FrameworkFactory factory = ServiceLoader.load(FrameworkFactory.class).findFirst().orElseThrow();
        Framework framework = factory.newFramework(props);
        System.out.println("FRAMEWORK " + framework.getClass().getName());
        try {
            framework.init();
            BundleContext context = framework.getBundleContext();
            List<Bundle> bundles = new ArrayList<>();
            for (int i = 1; i < args.length; i++) {
                bundles.add(context.installBundle(Path.of(args[i]).toUri().toString()));
            }
            framework.start();
            for (Bundle b : bundles) {
                try {
                    b.start();
                } catch (BundleException e) {
                    System.out.println("FAILED " + b.getSymbolicName() + ": " + e.getMessage());
                }
            }
            for (Bundle b : bundles) {
                System.out.println("BUNDLE " + b.getSymbolicName() + " " + (b.getState() == Bundle.ACTIVE ? "ACTIVE" : b.getState()));
            }
            Object krun = awaitService(context, "org.krun.api.Krun", Duration.ofSeconds(30));
            bootFastGuest(krun, guest);
        } finally {
            framework.stop();
            framework.waitForStop(10_000);
            try (Stream<Path> s = Files.walk(storage)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    private static Object awaitService(BundleContext context, String name, Duration timeout) throws Exception {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (true) {
            ServiceReference<?> ref = context.getServiceReference(name);
            if (ref != null) {
                return context.getService(ref);
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException("no " + name + " service within " + timeout);
            }
            Thread.sleep(50);
        }
    }

    /** As KrunBundlesIT does it, through reflection on the API bundle's classes. */
    private static void bootFastGuest(Object krun, Path guest) throws Exception {
        ClassLoader api = krun.getClass().getInterfaces()[0].getClassLoader();
        Class<?> configClass = api.loadClass("org.krun.api.VmConfig");
        Class<?> consoleClass = api.loadClass("org.krun.api.ConsoleSpec");
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Object console = consoleClass.getMethod("terminal", OutputStream.class, int.class, int.class).invoke(null, out, 80, 24);
        Object b = configClass.getMethod("builder").invoke(null);
        Class<?> bc = b.getClass();
        bc.getMethod("kernel", Path.class).invoke(b, guest);
        bc.getMethod("command", String[].class).invoke(b, (Object) new String[] {"fast-guest"});
        bc.getMethod("memoryMib", int.class).invoke(b, 64);
        bc.getMethod("console", consoleClass).invoke(b, console);
        bc.getMethod("timeout", Duration.class).invoke(b, Duration.ofSeconds(60));
        Object config = bc.getMethod("build").invoke(b);
        Method create = api.loadClass("org.krun.api.Krun").getMethod("create", configClass);
        AutoCloseable vm = (AutoCloseable) create.invoke(krun, config);
        try (vm) {
            Class<?> vmClass = api.loadClass("org.krun.api.VirtualMachine");
            vmClass.getMethod("start").invoke(vm);
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (!out.toString(StandardCharsets.UTF_8).contains("hello from the guest") && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            OutputStream input = (OutputStream) vmClass.getMethod("consoleInput").invoke(vm);
            input.write("ping\n".getBytes(StandardCharsets.US_ASCII));
            Object exit = vmClass.getMethod("waitFor", Duration.class).invoke(vm, Duration.ofSeconds(60));
            System.out.println("EXIT " + exit);
            System.out.println("STATUS " + exit.getClass().getMethod("status").invoke(exit));
        }
        System.out.println("OUTPUT " + out.toString(StandardCharsets.UTF_8).replace("\n", "\\n"));
    }
}
