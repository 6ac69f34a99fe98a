package org.krun.launcher;

import java.nio.file.Path;
import java.util.Map;
import java.util.stream.Stream;

import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.launch.Framework;

/**
 * {@code krun shell}: the management console of profiles that have one ({@code full}). The Gogo console
 * (bundle org.apache.felix.gogo.jline) starts on the terminal, and File Install starts the VMs described
 * in {@link #configurationFolder()}; krun exits when the console ends ({@code exit}, or end of input).
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

    /** Whether the launcher starts {@code bundle} for this command line: the console only for the shell. */
    static boolean starts(Bundle bundle, String[] commandLine) {
        return isShell(commandLine) || !GOGO_CONSOLE_BUNDLE.equals(bundle.getSymbolicName());
    }

    /** Runs until the console stops the framework; returns krun's exit status. */
    static int runShell(Framework framework, String profile) throws Main.LaunchException, InterruptedException {
        BundleContext context = framework.getBundleContext();
        if (Stream.of(context.getBundles()).noneMatch(b -> GOGO_CONSOLE_BUNDLE.equals(b.getSymbolicName()))) {
            throw new Main.LaunchException("profile " + profile + " has no shell (try 'krun --profile full shell')", 2);
        }
        framework.waitForStop(0);
        return 0;
    }
}
