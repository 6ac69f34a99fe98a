package org.krun.vmm.internal.template;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Optional;
import java.util.UUID;
import java.util.regex.Pattern;

/**
 * Booted templates on disk, one directory per key ({@code <root>/<key digest>/}, holding a snapshot's
 * {@code ram} and {@code state} and a {@code key} file describing it). A template is written into a staging
 * directory and renamed into place whole, so a reader sees a complete template or none; the first of two
 * runs racing to make one wins and the other's is dropped. At most {@code maxTemplates} are kept: the least
 * recently used go first (a use touches the directory's {@code used} file). Removing a template while VMs
 * restored from it run is safe: they map its RAM file, which lives on until they unmap it.
 */
public final class TemplateCache {
    /** The default bound on templates kept: each is about as large as the guest RAM the boot touched. */
    public static final int DEFAULT_MAX_TEMPLATES = 8;
    static final String KEY_FILE = "key";
    static final String USED_FILE = "used";
    private static final Pattern KEY = Pattern.compile("[0-9a-f]{64}");
    private static final String STAGING_PREFIX = ".staging-";
    private static final String DOOMED_PREFIX = ".doomed-";

    private final Path root;
    private final int maxTemplates;

    public TemplateCache(Path root, int maxTemplates) {
        if (maxTemplates < 1) {
            throw new IllegalArgumentException("a template cache keeps at least 1 template, not " + maxTemplates);
        }
        this.root = root;
        this.maxTemplates = maxTemplates;
    }

    public Path root() {
        return root;
    }

    /** The template of {@code key}, marked as used now; empty if there is none. */
    public Optional<Path> lookup(String key) {
        Path dir = root.resolve(checked(key));
        if (!Files.isRegularFile(dir.resolve(KEY_FILE))) {
            return Optional.empty();
        }
        touch(dir);
        return Optional.of(dir);
    }

    /** A new empty directory to write a template into, then {@link #commit} or {@link #discard}. */
    public Path stage() throws IOException {
        Files.createDirectories(root);
        return Files.createDirectory(root.resolve(STAGING_PREFIX + UUID.randomUUID()));
    }

    /**
     * Puts the template written into {@code staged} in place as {@code key}'s, and evicts the least recently
     * used beyond the bound. Returns the template's directory (another run's, if it got there first).
     */
    public Path commit(String key, Path staged, String description) throws IOException {
        Path dir = root.resolve(checked(key));
        Files.writeString(staged.resolve(KEY_FILE), description, StandardCharsets.UTF_8);
        touch(staged);
        try {
            Files.move(staged, dir, StandardCopyOption.ATOMIC_MOVE);
        } catch (FileSystemException e) {
            // rename(2) onto a template already there fails (ENOTEMPTY, which Java reports as a plain
            // FileSystemException): another run made this key's template first, and ours is dropped.
            discard(staged);
            if (!Files.isRegularFile(dir.resolve(KEY_FILE))) {
                throw e;
            }
        }
        evict();
        return dir;
    }

    /** Removes a staging directory (a template that failed half way). */
    public void discard(Path staged) {
        deleteTree(staged);
    }

    /** Removes {@code key}'s template (one found corrupt or refused); the next run makes a new one. */
    public void remove(String key) {
        Path dir = root.resolve(checked(key));
        Path doomed = root.resolve(DOOMED_PREFIX + UUID.randomUUID());
        try {
            Files.move(dir, doomed, StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            return; // gone already
        }
        deleteTree(doomed);
    }

    /** The keys of the templates kept, most recently used first. */
    public List<String> keys() {
        List<Path> dirs = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(root)) {
            for (Path p : s) {
                if (KEY.matcher(p.getFileName().toString()).matches() && Files.isRegularFile(p.resolve(KEY_FILE))) {
                    dirs.add(p);
                }
            }
        } catch (IOException e) {
            return List.of();
        }
        dirs.sort(Comparator.comparing(TemplateCache::lastUsed).reversed());
        return dirs.stream().map(p -> p.getFileName().toString()).toList();
    }

    private void evict() {
        List<String> keys = keys();
        for (int i = maxTemplates; i < keys.size(); i++) {
            remove(keys.get(i));
        }
    }

    private static FileTime lastUsed(Path dir) {
        try {
            return Files.getLastModifiedTime(dir.resolve(USED_FILE));
        } catch (IOException e) {
            return FileTime.fromMillis(0);
        }
    }

    private static void touch(Path dir) {
        Path used = dir.resolve(USED_FILE);
        try {
            if (!Files.exists(used)) {
                Files.createFile(used);
            }
            Files.setLastModifiedTime(used, FileTime.from(Instant.now()));
        } catch (IOException e) {
            // only the eviction order suffers
        }
    }

    private static String checked(String key) {
        if (!KEY.matcher(key).matches()) {
            throw new IllegalArgumentException("not a template key: " + key);
        }
        return key;
    }

    private static void deleteTree(Path dir) {
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                Files.deleteIfExists(p);
            }
            Files.deleteIfExists(dir);
        } catch (IOException e) {
            // a leftover staging directory is harmless; the next eviction does not see it
        }
    }
}
