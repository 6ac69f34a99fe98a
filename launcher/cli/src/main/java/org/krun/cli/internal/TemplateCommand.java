package org.krun.cli.internal;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.regex.Pattern;

import org.krun.api.KrunException;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/**
 * {@code krun template ls|rm}: the booted templates {@code krun run} restores (docs/templates.md), in the
 * folder the launcher names ({@code krun.templates}, {@code ~/.cache/krun/templates}): one folder per key,
 * named by its 64 hex digits, holding {@code key} (what the key was made of, readable), {@code used} (its
 * modification time is the last use), {@code state} and {@code ram}. Removing a template while VMs
 * restored from it run is safe: they keep its RAM file mapped until they stop.
 */
@Command(name = "template", mixinStandardHelpOptions = true,
        description = "Lists or removes the booted templates that 'krun run' restores instead of booting.",
        subcommands = {TemplateCommand.Ls.class, TemplateCommand.Rm.class})
final class TemplateCommand implements Callable<Integer> {
    private static final Pattern KEY = Pattern.compile("[0-9a-f]{64}");

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing a command: ls or rm");
    }

    /** The folder the launcher names; an installation without one is broken, not misused. */
    static Path folder() {
        String dir = System.getProperty("krun.templates");
        if (dir == null || dir.isEmpty()) {
            throw new KrunException("this installation names no template folder (system property krun.templates)");
        }
        return Path.of(dir).toAbsolutePath();
    }

    /** A kept template: its key, when it was last used, and the shape it was booted with. */
    record Template(Path dir, String key, FileTime used, String shape) {
    }

    /** The templates in {@code folder}, most recently used first; none when the folder does not exist. */
    static List<Template> list(Path folder) throws IOException {
        List<Template> all = new ArrayList<>();
        if (!Files.isDirectory(folder)) {
            return all;
        }
        try (DirectoryStream<Path> s = Files.newDirectoryStream(folder)) {
            for (Path dir : s) {
                String key = dir.getFileName().toString();
                Path keyFile = dir.resolve("key");
                if (!KEY.matcher(key).matches() || !Files.isRegularFile(keyFile)) {
                    continue; // staging and doomed folders, strangers
                }
                String shape = "";
                try {
                    for (String line : Files.readAllLines(keyFile)) {
                        if (line.startsWith("shape: ")) {
                            shape = line.substring(7);
                        }
                    }
                } catch (IOException e) {
                    continue; // removed meanwhile
                }
                FileTime used;
                try {
                    used = Files.getLastModifiedTime(dir.resolve("used"));
                } catch (IOException e) {
                    used = FileTime.fromMillis(0);
                }
                all.add(new Template(dir, key, used, shape));
            }
        }
        all.sort(Comparator.comparing(Template::used).reversed());
        return all;
    }

    /** Takes a template's folder out of the cache at once (a rename), then deletes it. */
    static void remove(Template t) throws IOException {
        Path doomed = t.dir().resolveSibling(".doomed-" + UUID.randomUUID());
        Files.move(t.dir(), doomed, StandardCopyOption.ATOMIC_MOVE);
        try (DirectoryStream<Path> s = Files.newDirectoryStream(doomed)) {
            for (Path p : s) {
                Files.deleteIfExists(p);
            }
        }
        Files.delete(doomed);
    }

    static String ago(FileTime t, Instant now) {
        Duration d = Duration.between(t.toInstant(), now);
        if (d.isNegative() || d.toSeconds() < 60) {
            return "just now";
        }
        if (d.toMinutes() < 120) {
            return d.toMinutes() + " min ago";
        }
        if (d.toHours() < 48) {
            return d.toHours() + " h ago";
        }
        return d.toDays() + " days ago";
    }

    @Command(name = "ls", mixinStandardHelpOptions = true,
            description = "Lists the templates, most recently used first: key (its first 12 digits), last use, shape.")
    static final class Ls implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Override
        public Integer call() throws IOException {
            PrintWriter out = spec.commandLine().getOut();
            Path folder = folder();
            List<Template> all = list(folder);
            if (all.isEmpty()) {
                out.println("no templates in " + folder);
            }
            Instant now = Instant.now();
            for (Template t : all) {
                out.printf("%s  %-12s  %s%n", t.key().substring(0, 12), ago(t.used(), now), t.shape());
            }
            out.flush();
            return 0;
        }
    }

    @Command(name = "rm", mixinStandardHelpOptions = true,
            description = "Removes templates by key (a unique beginning of it, as 'krun template ls' shows) or all; "
                    + "the next run of their shape boots and makes a new one.")
    static final class Rm implements Callable<Integer> {
        @Spec
        CommandSpec spec;

        @Option(names = "--all", description = "Remove every template.")
        boolean all;

        @Parameters(paramLabel = "KEY", arity = "0..*", description = "A template's key, or a unique beginning of it.")
        List<String> keys = new ArrayList<>();

        @Override
        public Integer call() throws IOException {
            if (all == !keys.isEmpty()) {
                throw new CommandLine.ParameterException(spec.commandLine(), all ? "--all takes no KEY" : "missing KEY or --all");
            }
            Path folder = folder();
            List<Template> kept = list(folder);
            List<Template> doomed = new ArrayList<>();
            if (all) {
                doomed.addAll(kept);
            }
            for (String k : keys) {
                if (!k.matches("[0-9a-f]{4,64}")) {
                    throw new CommandLine.ParameterException(spec.commandLine(),
                            "'" + k + "' is not a template key (4 to 64 hex digits)");
                }
                List<Template> match = kept.stream().filter(t -> t.key().startsWith(k)).toList();
                if (match.isEmpty()) {
                    throw new KrunException("no template " + k + " in " + folder);
                }
                if (match.size() > 1) {
                    throw new KrunException("'" + k + "' begins " + match.size() + " templates' keys: give more of it");
                }
                if (!doomed.contains(match.get(0))) {
                    doomed.add(match.get(0));
                }
            }
            PrintWriter out = spec.commandLine().getOut();
            for (Template t : doomed) {
                remove(t);
                out.println("removed " + t.key().substring(0, 12));
            }
            out.flush();
            return 0;
        }
    }
}
