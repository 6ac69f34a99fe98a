package org.krun.launcher;

import java.nio.file.Path;
import java.util.Dictionary;
import java.util.Hashtable;
import java.util.Map;
import java.util.stream.Stream;

import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.BundleException;
import org.osgi.framework.ServiceReference;
import org.osgi.framework.launch.Framework;

/**
 * {@code krun shell}: the management console of profiles that have one ({@code full}). The Gogo console
 * (bundle org.apache.felix.gogo.jline) starts on the terminal, and File Install starts the VMs described
 * in {@link #configurationFolder()}; krun exits when the console ends ({@code exit [N]}, or end of input).
 *
 * <p>Every other command leaves both quiet, whatever the profile: the console bundle is not started (it
 * would take over the terminal that belongs to {@code krun run}'s guest, and stop the framework when its
 * input ends), and File Install watches an empty folder, so no configured VM starts beside a one-off run.
 */
final class ManagementMode {
    static final String SHELL_COMMAND = "shell";
    static final String GOGO_CONSOLE_BUNDLE = "org.apache.felix.gogo.jline";
    /** The folder File Install watches (framework property read by org.apache.felix.fileinstall). */
    static final String FILEINSTALL_DIR = "felix.fileinstall.dir";

    private ManagementMode() {
    }

    static boolean isShell(String[] commandLine) {
        return commandLine.length > 0 && commandLine[0].equals(SHELL_COMMAND);
    }

    /**
     * Where {@code krun shell} finds VM configurations ({@code org.krun.vm-NAME.config}): system property
     * {@value #FILEINSTALL_DIR} if set, else {@code $XDG_CONFIG_HOME/krun/vms} ({@code ~/.config/krun/vms}).
     */
    static Path configurationFolder() {
        String configured = System.getProperty(FILEINSTALL_DIR);
        if (configured != null && !configured.isBlank()) {
            return Path.of(configured);
        }
        String xdg = System.getenv("XDG_CONFIG_HOME");
        Path config = xdg != null && !xdg.isBlank() ? Path.of(xdg) : Path.of(System.getProperty("user.home"), ".config");
        return config.resolve("krun").resolve("vms");
    }

    /** The framework property for File Install; {@code storage} is this run's own folder. */
    static void configure(Map<String, String> props, String[] commandLine, Path storage) {
        // File Install watches (and creates) some folder in any case: outside the shell, give it one that
        // holds nothing and goes away with the framework's storage.
        props.put(FILEINSTALL_DIR, isShell(commandLine) ? configurationFolder().toString()
                : storage.resolve("no-vm-configurations").toString());
    }

    /**
     * Whether the launcher starts {@code bundle} with the others: not the console, which {@link #runShell} starts
     * last, and only for the shell.
     */
    static boolean starts(Bundle bundle) {
        return !GOGO_CONSOLE_BUNDLE.equals(bundle.getSymbolicName());
    }

    /**
     * Starts the console and runs until it ends: {@code exit [N]} (status N, 0 by default), or end of input
     * (status 0). Returns krun's exit status.
     */
    static int runShell(Framework framework, String profile) throws Main.LaunchException, InterruptedException {
        BundleContext context = framework.getBundleContext();
        Bundle console = Stream.of(context.getBundles()).filter(b -> GOGO_CONSOLE_BUNDLE.equals(b.getSymbolicName()))
                .findFirst().orElseThrow(() -> new Main.LaunchException("profile " + profile + " has no shell (try "
                        + "'krun --profile full shell')", 2));
        ExitCommand exit = new ExitCommand(framework);
        Dictionary<String, Object> props = new Hashtable<>();
        // Scope gogo: the console's profile sets SCOPE=gogo:*, so this exit comes before the java.lang.System
        // methods it adds as commands (whose exit(int) would end the JVM without any cleanup).
        props.put("osgi.command.scope", "gogo");
        props.put("osgi.command.function", new String[] {"exit"});
        context.registerService(Object.class, exit, props);
        ConsoleTerminal.configure(System.getProperties());
        try {
            ConsoleTerminal.start(framework, console);
        } catch (BundleException e) {
            throw new Main.LaunchException("the console does not start: " + e.getMessage(), 1);
        }
        framework.waitForStop(0);
        return exit.status();
    }

    /**
     * The console's {@code exit [N]}: ends the console and krun with status N. Gogo finds the command by the
     * service properties and calls the public methods by name.
     *
     * <p>Gogo runs a command on a thread of its own while the console's thread waits for it, so exit cannot
     * stop the framework itself: the console, stopped with it, would interrupt that wait and print the
     * InterruptedException. Instead it tells the console's shell (org.apache.felix.gogo.jline.Shell, a
     * service) to stop reading: once the command returns, the console ends as at end of input, and stops the
     * framework. Without that shell it stops the framework.
     */
    static final class ExitCommand {
        static final String SHELL_SERVICE = "org.apache.felix.gogo.jline.Shell";

        private final Framework framework;
        private volatile int status;

        ExitCommand(Framework framework) {
            this.framework = framework;
        }

        int status() {
            return status;
        }

        public void exit() throws BundleException {
            exit(0);
        }

        public void exit(int status) throws BundleException {
            this.status = status;
            if (!stopShell()) {
                framework.stop();
            }
        }

        private boolean stopShell() {
            BundleContext context = framework.getBundleContext();
            ServiceReference<?> ref = context.getServiceReference(SHELL_SERVICE);
            Object shell = ref == null ? null : context.getService(ref);
            if (shell == null) {
                return false;
            }
            try {
                shell.getClass().getMethod("stop").invoke(shell);
                return true;
            } catch (ReflectiveOperationException e) {
                return false;
            } finally {
                context.ungetService(ref);
            }
        }
    }
}
