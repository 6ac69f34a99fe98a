package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code krun template ls|rm} over a template folder laid out as the template cache lays it out. */
class TemplateCommandTest {
    static final String A = "aaaa1111" + "0".repeat(56);
    static final String B = "aaaa2222" + "0".repeat(56);
    static final String C = "cccc3333" + "0".repeat(56);

    @TempDir
    Path folder;
    String before;
    StringWriter out;
    StringWriter err;

    @BeforeEach
    void setUp() throws IOException {
        before = System.getProperty("krun.templates");
        System.setProperty("krun.templates", folder.toString());
        template(A, "512 MiB, 1 vCPU, devices [virtio-console]", Instant.now().minusSeconds(3 * 3600));
        template(B, "256 MiB, 2 vCPU, devices [virtio-fs /dev/root]", Instant.now().minusSeconds(600));
        template(C, "128 MiB, 1 vCPU, devices []", Instant.now());
        Files.createDirectory(folder.resolve(".staging-1234")); // a run making one now: not listed, not removed
    }

    @AfterEach
    void tearDown() {
        if (before == null) {
            System.clearProperty("krun.templates");
        } else {
            System.setProperty("krun.templates", before);
        }
    }

    private void template(String key, String shape, Instant used) throws IOException {
        Path dir = Files.createDirectory(folder.resolve(key));
        Files.writeString(dir.resolve("key"), "format: krun-template-1\nbackend: kvm\nshape: " + shape + "\n");
        Files.write(dir.resolve("ram"), new byte[4096]);
        Files.write(dir.resolve("state"), new byte[16]);
        Files.setLastModifiedTime(Files.createFile(dir.resolve("used")), FileTime.from(used));
    }

    private int krun(String... args) {
        out = new StringWriter();
        err = new StringWriter();
        return KrunCli.execute(null, args, new PrintWriter(out), new PrintWriter(err));
    }

    private List<String> kept() throws IOException {
        try (var s = Files.list(folder)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> !n.startsWith(".")).sorted().toList();
        }
    }

    @Test
    void lsListsTheTemplatesMostRecentlyUsedFirstWithTheirShapes() {
        assertEquals(0, krun("template", "ls"), err.toString());
        List<String> lines = out.toString().lines().toList();
        assertEquals(3, lines.size(), out.toString());
        assertTrue(lines.get(0).startsWith("cccc33330000  just now"), lines.get(0));
        assertTrue(lines.get(0).endsWith("128 MiB, 1 vCPU, devices []"), lines.get(0));
        assertTrue(lines.get(1).startsWith("aaaa22220000  10 min ago"), lines.get(1));
        assertTrue(lines.get(2).startsWith("aaaa11110000  180 min ago") || lines.get(2).startsWith("aaaa11110000  3 h ago"),
                lines.get(2));
        assertEquals("", err.toString());
    }

    @Test
    void rmRemovesByAUniqueBeginningOfTheKeyAndAllRemovesEveryOne() throws IOException {
        assertEquals(0, krun("template", "rm", "cccc"), err.toString());
        assertEquals("removed cccc33330000", out.toString().strip());
        assertEquals(List.of(A, B), kept());

        assertEquals(1, krun("template", "rm", "aaaa"));
        assertEquals("krun: 'aaaa' begins 2 templates' keys: give more of it", err.toString().strip());
        assertEquals(List.of(A, B), kept(), "nothing removed on an error");

        assertEquals(1, krun("template", "rm", "dddd"));
        assertTrue(err.toString().startsWith("krun: no template dddd in " + folder), err.toString());

        assertEquals(2, krun("template", "rm", "xyz!"));
        assertTrue(err.toString().contains("is not a template key"), err.toString());
        assertEquals(2, krun("template", "rm"));
        assertTrue(err.toString().contains("missing KEY or --all"), err.toString());

        assertEquals(0, krun("template", "rm", "--all"), err.toString());
        assertEquals(List.of(), kept());
        assertTrue(Files.isDirectory(folder.resolve(".staging-1234")), "a template being made is left alone");
        assertEquals(0, krun("template", "ls"));
        assertEquals("no templates in " + folder, out.toString().strip());
    }

    @Test
    void withoutAFolderLsSaysSoAndAnInstallationWithoutOneIsAFailure() throws IOException {
        System.setProperty("krun.templates", folder.resolve("never-made").toString());
        assertEquals(0, krun("template", "ls"));
        assertEquals("no templates in " + folder.resolve("never-made"), out.toString().strip());
        assertFalse(Files.exists(folder.resolve("never-made")), "listing makes nothing");

        System.clearProperty("krun.templates");
        assertEquals(1, krun("template", "ls"));
        assertEquals("krun: this installation names no template folder (system property krun.templates)",
                err.toString().strip());
        assertEquals(2, krun("template"));
        assertTrue(err.toString().startsWith("krun: missing a command: ls or rm"), err.toString());
    }
}
