package org.krun.spi.virtio;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.stream.Stream;

/**
 * A fuzz target's scratch folder on the host: {@code NAME-PID-RANDOM} in a parent folder, made once per
 * process. A fuzzing JVM ends without running exit hooks (libFuzzer exits it), so {@code deleteOnExit} alone
 * left one folder behind per run; every call here first removes the folders of the same NAME whose process
 * is gone, so at most one folder per live process remains.
 */
public final class FuzzScratch {

    private FuzzScratch() {
    }

    /** A new folder {@code NAME-PID-...} in {@code parent}, after removing those of processes that are gone. */
    public static Path folder(Path parent, String name) throws IOException {
        removeStale(parent, name);
        Path dir = Files.createTempDirectory(parent, name + "-" + ProcessHandle.current().pid() + "-");
        dir.toFile().deleteOnExit(); // for a JVM that does end normally (JUnit's regression runs)
        return dir;
    }

    /** Removes the folders {@code NAME-PID-...} in {@code parent} whose process no longer runs. */
    static void removeStale(Path parent, String name) {
        String prefix = name + "-";
        try (Stream<Path> s = Files.list(parent)) {
            for (Path p : s.toList()) {
                String file = p.getFileName().toString();
                if (!file.startsWith(prefix)) {
                    continue;
                }
                int dash = file.indexOf('-', prefix.length());
                String pid = dash < 0 ? "" : file.substring(prefix.length(), dash);
                if (!pid.isEmpty() && pid.length() < 19 && pid.chars().allMatch(Character::isDigit)
                        && ProcessHandle.of(Long.parseLong(pid)).isEmpty()) {
                    deleteTree(p);
                }
            }
        } catch (IOException | RuntimeException e) {
            // best effort: a folder left is only untidy
        }
    }

    /** Deletes a tree without following links, making each folder listable and writable first. */
    public static void deleteTree(Path p) throws IOException {
        if (Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
            Files.setPosixFilePermissions(p, PosixFilePermissions.fromString("rwx------")); // before listing it
            try (Stream<Path> s = Files.list(p)) {
                for (Path child : s.toList()) {
                    deleteTree(child);
                }
            }
        }
        Files.delete(p);
    }
}
