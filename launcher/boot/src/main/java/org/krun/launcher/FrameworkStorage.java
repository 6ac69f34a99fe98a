package org.krun.launcher;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.FileLock;
import java.nio.channels.OverlappingFileLockException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.DirectoryStream;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermission;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Comparator;
import java.util.Map;
import java.util.Set;
import java.util.stream.Stream;

/**
 * The framework storage of one krun process: {@code BASE/felix-PID/framework}, where BASE is
 * {@code $XDG_RUNTIME_DIR/krun} or else {@code ${TMPDIR:-/tmp}/krun-$USER}, both only for their owner (0700).
 *
 * <p>Each folder holds a file {@value #LOCK} that its process keeps locked ({@link FileChannel#lock()}) for as
 * long as it lives. A folder whose lock can be taken therefore belongs to a process that is gone, even if its
 * pid has been reused since; every krun removes such folders before it makes its own, so a run killed with
 * SIGKILL leaves its folder only until the next one. A folder appears under its {@code felix-} name only with
 * its lock already held: it is made under a temporary name and renamed, so no run mistakes a folder being made
 * for a dead one.
 */
final class FrameworkStorage implements AutoCloseable {
    static final String LOCK = "lock";
    /** Felix's own folder inside: Felix empties (and recreates) its storage at its first init, lock file and all. */
    static final String FRAMEWORK = "framework";
    static final String PREFIX = "felix-";
    private static final String MAKING = "making-";
    private static final Set<PosixFilePermission> OWNER_ONLY = PosixFilePermissions.fromString("rwx------");

    private final Path dir;
    private final FileChannel lockChannel;
    private boolean closed;

    private FrameworkStorage(Path dir, FileChannel lockChannel) {
        this.dir = dir;
        this.lockChannel = lockChannel;
    }

    /** The folder under which every krun of this user keeps its framework storage. */
    static Path base(Map<String, String> env) {
        String runtime = env.get("XDG_RUNTIME_DIR");
        if (runtime != null && Path.of(runtime).isAbsolute() && Files.isDirectory(Path.of(runtime))) {
            return Path.of(runtime, "krun");
        }
        String tmp = env.get("TMPDIR");
        Path tmpDir = Path.of(tmp != null && !tmp.isBlank() ? tmp : "/tmp");
        return tmpDir.resolve("krun-" + System.getProperty("user.name"));
    }

    /** Removes the storage of dead runs under {@code base}, then makes and locks this process's own. */
    static FrameworkStorage create(Path base) throws IOException {
        ensurePrivateFolder(base);
        removeDead(base);
        Path making = Files.createTempDirectory(base, MAKING);
        FileChannel channel = FileChannel.open(making.resolve(LOCK), StandardOpenOption.CREATE_NEW,
                StandardOpenOption.WRITE);
        try {
            channel.lock();
            long pid = ProcessHandle.current().pid();
            for (int n = 0;; n++) {
                Path dir = base.resolve(PREFIX + pid + (n == 0 ? "" : "-" + n));
                try {
                    Files.move(making, dir, StandardCopyOption.ATOMIC_MOVE);
                    return new FrameworkStorage(dir, channel);
                } catch (FileAlreadyExistsException | DirectoryNotEmptyException e) {
                    // a live process of another pid namespace with the same pid, sharing this folder: next name
                    if (n > 100) {
                        throw e;
                    }
                }
            }
        } catch (IOException | RuntimeException e) {
            channel.close();
            deleteTree(making);
            throw e;
        }
    }

    /** Removes every {@code felix-*} folder under {@code base} whose lock no process holds; returns how many. */
    static int removeDead(Path base) throws IOException {
        int removed = 0;
        try (DirectoryStream<Path> entries = Files.newDirectoryStream(base, PREFIX + "*")) {
            for (Path dir : entries) {
                if (removeIfDead(dir)) {
                    removed++;
                }
            }
        }
        return removed;
    }

    private static boolean removeIfDead(Path dir) {
        if (!Files.isDirectory(dir, LinkOption.NOFOLLOW_LINKS)) {
            return false;
        }
        Path lock = dir.resolve(LOCK);
        if (!Files.isRegularFile(lock, LinkOption.NOFOLLOW_LINKS)) {
            return false; // not made by this class: leave it
        }
        try (FileChannel channel = FileChannel.open(lock, StandardOpenOption.WRITE)) {
            FileLock held;
            try {
                held = channel.tryLock();
            } catch (OverlappingFileLockException e) {
                return false; // this very process holds it
            }
            if (held == null) {
                return false; // its process is alive
            }
            deleteTree(dir);
            return true;
        } catch (IOException e) {
            return false; // gone meanwhile, or not ours to open: leave it
        }
    }

    /** Creates {@code base} for its owner only, or checks that an existing one is a folder of ours, not a link. */
    private static void ensurePrivateFolder(Path base) throws IOException {
        if (!Files.exists(base, LinkOption.NOFOLLOW_LINKS)) {
            Files.createDirectories(base.getParent());
            try {
                Files.createDirectory(base, PosixFilePermissions.asFileAttribute(OWNER_ONLY));
            } catch (FileAlreadyExistsException e) {
                // made by a krun starting at the same time: checked below
            }
        }
        if (!Files.isDirectory(base, LinkOption.NOFOLLOW_LINKS)) {
            throw new IOException(base + " is not a folder");
        }
        // The owner of /proc/self is this process's user, with or without a name in the password database.
        Object me = Files.getAttribute(Path.of("/proc/self"), "unix:uid");
        Object owner = Files.getAttribute(base, "unix:uid", LinkOption.NOFOLLOW_LINKS);
        if (!owner.equals(me)) {
            throw new IOException(base + " belongs to uid " + owner + ", not to this user (uid " + me
                    + "); set XDG_RUNTIME_DIR or TMPDIR to a folder of your own");
        }
        if (!Files.getPosixFilePermissions(base, LinkOption.NOFOLLOW_LINKS).equals(OWNER_ONLY)) {
            Files.setPosixFilePermissions(base, OWNER_ONLY);
        }
    }

    /** This run's folder, {@code felix-PID}. */
    Path dir() {
        return dir;
    }

    /** The framework's storage folder (Felix's {@code org.osgi.framework.storage}), inside {@link #dir()}. */
    Path frameworkDir() {
        return dir.resolve(FRAMEWORK);
    }

    /** Deletes the folder, then releases its lock; idempotent, so both the normal end and a shutdown hook call it. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        deleteTree(dir);
        try {
            lockChannel.close();
        } catch (IOException e) {
            // released by the process's end anyway
        }
    }

    private static void deleteTree(Path dir) {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
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
