package org.krun.vmm.internal.template;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;
import java.util.regex.Pattern;

/**
 * The SHA-256 of large files the template key names (the kernel), remembered by the file's path and its stamps
 * (device, inode, size, modification and status-change times, to the nanosecond), so that a run does not read and
 * hash 15 MB of vmlinux every time: a kernel rebuilt, copied over or written in place has another inode, size or
 * change time (the kernel sets the status-change time on every write; no one can set it back), and is hashed
 * afresh. A file changed less than {@link #SETTLE} ago is not remembered: file times advance in coarse ticks, so a
 * second write within the tick of the first could leave every stamp as it was (git's "racy" entries); one changed
 * before that and written again afterwards gets a later change time. One small file per (path, stamps) in a
 * directory of its own, at most {@link #MAX_ENTRIES}, the least recently written removed first; a directory that
 * cannot be written means hashing every time.
 */
public final class FileDigests {
    /** How many remembered digests a directory keeps. */
    public static final int MAX_ENTRIES = 16;
    private static final Pattern HEX64 = Pattern.compile("[0-9a-f]{64}");
    private static final String TEMP_PREFIX = ".tmp-";

    /** How long ago a file must have changed for its digest to be remembered. */
    public static final Duration SETTLE = Duration.ofSeconds(2);

    private final Path dir;
    private final Duration settle;
    /** Digests hashed by {@link #digest} and not yet written by {@link #remember()}: entry, digest. */
    private final Map<Path, String> pending = new LinkedHashMap<>();

    public FileDigests(Path dir) {
        this(dir, SETTLE);
    }

    FileDigests(Path dir, Duration settle) {
        this.dir = dir;
        this.settle = settle;
    }

    /** The SHA-256 of {@code file}'s contents, as 64 hex digits: remembered, or read, hashed and remembered. */
    public String of(Path file) throws IOException {
        String digest = digest(file);
        remember();
        return digest;
    }

    /**
     * The SHA-256 of {@code file}'s contents, as 64 hex digits: remembered, or read and hashed, to be remembered
     * by {@link #remember()} once the caller knows the file is worth it (a kernel that booted or restored: a run
     * that fails on bad input leaves nothing in the cache).
     */
    public String digest(Path file) throws IOException {
        String stamp = stamp(file);
        Path entry = dir.resolve(TemplateKey.digestOf((file.toAbsolutePath() + "\n" + stamp).getBytes(StandardCharsets.UTF_8)));
        String known = read(entry);
        if (known != null) {
            return known;
        }
        long started = System.currentTimeMillis();
        String digest = TemplateKey.digestOf(file);
        // not changed while it was read, and settled: the digest is the stamp's for good
        if (stamp.equals(stamp(file)) && changedMillis(file) < started - settle.toMillis()) {
            synchronized (pending) {
                pending.put(entry, digest);
            }
        }
        return digest;
    }

    /** Writes the digests {@link #digest} hashed since the last call (a directory that cannot be written: none). */
    public void remember() {
        Map<Path, String> now;
        synchronized (pending) {
            now = new LinkedHashMap<>(pending);
            pending.clear();
        }
        now.forEach(this::remember);
    }

    private static long changedMillis(Path file) throws IOException {
        Map<String, Object> a = Files.readAttributes(file, "unix:lastModifiedTime,ctime");
        return Math.max(((FileTime) a.get("lastModifiedTime")).toMillis(), ((FileTime) a.get("ctime")).toMillis());
    }

    private static String stamp(Path file) throws IOException {
        Map<String, Object> a = Files.readAttributes(file, "unix:dev,ino,size,lastModifiedTime,ctime");
        return a.get("dev") + ":" + a.get("ino") + ":" + a.get("size") + ":"
                + ((FileTime) a.get("lastModifiedTime")).to(TimeUnit.NANOSECONDS) + ":"
                + ((FileTime) a.get("ctime")).to(TimeUnit.NANOSECONDS);
    }

    /** A remembered digest, or null when there is none or it is not 64 hex digits (then it is made again). */
    private static String read(Path entry) {
        try (InputStream in = Files.newInputStream(entry)) {
            String s = new String(in.readNBytes(65), StandardCharsets.US_ASCII);
            return HEX64.matcher(s).matches() ? s : null;
        } catch (NoSuchFileException e) {
            return null;
        } catch (IOException e) {
            return null;
        }
    }

    /** Writes the entry whole (a temporary file renamed over it), then removes the oldest beyond the bound. */
    private void remember(Path entry, String digest) {
        Path tmp = dir.resolve(TEMP_PREFIX + UUID.randomUUID());
        try {
            Files.createDirectories(dir);
            Files.writeString(tmp, digest, StandardCharsets.US_ASCII);
            Files.move(tmp, entry, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            try {
                Files.deleteIfExists(tmp);
            } catch (IOException ignored) {
                // a cache that cannot be written: every run hashes
            }
            return;
        }
        trim();
    }

    private void trim() {
        List<Path> entries = new ArrayList<>();
        try (DirectoryStream<Path> s = Files.newDirectoryStream(dir)) {
            for (Path p : s) {
                entries.add(p);
                if (entries.size() > 4 * MAX_ENTRIES) {
                    break; // enough to trim by: the rest go on later writes
                }
            }
        } catch (IOException e) {
            return;
        }
        if (entries.size() <= MAX_ENTRIES) {
            return;
        }
        entries.sort(Comparator.comparing(FileDigests::modified));
        for (Path p : entries.subList(0, entries.size() - MAX_ENTRIES)) {
            try {
                Files.deleteIfExists(p);
            } catch (IOException e) {
                // left for a later write
            }
        }
    }

    private static FileTime modified(Path p) {
        try {
            return Files.getLastModifiedTime(p);
        } catch (IOException e) {
            return FileTime.fromMillis(0);
        }
    }
}
