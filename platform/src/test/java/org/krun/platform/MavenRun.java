package org.krun.platform;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * Runs commands the way a developer of this repository would: the Maven that runs this build (its home,
 * {@code krun.maven.home}) with this build's local repository ({@code krun.repo.local}), and JDK 25.
 */
final class MavenRun {
    /** The repository's root folder. */
    static final Path ROOT = Path.of(System.getProperty("krun.root")).toAbsolutePath().normalize();
    static final String REPO_LOCAL = "-Dmaven.repo.local=" + System.getProperty("krun.repo.local");
    private static final Path MAVEN_BIN = Path.of(System.getProperty("krun.maven.home"), "bin");
    private static final long LIMIT_MINUTES = 10;

    /** What a command printed (stdout and stderr together) and its exit status. */
    record Result(int status, String output) {
        @Override
        public String toString() {
            return "exit status " + status + ", output:\n" + output;
        }
    }

    private MavenRun() {
    }

    /** {@code mvn -B -o -Dmaven.repo.local=... ARGS} in {@code dir}. */
    static Result mvn(Path dir, String... args) {
        List<String> cmd = new ArrayList<>(List.of(MAVEN_BIN.resolve("mvn").toString(), "-B", "-o", REPO_LOCAL));
        cmd.addAll(List.of(args));
        return run(dir, cmd);
    }

    /** Any command, with this Maven first on the PATH (scripts call {@code mvn}). */
    static Result run(Path dir, List<String> cmd) {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        pb.environment().put("JAVA_HOME", System.getProperty("java.home"));
        pb.environment().put("PATH", MAVEN_BIN + ":" + pb.environment().getOrDefault("PATH", "/usr/bin:/bin"));
        try {
            Path log = Files.createTempFile("krun-platform-", ".log");
            try {
                Process p = pb.redirectOutput(log.toFile()).start();
                p.getOutputStream().close();
                if (!p.waitFor(LIMIT_MINUTES, TimeUnit.MINUTES)) {
                    p.destroyForcibly();
                    throw new AssertionError(String.join(" ", cmd) + " did not finish:\n" + Files.readString(log));
                }
                return new Result(p.exitValue(), Files.readString(log, StandardCharsets.UTF_8));
            } finally {
                Files.deleteIfExists(log);
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new AssertionError(e);
        }
    }

    /** Copies the folder {@code from} (with hidden files, such as .mvn) to {@code to}. */
    static void copyTree(Path from, Path to) throws IOException {
        try (Stream<Path> files = Files.walk(from)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Path target = to.resolve(from.relativize(f).toString());
                if (Files.isDirectory(f)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(f, target, StandardCopyOption.COPY_ATTRIBUTES);
                }
            }
        }
    }

    /** Replaces the one occurrence of {@code old} in a text file, failing if there is none. */
    static void replace(Path file, String old, String replacement) throws IOException {
        String text = Files.readString(file);
        if (!text.contains(old)) {
            throw new AssertionError(file + " does not contain '" + old + "'");
        }
        Files.writeString(file, text.replace(old, replacement));
    }
}
