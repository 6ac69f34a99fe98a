package org.krun.launcher;

import java.io.Console;
import java.util.List;
import java.util.Properties;

import org.osgi.framework.Bundle;
import org.osgi.framework.BundleException;
import org.osgi.framework.launch.Framework;
import org.osgi.framework.namespace.PackageNamespace;
import org.osgi.framework.wiring.BundleWire;
import org.osgi.framework.wiring.BundleWiring;
import org.osgi.framework.wiring.FrameworkWiring;

/**
 * The terminal of the Gogo console (bundle org.apache.felix.gogo.jline, which asks JLine for the system
 * terminal when it starts): a real one, with line editing and history, when krun's stdin and stdout are a
 * terminal; JLine's dumb terminal, without JLine's warning about it, when they are not (pipes, tests).
 *
 * <p>JLine finds its terminal providers (FFM, JNI, exec) as resources through the thread's context class
 * loader. The launcher's thread has the launcher's class path as that loader, where JLine is absent: every
 * provider failed and the console was always dumb. The console therefore starts with JLine's own class loader
 * as the context class loader, and last, so that it finds the command processor at once and creates its
 * terminal during that start, on this thread.
 *
 * <p>The provider is exec ({@code stty}): JLine 3.30.6's FFM and JNI providers write the terminal settings
 * from an empty {@code struct termios}, which clears the line speed (the terminal is left at 0 baud after the
 * console, and a serial line hangs up: jline/jline3#2170). exec changes only the flags that differ.
 */
final class ConsoleTerminal {
    /** JLine's system properties (org.jline.terminal.TerminalBuilder). */
    static final String PROVIDER = "org.jline.terminal.provider";
    static final String DUMB = "dumb";
    static final String EXEC = "exec";
    static final String TERMINAL_PACKAGE = "org.jline.terminal";

    private ConsoleTerminal() {
    }

    /** Whether krun's stdin and stdout are both a terminal. */
    static boolean interactive() {
        Console console = System.console();
        return console != null && console.isTerminal();
    }

    /**
     * Chooses JLine's provider: exec on a terminal, else the dumb terminal (chosen, so JLine does not warn
     * about it). A provider the user set ({@code -Dorg.jline.terminal.provider}) stays.
     */
    static void configure(Properties system) {
        system.putIfAbsent(PROVIDER, interactive() ? EXEC : DUMB);
    }

    /** Starts the console bundle with JLine's class loader as this thread's context class loader. */
    static void start(Framework framework, Bundle console) throws BundleException {
        framework.adapt(FrameworkWiring.class).resolveBundles(List.of(console));
        ClassLoader jline = terminalLibraryLoader(console);
        Thread thread = Thread.currentThread();
        ClassLoader before = thread.getContextClassLoader();
        if (jline != null) {
            thread.setContextClassLoader(jline);
        }
        try {
            console.start();
        } finally {
            thread.setContextClassLoader(before);
        }
    }

    /** The class loader of the bundle that gives {@code console} JLine's terminal package; null if unresolved. */
    private static ClassLoader terminalLibraryLoader(Bundle console) {
        BundleWiring wiring = console.adapt(BundleWiring.class);
        if (wiring == null) {
            return null;
        }
        for (BundleWire wire : wiring.getRequiredWires(PackageNamespace.PACKAGE_NAMESPACE)) {
            if (TERMINAL_PACKAGE.equals(wire.getCapability().getAttributes().get(PackageNamespace.PACKAGE_NAMESPACE))) {
                return wire.getProviderWiring().getClassLoader();
            }
        }
        return null;
    }
}
