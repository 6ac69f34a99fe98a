package org.krun.platform;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.jar.Attributes;
import java.util.jar.JarFile;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The device guide's example (docs/example-device) builds where a third party would build it: in a folder
 * outside this repository, against org.krun.api and its test-jar as `mvn install` left them in the local
 * repository, with its own unit test, into a bundle that imports krun's SPI by version range.
 */
class ExampleDeviceTest {
    private static final String API_VERSION = System.getProperty("krun.api.version");

    @Test
    void buildsOutsideTheRepositoryAgainstTheInstalledApi(@TempDir Path tmp) throws IOException {
        assertFalse(tmp.toAbsolutePath().normalize().startsWith(MavenRun.ROOT), "a folder outside the repository");
        Path example = MavenRun.ROOT.resolve("docs/example-device");
        assertEquals(API_VERSION, property(Files.readString(example.resolve("pom.xml")), "krun.api.version"),
                "docs/example-device/pom.xml must build against this build's org.krun.api");
        assertInstalledAsBuilt("org.krun.api-" + API_VERSION + ".jar");
        assertInstalledAsBuilt("org.krun.api-" + API_VERSION + "-tests.jar");

        Path project = tmp.resolve("example-device");
        MavenRun.copyTree(example, project);
        MavenRun.Result r = MavenRun.mvn(project, "verify");

        assertEquals(0, r.status(), r.toString());
        Matcher tests = Pattern.compile("Tests run: (\\d+), Failures: 0, Errors: 0, Skipped: 0\\n").matcher(r.output());
        assertTrue(tests.find() && Integer.parseInt(tests.group(1)) > 0, "its unit tests ran and passed: " + r);
        try (JarFile jar = new JarFile(project.resolve("target/org.example.krun.echo-1.0.0-SNAPSHOT.jar").toFile())) {
            Attributes manifest = jar.getManifest().getMainAttributes();
            assertEquals("org.example.krun.echo", manifest.getValue("Bundle-SymbolicName"));
            assertTrue(Pattern.compile("org\\.krun\\.spi\\.virtio;version=\"\\[1\\.\\d+,2\\)\"")
                    .matcher(manifest.getValue("Import-Package")).find(), "the SPI up to its next major version: " + manifest.getValue("Import-Package"));
            assertNotNull(jar.getEntry(manifest.getValue("Service-Component")), "the DS component description");
        }
    }

    /** The local repository's copy of an org.krun.api jar is the one this build made (run `mvn install`). */
    private static void assertInstalledAsBuilt(String file) throws IOException {
        Path installed = Path.of(System.getProperty("krun.repo.local"), "org/krun/org.krun.api", API_VERSION, file);
        assertTrue(Files.isRegularFile(installed), installed + " is missing: build with `mvn install`, not `mvn verify`");
        Path built = MavenRun.ROOT.resolve("org.krun.api/target").resolve(file);
        if (Files.isRegularFile(built)) {
            assertArrayEquals(Files.readAllBytes(built), Files.readAllBytes(installed),
                    installed + " is older than " + built + ": build with `mvn install`, not `mvn verify`");
        }
    }

    private static String property(String pom, String name) {
        Matcher m = Pattern.compile("<" + Pattern.quote(name) + ">([^<]*)</").matcher(pom);
        return m.find() ? m.group(1) : null;
    }
}
