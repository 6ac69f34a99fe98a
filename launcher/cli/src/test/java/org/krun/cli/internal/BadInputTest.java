package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;

/**
 * Every row of {@code bad-inputs.txt} that the command line itself refuses: the exit status of the row, exactly
 * one line on stderr that says what is wrong, nothing on stdout, and no VM asked for.
 */
class BadInputTest {

    @TempDir
    static Path tmp;
    private static Map<String, String> places;
    private static String savedKernel;
    private static String savedRootfs;

    @BeforeAll
    static void placesAndDefaults() throws IOException {
        Path dir = Files.createDirectories(tmp.resolve("dir"));
        Path file = Files.writeString(tmp.resolve("file.txt"), "not a kernel, not a directory\n");
        Path image = tmp.resolve("disk.img");
        Files.write(image, new byte[1 << 20]);
        places = Map.of("dir", dir.toString(), "file", file.toString(), "image", image.toString(),
                "nosuch", tmp.resolve("no-such-path").toString());
        // What the launcher sets for an installation: the defaults exist, so only the row's own mistake counts.
        savedKernel = System.setProperty("krun.kernel", file.toString());
        savedRootfs = System.setProperty("krun.rootfs", dir.toString());
    }

    @AfterAll
    static void restoreDefaults() {
        restore("krun.kernel", savedKernel);
        restore("krun.rootfs", savedRootfs);
    }

    private static void restore(String property, String value) {
        if (value == null) {
            System.clearProperty(property);
        } else {
            System.setProperty(property, value);
        }
    }

    static Stream<BadInput> refusedByTheCommandLine() {
        return BadInput.all().stream().filter(b -> b.where().equals("cli"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("refusedByTheCommandLine")
    void isOneLineWithItsStatusAndNoVm(BadInput row) {
        BadInput b = row.with(places);
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        NoVms krun = new NoVms();
        int status = KrunCli.execute(krun, b.args().toArray(String[]::new), new PrintWriter(out), new PrintWriter(err));

        String report = b + " -> " + status + "\n--- stdout\n" + out + "--- stderr\n" + err;
        assertEquals(b.status(), status, report);
        assertEquals("", out.toString(), report);
        List<String> lines = err.toString().lines().toList();
        assertEquals(1, lines.size(), "one line on stderr: " + report);
        assertTrue(lines.get(0).startsWith("krun: "), report);
        assertTrue(lines.get(0).contains(b.mention()), "mentions '" + b.mention() + "': " + report);
        assertFalse(lines.get(0).contains("Exception"), report);
        assertEquals(status == 2, lines.get(0).endsWith("--help')"), "a usage error, and only that, points to --help: " + report);
        assertEquals(0, krun.asked.get(), "no VM was asked for: " + report);
    }

    @Test
    void theTableCoversSeventyFiveMistakesAndMore() {
        assertTrue(BadInput.all().size() >= 75, "rows: " + BadInput.all().size());
        assertTrue(refusedByTheCommandLine().count() >= 50, "rows the command line refuses: " + refusedByTheCommandLine().count());
    }

    @Test
    void noArgumentsGiveOneHint() {
        StringWriter err = new StringWriter();
        assertEquals(2, KrunCli.execute(new NoVms(), new String[0], new PrintWriter(new StringWriter()), new PrintWriter(err)));
        assertEquals("krun: missing a command (see 'krun --help')", err.toString().strip());
    }

    /** A Krun service that counts the VMs asked of it and makes none. */
    private static final class NoVms implements Krun {
        final AtomicInteger asked = new AtomicInteger();

        @Override
        public VirtualMachine create(VmConfig config) {
            asked.incrementAndGet();
            throw new AssertionError("a VM was asked for: " + config);
        }

        @Override
        public List<VirtualMachine> list() {
            return List.of();
        }
    }
}
