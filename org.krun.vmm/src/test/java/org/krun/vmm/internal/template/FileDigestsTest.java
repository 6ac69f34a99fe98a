package org.krun.vmm.internal.template;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.List;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FileDigestsTest {
    private static final Duration SETTLE = Duration.ofMillis(50);

    @TempDir
    Path dir;

    private Path settled(String name, byte[] contents) throws Exception {
        Path f = dir.resolve(name);
        Files.write(f, contents);
        Thread.sleep(2 * SETTLE.toMillis()); // older than the settle time: its digest may be remembered
        return f;
    }

    private List<Path> entries(Path cache) throws Exception {
        try (Stream<Path> s = Files.list(cache)) {
            return s.toList();
        }
    }

    @Test
    void givesTheDigestOfTheContents() throws Exception {
        Path f = settled("vmlinux", new byte[] {1, 2, 3});
        FileDigests digests = new FileDigests(dir.resolve("cache"), SETTLE);
        assertEquals(TemplateKey.digestOf(f), digests.of(f));
        assertEquals(TemplateKey.digestOf(f), digests.of(f), "remembered, the same");
    }

    @Test
    void aDigestIsWrittenOnlyWhenTheCallerSaysItIsWorthRemembering() throws Exception {
        Path f = settled("vmlinux", new byte[] {1, 2, 3});
        Path cache = dir.resolve("cache");
        FileDigests digests = new FileDigests(cache, SETTLE);
        assertEquals(TemplateKey.digestOf(f), digests.digest(f));
        assertTrue(Files.notExists(cache), "a run that fails after hashing (a kernel that is not one) leaves nothing");
        digests.remember();
        assertEquals(1, entries(cache).size());
        digests.remember();
        assertEquals(1, entries(cache).size(), "written once");
    }

    @Test
    void aRememberedDigestIsUsedWhileTheFileIsUnchanged() throws Exception {
        Path f = settled("vmlinux", new byte[] {1, 2, 3});
        Path cache = dir.resolve("cache");
        new FileDigests(cache, SETTLE).of(f);
        List<Path> e = entries(cache);
        assertEquals(1, e.size());
        String planted = "ab".repeat(32);
        Files.writeString(e.get(0), planted);
        assertEquals(planted, new FileDigests(cache, SETTLE).of(f), "the file was not read again");
    }

    @Test
    void aFileWrittenInPlaceWithItsSizeAndModificationTimeKeptIsHashedAgain() throws Exception {
        Path f = settled("vmlinux", new byte[] {1, 2, 3});
        Path cache = dir.resolve("cache");
        String before = new FileDigests(cache, SETTLE).of(f);
        FileTime mtime = Files.getLastModifiedTime(f);
        Thread.sleep(2 * SETTLE.toMillis());
        Files.write(f, new byte[] {1, 2, 4});
        Files.setLastModifiedTime(f, mtime);
        assertNotEquals(before, new FileDigests(cache, SETTLE).of(f));
        assertEquals(TemplateKey.digestOf(f), new FileDigests(cache, SETTLE).of(f));
    }

    @Test
    void aFileJustWrittenIsNotRemembered() throws Exception {
        Path f = dir.resolve("vmlinux");
        Files.write(f, new byte[] {1, 2, 3});
        Path cache = dir.resolve("cache");
        assertEquals(TemplateKey.digestOf(f), new FileDigests(cache, Duration.ofHours(1)).of(f));
        assertTrue(!Files.exists(cache) || entries(cache).isEmpty());
    }

    @Test
    void aGarbledEntryIsReplacedByTheRealDigest() throws Exception {
        Path f = settled("vmlinux", new byte[] {5});
        Path cache = dir.resolve("cache");
        new FileDigests(cache, SETTLE).of(f);
        Path entry = entries(cache).get(0);
        Files.writeString(entry, "not a digest");
        assertEquals(TemplateKey.digestOf(f), new FileDigests(cache, SETTLE).of(f));
        assertEquals(TemplateKey.digestOf(f), Files.readString(entry));
    }

    @Test
    void theDirectoryKeepsAtMostTheBound() throws Exception {
        Path cache = dir.resolve("cache");
        FileDigests digests = new FileDigests(cache, SETTLE);
        Path[] files = new Path[FileDigests.MAX_ENTRIES + 5];
        for (int i = 0; i < files.length; i++) {
            files[i] = dir.resolve("k" + i);
            Files.write(files[i], new byte[] {(byte) i});
        }
        Thread.sleep(2 * SETTLE.toMillis());
        for (Path f : files) {
            assertEquals(TemplateKey.digestOf(f), digests.of(f));
        }
        assertEquals(FileDigests.MAX_ENTRIES, entries(cache).size());
    }

    @Test
    void aCacheThatCannotBeWrittenStillGivesTheDigest() throws Exception {
        Path f = settled("vmlinux", new byte[] {7});
        Path notADir = dir.resolve("file");
        Files.writeString(notADir, "x");
        assertEquals(TemplateKey.digestOf(f), new FileDigests(notADir.resolve("cache"), SETTLE).of(f));
    }
}
