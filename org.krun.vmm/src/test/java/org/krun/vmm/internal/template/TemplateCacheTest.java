package org.krun.vmm.internal.template;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TemplateCacheTest {
    @TempDir
    Path root;

    private static String key(int n) {
        return new TemplateKey().add("n", Integer.toString(n)).digest();
    }

    private Path make(TemplateCache cache, String key, String ram) throws Exception {
        Path staged = cache.stage();
        Files.writeString(staged.resolve("ram"), ram);
        return cache.commit(key, staged, "n: " + key + "\n");
    }

    /** Sets a template's last use {@code secondsAgo} back: file times are too coarse to order uses made in one test. */
    private void usedAgo(String key, int secondsAgo) throws Exception {
        Files.setLastModifiedTime(root.resolve(key).resolve(TemplateCache.USED_FILE),
                FileTime.fromMillis(System.currentTimeMillis() - secondsAgo * 1000L));
    }

    @Test
    void aMissingTemplateIsNotFound() {
        assertTrue(new TemplateCache(root, 2).lookup(key(1)).isEmpty());
    }

    @Test
    void aCommittedTemplateIsFoundWithItsFilesAndKey() throws Exception {
        TemplateCache cache = new TemplateCache(root, 2);
        Path dir = make(cache, key(1), "one");
        assertEquals(dir, cache.lookup(key(1)).orElseThrow());
        assertEquals("one", Files.readString(dir.resolve("ram")));
        assertTrue(Files.readString(dir.resolve(TemplateCache.KEY_FILE)).contains(key(1)));
    }

    @Test
    void aHalfWrittenTemplateIsNeverFound() throws Exception {
        TemplateCache cache = new TemplateCache(root, 2);
        Path staged = cache.stage();
        Files.writeString(staged.resolve("ram"), "partial");
        assertTrue(cache.lookup(key(1)).isEmpty());
        assertEquals(List.of(), cache.keys());
        cache.discard(staged);
        assertFalse(Files.exists(staged));
    }

    @Test
    void theFirstOfTwoRacingTemplatesWins() throws Exception {
        TemplateCache cache = new TemplateCache(root, 2);
        Path first = cache.stage();
        Path second = cache.stage();
        Files.writeString(first.resolve("ram"), "first");
        Files.writeString(second.resolve("ram"), "second");
        Path a = cache.commit(key(1), first, "first");
        Path b = cache.commit(key(1), second, "second");
        assertEquals(a, b);
        assertEquals("first", Files.readString(a.resolve("ram")));
        assertFalse(Files.exists(second));
    }

    @Test
    void theLeastRecentlyUsedGoBeyondTheBound() throws Exception {
        TemplateCache cache = new TemplateCache(root, 2);
        make(cache, key(1), "1");
        usedAgo(key(1), 30);
        make(cache, key(2), "2");
        usedAgo(key(2), 20);
        cache.lookup(key(1)); // used now: key 2 is the oldest
        make(cache, key(3), "3");
        assertEquals(List.of(key(3), key(1)).stream().sorted().toList(), cache.keys().stream().sorted().toList());
        assertTrue(cache.lookup(key(2)).isEmpty());
    }

    @Test
    void aRemovedTemplateIsGoneAndItsOpenFilesStayReadable() throws Exception {
        TemplateCache cache = new TemplateCache(root, 2);
        Path dir = make(cache, key(1), "mapped");
        try (var ch = java.nio.channels.FileChannel.open(dir.resolve("ram"))) {
            cache.remove(key(1));
            assertTrue(cache.lookup(key(1)).isEmpty());
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(6);
            ch.read(b, 0);
            assertEquals("mapped", new String(b.array()));
        }
    }

    @Test
    void onlyKeysNameTemplates() {
        TemplateCache cache = new TemplateCache(root, 2);
        assertThrows(IllegalArgumentException.class, () -> cache.lookup("../etc"));
        assertThrows(IllegalArgumentException.class, () -> new TemplateCache(root, 0));
    }
}
