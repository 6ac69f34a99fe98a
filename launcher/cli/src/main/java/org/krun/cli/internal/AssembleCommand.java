package org.krun.cli.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.jar.JarFile;
import java.util.stream.Stream;

import org.krun.api.VmConfigException;

import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code krun assemble}: writes a self-contained distribution folder: the launcher and its class path,
 * exactly one profile's bundles (plus any extra bundles the user adds), the guest kernel and default
 * rootfs, and a {@code krun} script that finds a Java 25 as {@code ./krun} does and needs no other command.
 */
@Command(name = "assemble", mixinStandardHelpOptions = true,
        description = {"Writes a self-contained krun distribution to a folder: launcher, one profile's bundles",
            "(plus your own with --bundle), guest kernel and rootfs, and a krun script needing only java."})
final class AssembleCommand implements Callable<Integer> {

    @Option(names = "--out", paramLabel = "DIR", required = true, description = "The folder to create (must not exist).")
    Path out;

    @Option(names = "--profile", paramLabel = "NAME", defaultValue = "default",
            description = "The profile whose bundles to take (default: ${DEFAULT-VALUE}).")
    String profile;

    @Option(names = "--bundle", paramLabel = "JAR",
            description = "An extra bundle to include, a third-party device for example. Repeatable.")
    List<Path> extraBundles = new ArrayList<>();

    @Option(names = "--no-guest", description = "Leave out the guest kernel and rootfs (users then give --kernel and --root).")
    boolean noGuest;

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        Path home = Path.of(System.getProperty("krun.home", "."));
        Path bundles = home.resolve("export").resolve(profile);
        if (!Files.isDirectory(bundles)) {
            throw new VmConfigException("unknown profile '" + profile + "'");
        }
        for (Path b : extraBundles) {
            checkBundle(b);
        }
        if (Files.exists(out)) {
            throw new VmConfigException("output folder " + out + " exists already");
        }
        Path tmp = out.resolveSibling(out.getFileName() + ".tmp-" + ProcessHandle.current().pid());
        try {
            Path launcher = home.resolve("krun-launcher.jar");
            Files.createDirectories(tmp.resolve("lib"));
            Files.copy(launcher, tmp.resolve("krun-launcher.jar"));
            copyJars(home.resolve("lib"), tmp.resolve("lib"));
            Path profileOut = tmp.resolve("export").resolve(profile);
            Files.createDirectories(profileOut);
            copyJars(bundles, profileOut);
            Path bndrun = home.resolve("export").resolve(profile + ".bndrun");
            if (Files.isRegularFile(bndrun)) {
                Files.copy(bndrun, tmp.resolve("export").resolve(profile + ".bndrun"));
            }
            for (Path b : extraBundles) {
                Files.copy(b, profileOut.resolve(b.getFileName()), StandardCopyOption.REPLACE_EXISTING);
            }
            if (!noGuest) {
                Path kernel = Path.of(required("krun.kernel"));
                Path rootfs = Path.of(required("krun.rootfs")).toRealPath();
                Files.createDirectories(tmp.resolve("guest"));
                Files.copy(kernel, tmp.resolve("guest/vmlinux"));
                copyTree(rootfs, tmp.resolve("guest/rootfs"));
            }
            writeScript(tmp.resolve("krun"));
            Files.move(tmp, out);
        } catch (IOException | RuntimeException e) {
            deleteTree(tmp);
            throw e;
        }
        PrintWriter w = spec.commandLine().getOut();
        w.println("assembled profile '" + profile + "' into " + out + " (run " + out.resolve("krun") + ")");
        w.flush();
        return 0;
    }

    private static String required(String property) {
        String v = System.getProperty(property);
        if (v == null || v.isEmpty()) {
            throw new VmConfigException("system property " + property + " is not set; assemble with --no-guest");
        }
        return v;
    }

    private static void checkBundle(Path jar) {
        if (!Files.isRegularFile(jar)) {
            throw new VmConfigException("bundle " + jar + " does not exist");
        }
        try (JarFile j = new JarFile(jar.toFile())) {
            if (j.getManifest() == null || j.getManifest().getMainAttributes().getValue("Bundle-SymbolicName") == null) {
                throw new VmConfigException(jar + " is not an OSGi bundle (no Bundle-SymbolicName)");
            }
        } catch (IOException e) {
            throw new VmConfigException(jar + " is not a readable jar: " + e.getMessage());
        }
    }

    private static void copyJars(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.list(from)) {
            for (Path p : s.filter(f -> f.toString().endsWith(".jar")).toList()) {
                Files.copy(p, to.resolve(p.getFileName()));
            }
        }
    }

    private static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> s = Files.walk(from)) {
            for (Path p : s.toList()) {
                Path t = to.resolve(from.relativize(p).toString());
                if (Files.isSymbolicLink(p)) {
                    Files.createSymbolicLink(t, Files.readSymbolicLink(p));
                } else if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
                    try {
                        Files.createDirectory(t);
                    } catch (FileAlreadyExistsException e) {
                        // the root
                    }
                    Files.setPosixFilePermissions(t, Files.getPosixFilePermissions(p));
                } else {
                    Files.copy(p, t, StandardCopyOption.COPY_ATTRIBUTES, LinkOption.NOFOLLOW_LINKS);
                }
            }
        }
    }

    /**
     * A POSIX sh script that finds its folder (through symlinks too) and a Java 25 or newer with no command
     * but java (and readlink for a symlink): {@code find-java.sh}, the repository's {@code scripts/find-java.sh}
     * that {@code ./krun} uses as well, copied in whole.
     */
    private void writeScript(Path script) throws IOException {
        String findJava;
        try (InputStream in = AssembleCommand.class.getResourceAsStream("find-java.sh")) {
            if (in == null) {
                throw new IllegalStateException("find-java.sh is missing from the org.krun.cli bundle");
            }
            findJava = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        }
        String head = """
                #!/bin/sh
                # krun, assembled distribution (profile %s). Runs on Java 25 or newer: $KRUN_JAVA_HOME, $JAVA_HOME,
                # java on the PATH or a usual install folder, the first there is.

                """.formatted(profile);
        String tail = """

                # krun's standard streams, before anything opens a file: a closed stdin is end-of-file for the
                # command; a closed stdout or stderr is an error.
                [ -e /proc/$$/fd/0 ] || exec </dev/null
                if [ ! -e /proc/$$/fd/1 ]; then
                    echo "krun: standard output (fd 1) is closed: give krun somewhere to write (>/dev/null to discard)" >&2
                    exit 1
                fi
                [ -e /proc/$$/fd/2 ] || exit 1

                # The folder of this script, also when it is called through symlinks (one on the PATH, say).
                krun_follow_links "$0" || exit 1
                case $krun_path in */*) here=${krun_path%%/*}/ ;; *) here=./ ;; esac
                here=$(CDPATH='' cd -P "$here" && pwd -P) || exit 1

                krun_find_java || exit 1
                # The JVM's memory and compiler settings of the checkout's krun script (its comments say why):
                # with the JVM's defaults the young generation alone is a sixty-fourth of the host's RAM.
                exec "$krun_java" --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow \\
                    -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:CompileThresholdScaling=10 -Xmn2m \\
                    -XX:TrimNativeHeapInterval=5000 -Djava.awt.headless=true \\
                    -Dkrun.defaultProfile=%s -Dkrun.kernel="$here/guest/vmlinux" -Dkrun.rootfs="$here/guest/rootfs" \\
                    -jar "$here/krun-launcher.jar" "$@"
                """.formatted(profile);
        Files.writeString(script, head + findJava + tail);
        Files.setPosixFilePermissions(script, PosixFilePermissions.fromString("rwxr-xr-x"));
    }

    private static void deleteTree(Path dir) {
        if (!Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(java.util.Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.deleteIfExists(p);
                } catch (IOException e) {
                    // best effort
                }
            });
        } catch (IOException e) {
            // best effort
        }
    }
}
