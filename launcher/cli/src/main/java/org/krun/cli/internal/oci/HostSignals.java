package org.krun.cli.internal.oci;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.List;
import java.util.function.IntConsumer;

/**
 * Signals sent to this process, handed on instead of ending it: an exec session's relay is the process an
 * engine signals for the exec'd one (containerd's {@code ctr task kill --exec-id}, an engine stopping the
 * session), and the guest process is what should get them. Through the JDK's {@code sun.misc.Signal}
 * (module jdk.unsupported, reached through the system class loader: a bundle imports no {@code sun.*}).
 * SIGKILL cannot be caught: the relay then dies, its connection closes, and the agent kills the process.
 */
final class HostSignals {

    /** What is forwarded; signals the JVM keeps for itself (QUIT, and any it refuses) stay its own. */
    private static final List<String> FORWARDED = List.of("HUP", "INT", "TERM", "USR1", "USR2", "ALRM", "WINCH");

    private HostSignals() {
    }

    /** From now on each of the {@link #FORWARDED} signals this process gets goes to {@code to} (its number). */
    static void forward(IntConsumer to) {
        ClassLoader system = ClassLoader.getSystemClassLoader();
        Class<?> signal;
        Class<?> handlerType;
        try {
            signal = Class.forName("sun.misc.Signal", true, system);
            handlerType = Class.forName("sun.misc.SignalHandler", true, system);
        } catch (ClassNotFoundException e) {
            return; // a JDK without jdk.unsupported: signals end the relay, and the agent ends the process
        }
        try {
            Method number = signal.getMethod("getNumber");
            Object handler = Proxy.newProxyInstance(system, new Class<?>[] {handlerType}, (proxy, method, args) -> {
                if (method.getName().equals("handle") && args != null && args.length == 1) {
                    to.accept((int) number.invoke(args[0]));
                    return null;
                }
                return switch (method.getName()) {
                    case "hashCode" -> System.identityHashCode(proxy);
                    case "equals" -> proxy == args[0];
                    case "toString" -> "krun exec signal relay";
                    default -> null;
                };
            });
            Method handle = signal.getMethod("handle", signal, handlerType);
            for (String name : FORWARDED) {
                try {
                    handle.invoke(null, signal.getConstructor(String.class).newInstance(name), handler);
                } catch (InvocationTargetException e) {
                    // the JVM uses this one (or the platform lacks it): it stays the JVM's
                }
            }
        } catch (ReflectiveOperationException e) {
            // an unusual JDK: no forwarding
        }
    }
}
