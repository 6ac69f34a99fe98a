package org.krun.launcher;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.List;
import java.util.stream.Stream;

/**
 * A copy of the checkout's {@code ./krun} and the scripts it runs, at another path, whose launcher is the one
 * this build packaged (linked, already marked built): the script's own logic runs as users run it, and it never
 * starts a Maven build of the checkout under test.
 */
final class CheckoutCopy {

    private CheckoutCopy() {
    }

    static Path checkout() throws IOException {
        return Path.of(System.getProperty("krun.checkout")).toRealPath();
    }

    /** A copy at {@code at} whose set-up steps are stubs: no packages, the guest kernel and rootfs folders given. */
    static Path withStubs(Path at, String kernelDir, String rootfsDir) throws IOException {
        Path copy = scriptsAndLauncher(at);
        executable(copy.resolve("scripts/host-setup.sh"), "exit 0");
        executable(copy.resolve("guest/kernel/build.sh"), "echo '" + kernelDir + "'");
        executable(copy.resolve("guest/rootfs/build.sh"), "echo '" + rootfsDir + "'");
        return copy;
    }

    /** A copy at {@code at} with the real set-up steps: host packages, guest kernel and rootfs from krun's cache. */
    static Path withRealSetup(Path at) throws IOException {
        Path copy = scriptsAndLauncher(at);
        Path checkout = checkout();
        for (String file : List.of("scripts/host-setup.sh", "guest/kernel/build.sh", "guest/kernel/config.fragment",
                "guest/rootfs/build.sh")) {
            Files.createDirectories(copy.resolve(file).getParent());
            Files.copy(checkout.resolve(file), copy.resolve(file), StandardCopyOption.COPY_ATTRIBUTES);
        }
        Files.createDirectories(copy.resolve("guest/kernel/patches"));
        try (Stream<Path> patches = Files.list(checkout.resolve("guest/kernel/patches"))) {
            for (Path p : patches.toList()) {
                Files.copy(p, copy.resolve("guest/kernel/patches").resolve(p.getFileName()));
            }
        }
        return copy;
    }

    private static Path scriptsAndLauncher(Path copy) throws IOException {
        Path checkout = checkout();
        Files.createDirectories(copy.resolve("scripts"));
        Files.copy(checkout.resolve("krun"), copy.resolve("krun"), StandardCopyOption.COPY_ATTRIBUTES);
        for (String script : List.of("find-java.sh", "krun-cache.sh")) {
            Files.copy(checkout.resolve("scripts").resolve(script), copy.resolve("scripts").resolve(script));
        }
        Path built = KrunProcess.jar().getParent();
        Path target = Files.createDirectories(copy.resolve("launcher/boot/target"));
        for (String name : List.of("krun-launcher.jar", "lib", "export")) {
            Files.createSymbolicLink(target.resolve(name), built.resolve(name));
        }
        Files.createFile(target.resolve("krun-built.stamp"));
        return copy;
    }

    static void executable(Path file, String body) throws IOException {
        Files.createDirectories(file.getParent());
        Files.writeString(file, "#!/bin/sh\n" + body + "\n");
        Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rwxr-xr-x"));
    }
}
