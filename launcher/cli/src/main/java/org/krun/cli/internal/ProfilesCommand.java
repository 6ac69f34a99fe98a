package org.krun.cli.internal;

import java.io.IOException;
import java.io.PrintWriter;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

import picocli.CommandLine.Command;
import picocli.CommandLine.Spec;
import picocli.CommandLine.Model.CommandSpec;

/** {@code krun profiles}: the bundle profiles this installation has, what each is for and what it lacks. */
@Command(name = "profiles", mixinStandardHelpOptions = true,
        description = "Lists the bundle profiles (--profile NAME) of this installation.")
final class ProfilesCommand implements Callable<Integer> {

    @Spec
    CommandSpec spec;

    @Override
    public Integer call() throws IOException {
        PrintWriter out = spec.commandLine().getOut();
        Path export = Path.of(System.getProperty("krun.home", ".")).resolve("export");
        List<Path> dirs;
        try (Stream<Path> s = Files.list(export)) {
            dirs = s.filter(Files::isDirectory).sorted().toList();
        }
        String current = System.getProperty("krun.profile", "");
        for (Path dir : dirs) {
            String name = dir.getFileName().toString();
            Properties p = new Properties();
            Path bndrun = export.resolve(name + ".bndrun");
            if (Files.isRegularFile(bndrun)) {
                try (Reader r = Files.newBufferedReader(bndrun)) {
                    p.load(r);
                }
            }
            long bundles;
            try (Stream<Path> s = Files.list(dir)) {
                bundles = s.filter(f -> f.toString().endsWith(".jar")).count();
            }
            out.printf("%s%-8s %2d bundles  %s%n", name.equals(current) ? "*" : " ", name, bundles,
                    p.getProperty("krun.description", ""));
            String missing = p.getProperty("krun.missing", "");
            if (!missing.isBlank()) {
                out.printf("           lacks: %s%n", missing.replaceAll(";reason=\"[^\"]*\"", "").replaceAll("\\s+", " "));
            }
        }
        out.flush();
        return 0;
    }
}
