package org.krun.device.balloon.internal;

import java.io.IOException;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.util.Comparator;
import java.util.stream.Stream;

/**
 * A copy of krun's default busybox root with extra programs in {@code /bin}, in a temporary directory that
 * {@link #close()} deletes. Symbolic links (busybox's applets) are copied as links.
 */
final class TestRoot implements AutoCloseable {
    private final Path dir;

    private TestRoot(Path dir) {
        this.dir = dir;
    }

    static TestRoot of(Path rootfs, Path... programs) throws IOException {
        Path source = rootfs.toRealPath();
        Path dir = Files.createTempDirectory("krun-balloon-root-");
        TestRoot root = new TestRoot(dir);
        try {
            Files.walkFileTree(source, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult preVisitDirectory(Path d, BasicFileAttributes attrs) throws IOException {
                    Files.createDirectories(dir.resolve(source.relativize(d).toString()));
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFile(Path f, BasicFileAttributes attrs) throws IOException {
                    Files.copy(f, dir.resolve(source.relativize(f).toString()), LinkOption.NOFOLLOW_LINKS,
                            StandardCopyOption.COPY_ATTRIBUTES);
                    return FileVisitResult.CONTINUE;
                }
            });
            Files.createDirectories(dir.resolve("bin"));
            for (Path p : programs) {
                Files.copy(p, dir.resolve("bin").resolve(p.getFileName().toString()), StandardCopyOption.COPY_ATTRIBUTES);
            }
        } catch (IOException | RuntimeException e) {
            root.close();
            throw e;
        }
        return root;
    }

    Path path() {
        return dir;
    }

    @Override
    public void close() {
        try (Stream<Path> s = Files.walk(dir)) {
            s.sorted(Comparator.reverseOrder()).forEach(p -> {
                try {
                    Files.delete(p);
                } catch (IOException e) {
                    // best effort: a temporary directory
                }
            });
        } catch (IOException e) {
            // already gone
        }
    }
}
