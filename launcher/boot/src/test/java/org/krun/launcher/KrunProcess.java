package org.krun.launcher;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * Runs the packaged {@code krun} launcher as a separate process, exactly as users do, and collects its
 * exit status and output. Kernel and rootfs come from the system properties the build passes.
 */
final class KrunProcess {

    /** What one run produced. */
    record Result(List<String> args, int status, byte[] stdout, byte[] stderr) {
        String out() {
            return new String(stdout, StandardCharsets.UTF_8);
        }

        String err() {
            return new String(stderr, StandardCharsets.UTF_8);
        }

        @Override
        public String toString() {
            return "krun " + String.join(" ", args) + " -> " + status + "\n--- stdout\n" + out() + "--- stderr\n" + err();
        }
    }

    private KrunProcess() {
    }

    static Path jar() {
        return Path.of(System.getProperty("krun.launcher.jar", "target/krun-launcher.jar")).toAbsolutePath();
    }

    static String kernel() {
        return System.getProperty("krun.kernel");
    }

    static String rootfs() {
        return System.getProperty("krun.rootfs");
    }

    /** The command line that starts krun with {@code args}. */
    static List<String> command(List<String> args) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.add("--sun-misc-unsafe-memory-access=allow");
        cmd.add("-Dkrun.kernel=" + kernel());
        cmd.add("-Dkrun.rootfs=" + rootfs());
        cmd.add("-jar");
        cmd.add(jar().toString());
        cmd.addAll(args);
        return cmd;
    }

    static Result run(byte[] stdin, long timeoutSeconds, String... args) throws IOException, InterruptedException {
        return run(Map.of(), stdin, timeoutSeconds, args);
    }

    /** The same, with {@code env} added to krun's environment. */
    static Result run(Map<String, String> env, byte[] stdin, long timeoutSeconds, String... args)
            throws IOException, InterruptedException {
        List<String> argList = List.of(args);
        ProcessBuilder pb = new ProcessBuilder(command(argList));
        pb.environment().putAll(env);
        return run(pb, argList, stdin, timeoutSeconds);
    }

    /** Runs {@code pb} (krun started some other way: a script, say), reporting it as {@code krun args}. */
    static Result run(ProcessBuilder pb, List<String> argList, byte[] stdin, long timeoutSeconds)
            throws IOException, InterruptedException {
        Process p = pb.start();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        Thread o = copy(p.getInputStream(), out);
        Thread e = copy(p.getErrorStream(), err);
        Thread i = Thread.ofPlatform().daemon(true).start(() -> {
            try (OutputStream in = p.getOutputStream()) {
                if (stdin != null) {
                    in.write(stdin);
                }
            } catch (IOException ex) {
                // the process may exit without reading its input
            }
        });
        if (!p.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            p.waitFor();
            o.join();
            e.join();
            throw new AssertionError("krun " + argList + " did not finish within " + timeoutSeconds + " s\n--- stdout\n"
                    + out.toString(StandardCharsets.UTF_8) + "--- stderr\n" + err.toString(StandardCharsets.UTF_8));
        }
        o.join();
        e.join();
        i.join(1000);
        return new Result(argList, p.exitValue(), out.toByteArray(), err.toByteArray());
    }

    private static Thread copy(InputStream from, ByteArrayOutputStream to) {
        return Thread.ofPlatform().daemon(true).start(() -> {
            try (from) {
                from.transferTo(to);
            } catch (IOException ex) {
                // process gone
            }
        });
    }

    /** Whether this host can boot guests; tests that boot skip loudly when it cannot. */
    static boolean kvmAvailable() {
        boolean ok = Files.isReadable(Path.of("/dev/kvm")) && Files.isWritable(Path.of("/dev/kvm"));
        if (!ok) {
            System.err.println("*** /dev/kvm is missing or not accessible: Linux guest tests are SKIPPED ***");
        }
        return ok;
    }
}
