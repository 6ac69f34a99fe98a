package org.krun.launcher;

import java.io.IOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Function;
import java.util.stream.Stream;

import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.Constants;
import org.osgi.framework.Filter;
import org.osgi.framework.FrameworkUtil;
import org.osgi.framework.InvalidSyntaxException;
import org.osgi.framework.launch.Framework;
import org.osgi.framework.launch.FrameworkFactory;
import org.osgi.util.tracker.ServiceTracker;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import ch.qos.logback.classic.Level;

/**
 * The {@code krun} process: starts Felix with a profile's bundles and hands the command line to the
 * {@code org.krun.cli} bundle, then exits with its status.
 *
 * <p>A profile is a directory of bundles, {@code export/NAME} beside this jar, produced at build time
 * by bnd from {@code cnf/profiles/NAME.bndrun}. Bundles are installed by reference (not copied) into a
 * framework storage directory that exists only for this process ({@link FrameworkStorage}).
 */
public final class Main {
    /** Packages the launcher's class path exports to bundles; matches -runsystempackages of the profiles. */
    static final String SYSTEM_PACKAGES_EXTRA =
            "org.slf4j;version=2.0.17,org.slf4j.event;version=2.0.17,org.slf4j.spi;version=2.0.17";
    static final long CLI_WAIT_MILLIS = 15_000;
    /** Set when the profile's VMs would lack the protection it promises: why (see {@link Profile#unprotected()}). */
    static final String UNPROTECTED_PROPERTY = "krun.profile.unprotected";

    private Main() {
    }

    public static void main(String[] args) {
        StandardStreams streams = StandardStreams.ofThisProcess(home());
        if (streams.error().isPresent()) {
            System.err.println("krun: " + streams.error().get());
            System.exit(1);
        }
        if (streams.stdinClosed()) {
            System.setProperty(StandardStreams.STDIN_PROPERTY, "closed"); // read by the command line
        }
        int status;
        try {
            status = run(args);
        } catch (LaunchException e) {
            System.err.println("krun: " + e.getMessage());
            status = e.status;
        }
        System.exit(status);
    }

    /** A launcher failure with the exit status it stands for. */
    static final class LaunchException extends Exception {
        private static final long serialVersionUID = 1L;
        final int status;

        LaunchException(String message, int status) {
            super(message);
            this.status = status;
        }
    }

    /** Global options read here, before the framework starts; the rest goes to the command line bundle. */
    record Options(String profile, String logLevel, String[] rest) {

        static Options parse(String[] args) throws LaunchException {
            String profile = System.getProperty("krun.defaultProfile", "default");
            String logLevel = null;
            List<String> rest = new ArrayList<>();
            int i = 0;
            for (; i < args.length; i++) {
                String a = args[i];
                if (a.equals("--profile") || a.equals("--log-level")) {
                    if (i + 1 >= args.length) {
                        throw new LaunchException("option " + a + " needs a value (see 'krun --help')", 2);
                    }
                    if (a.equals("--profile")) {
                        profile = args[++i];
                    } else {
                        logLevel = args[++i];
                    }
                } else if (a.startsWith("--profile=")) {
                    profile = a.substring("--profile=".length());
                } else if (a.startsWith("--log-level=")) {
                    logLevel = a.substring("--log-level=".length());
                } else {
                    break; // the subcommand: everything after it belongs to it
                }
            }
            for (; i < args.length; i++) {
                rest.add(args[i]);
            }
            return new Options(profile, logLevel, rest.toArray(String[]::new));
        }
    }

    static int run(String[] args) throws LaunchException {
        Options options = Options.parse(args);
        configureLogging(options.logLevel());
        Path profileDir = profileDirectory(options.profile());
        Profile profile = Profile.read(home().resolve("export"), options.profile());
        for (Profile.Missing m : profile.missing()) {
            System.err.println("krun: profile '" + profile.name() + "' lacks bundle " + m.bundle() + ": " + m.reason());
        }
        System.setProperty("krun.home", home().toString());
        System.setProperty("krun.profile", profile.name());
        if (profile.unprotected() != null) {
            // Read by the command line, which refuses to start unprotected VMs unless told it may.
            System.setProperty(UNPROTECTED_PROPERTY, profile.unprotected());
        }
        FrameworkStorage storage;
        try {
            storage = FrameworkStorage.create(FrameworkStorage.base(System.getenv()));
        } catch (IOException e) {
            throw new LaunchException("cannot create the framework's storage directory: " + e.getMessage(), 1);
        }
        // SIGINT and SIGTERM end the JVM through its shutdown hooks: stop the framework (VMs end with it), then
        // delete the storage. On a normal end the finally below has done both already.
        AtomicReference<Framework> running = new AtomicReference<>();
        Thread cleanup = new Thread(() -> {
            stop(running.get());
            storage.close();
        }, "krun-storage-cleanup");
        Runtime.getRuntime().addShutdownHook(cleanup);
        try {
            return runFramework(profileDir, storage.frameworkDir(), options, running);
        } finally {
            storage.close();
        }
    }

    private static void configureLogging(String level) throws LaunchException {
        if (level == null) {
            return;
        }
        Level l = Level.toLevel(level.toUpperCase(Locale.ROOT), null);
        if (l == null) {
            throw new LaunchException("unknown log level '" + level + "': use error, warn, info, debug or trace "
                    + "(see 'krun --help')", 2);
        }
        ((ch.qos.logback.classic.Logger) LoggerFactory.getLogger(Logger.ROOT_LOGGER_NAME)).setLevel(l);
    }

    static Path home() {
        String configured = System.getProperty("krun.home");
        if (configured != null) {
            return Path.of(configured);
        }
        try {
            return Path.of(Main.class.getProtectionDomain().getCodeSource().getLocation().toURI()).getParent();
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    private static Path profileDirectory(String profile) throws LaunchException {
        Path profiles = home().resolve("export");
        Path dir = profiles.resolve(profile);
        if (profile.contains("/") || !Files.isDirectory(dir)) {
            List<String> known = new ArrayList<>();
            try (Stream<Path> s = Files.list(profiles)) {
                s.filter(Files::isDirectory).map(p -> p.getFileName().toString()).sorted().forEach(known::add);
            } catch (IOException e) {
                // none
            }
            throw new LaunchException("unknown profile '" + profile + "': the profiles are " + String.join(", ", known)
                    + " (see 'krun --help')", 2);
        }
        return dir;
    }

    private static int runFramework(Path profileDir, Path storage, Options options, AtomicReference<Framework> running)
            throws LaunchException {
        Map<String, String> props = new HashMap<>();
        props.put(Constants.FRAMEWORK_STORAGE, storage.toString());
        props.put(Constants.FRAMEWORK_STORAGE_CLEAN, Constants.FRAMEWORK_STORAGE_CLEAN_ONFIRSTINIT);
        props.put(Constants.FRAMEWORK_SYSTEMPACKAGES_EXTRA, SYSTEM_PACKAGES_EXTRA);
        props.put("felix.log.level", "1");
        ManagementMode.configure(props, options.rest(), storage);
        FrameworkFactory factory = ServiceLoader.load(FrameworkFactory.class).findFirst()
                .orElseThrow(() -> new LaunchException("no OSGi framework on the class path", 1));
        Framework framework = factory.newFramework(props);
        running.set(framework);
        try {
            framework.init();
            BundleContext context = framework.getBundleContext();
            List<Bundle> bundles = new ArrayList<>();
            try (Stream<Path> jars = Files.list(profileDir)) {
                for (Path jar : jars.filter(p -> p.toString().endsWith(".jar")).sorted().toList()) {
                    bundles.add(context.installBundle("reference:" + jar.toUri()));
                }
            } catch (IOException e) {
                throw new LaunchException("cannot read profile " + options.profile() + ": " + e.getMessage(), 1);
            }
            framework.start();
            for (Bundle b : bundles) {
                if (b.getHeaders().get(Constants.FRAGMENT_HOST) == null && ManagementMode.starts(b)) {
                    b.start();
                }
            }
            if (ManagementMode.isShell(options.rest())) {
                return ManagementMode.runShell(framework, options.profile());
            }
            Function<String[], Integer> cli = commandLine(context, options.profile());
            return cli.apply(options.rest());
        } catch (BundleException e) {
            throw new LaunchException("profile " + options.profile() + " does not start: " + e.getMessage(), 1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new LaunchException("interrupted", 1);
        } finally {
            stop(framework);
        }
    }

    /** Stops the framework, if there is one, and waits (with a bound) until it has. */
    private static void stop(Framework framework) {
        if (framework == null) {
            return;
        }
        try {
            framework.stop();
            framework.waitForStop(10_000);
        } catch (BundleException | InterruptedException | IllegalStateException e) {
            // exiting anyway
        }
    }

    @SuppressWarnings("unchecked")
    private static Function<String[], Integer> commandLine(BundleContext context, String profile) throws LaunchException {
        Filter filter;
        try {
            filter = FrameworkUtil.createFilter("(&(objectClass=java.util.function.Function)(krun.command=main))");
        } catch (InvalidSyntaxException e) {
            throw new IllegalStateException(e);
        }
        ServiceTracker<Object, Object> tracker = new ServiceTracker<>(context, filter, null);
        tracker.open();
        try {
            Object service = tracker.waitForService(CLI_WAIT_MILLIS);
            if (service == null) {
                throw new LaunchException("profile " + profile + " has no working command line (bundle org.krun.cli "
                        + "did not come up; run with --log-level debug for details)", 1);
            }
            return (Function<String[], Integer>) service;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new LaunchException("interrupted", 1);
        }
    }
}
