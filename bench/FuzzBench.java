import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/**
 * bench/fuzz and scripts/fuzz-all.sh: finds every Jazzer {@code @FuzzTest} in the repository and fuzzes each
 * in a JVM of its own (Jazzer fuzzes one target per JVM), one after the other or {@code --jobs N} at a time
 * (each JVM fuzzes on one thread: CI, with the machine to itself, runs one per core), for a number of seconds
 * or of executions each, then prints per target: executions, time, executions per second, coverage
 * (libFuzzer's edges "cov" and features "ft", and the corpus size) and findings, with the host it ran on.
 *
 * <p>Each target runs in its module's directory, so its generated corpus stays in
 * {@code MODULE/.cifuzz-corpus} (reused by the next run) and a finding is written by Jazzer into the test
 * resources ({@code ...FuzzTestInputs/METHOD/crash-...}), where a plain {@code mvn test} replays it. Logs go to
 * {@code MODULE/target/fuzz/}. Exit status 1 when any target found something, failed or did not finish.
 *
 * Usage: java bench/FuzzBench.java REPO (--seconds N | --executions N) [--jobs N] [--maven ARG]... [FILTER]...
 * (a FILTER keeps the targets whose Class#method contains it)
 */
public class FuzzBench {

    record Target(Path module, String className, String method) {
        String name() {
            return className.substring(className.lastIndexOf('.') + 1) + "#" + method;
        }
    }

    record Result(Target target, long executions, long seconds, long perSecond, String coverage, long slowestSeconds,
            List<String> findings, Path log) {
    }

    private static final Pattern PACKAGE = Pattern.compile("^package\\s+([\\w.]+);", Pattern.MULTILINE);
    private static final Pattern FUZZ_METHOD =
            Pattern.compile("@FuzzTest\\b[^\\n]*\\n(?:\\s*@[^\\n]*\\n)*\\s*(?:public\\s+)?void\\s+(\\w+)\\s*\\(");
    private static final Pattern STATUS_LINE =
            Pattern.compile("^#(\\d+)\\s+\\w+\\s+cov: (\\d+) ft: (\\d+) corp: (\\d+)/(\\S+)", Pattern.MULTILINE);
    private static final Pattern DONE = Pattern.compile("^Done (\\d+) runs in (\\d+) second", Pattern.MULTILINE);
    private static final Pattern EXECUTED = Pattern.compile("stat::number_of_executed_units: (\\d+)");
    private static final Pattern PER_SECOND = Pattern.compile("stat::average_exec_per_sec: (\\d+)");
    private static final Pattern SLOWEST = Pattern.compile("stat::slowest_unit_time_sec: (\\d+)");

    public static void main(String[] args) throws Exception {
        Path repo = Path.of(args[0]).toAbsolutePath();
        long seconds = 0;
        long executions = 0;
        int jobs = 1;
        List<String> mavenArgs = new ArrayList<>();
        List<String> filters = new ArrayList<>();
        for (int i = 1; i < args.length; i++) {
            switch (args[i]) {
                case "--seconds" -> seconds = Long.parseLong(args[++i]);
                case "--executions" -> executions = Long.parseLong(args[++i]);
                case "--jobs" -> jobs = Integer.parseInt(args[++i]);
                case "--maven" -> mavenArgs.add(args[++i]);
                default -> filters.add(args[i]);
            }
        }
        List<Target> targets = discover(repo).stream()
                .filter(t -> filters.isEmpty() || filters.stream().anyMatch(f -> (t.className() + "#" + t.method()).contains(f)))
                .toList();
        if (jobs < 1) {
            System.err.println("fuzz: --jobs must be at least 1, not " + jobs);
            System.exit(2);
        }
        if (targets.isEmpty()) {
            System.err.println("fuzz: no @FuzzTest target matches " + filters);
            System.exit(1);
        }
        String budget = executions > 0 ? String.format(Locale.ROOT, "%,d executions", executions) : seconds + " s";
        System.out.printf("fuzz: %d targets, %s each, %s, on %s (%s, %d CPUs), Java %s%n", targets.size(),
                budget, jobs == 1 ? "one at a time" : jobs + " at a time", HostInfo.hostKind(), HostInfo.cpuModel(), Runtime.getRuntime().availableProcessors(),
                System.getProperty("java.version"));
        buildClassPaths(repo, targets, mavenArgs);
        Path launcher = compileLauncher(repo, targets.getFirst());

        // Each target's line as it finishes; the table below in the targets' order.
        List<java.util.concurrent.Future<Result>> running = new ArrayList<>();
        try (var lanes = java.util.concurrent.Executors.newFixedThreadPool(jobs)) {
            for (Target t : targets) {
                long budgetSeconds = seconds;
                long budgetExecutions = executions;
                running.add(lanes.submit(() -> {
                    Result r = run(repo, launcher, t, budgetSeconds, budgetExecutions);
                    synchronized (System.out) {
                        System.out.println(line(r));
                        for (String f : r.findings()) {
                            System.out.println("      " + f);
                        }
                    }
                    return r;
                }));
            }
        }
        List<Result> results = new ArrayList<>();
        for (var r : running) {
            results.add(r.get());
        }
        System.out.println();
        int width = results.stream().mapToInt(r -> label(repo, r).length()).max().orElse(10);
        System.out.printf("%-" + width + "s %14s %8s %9s  %-26s %9s  %s%n", "target", "executions", "seconds", "exec/s",
                "coverage", "slowest", "findings");
        long totalExecutions = 0;
        int found = 0;
        for (Result r : results) {
            System.out.printf(Locale.ROOT, "%-" + width + "s %,14d %8d %,9d  %-26s %7d s  %d%n", label(repo, r),
                    r.executions(), r.seconds(), r.perSecond(), r.coverage(), r.slowestSeconds(), r.findings().size());
            totalExecutions += r.executions();
            found += r.findings().isEmpty() ? 0 : 1;
        }
        System.out.printf(Locale.ROOT, "fuzz: %,d executions in all; %d of %d targets with findings%n", totalExecutions,
                found, results.size());
        System.exit(found == 0 ? 0 : 1);
    }

    private static String label(Path repo, Result r) {
        return repo.relativize(r.target().module()) + " " + r.target().name();
    }

    private static String line(Result r) {
        return String.format(Locale.ROOT, "fuzz: %s: %,d executions in %d s (%,d/s), %s, slowest input %d s, %s",
                r.target().name(), r.executions(), r.seconds(), r.perSecond(), r.coverage(), r.slowestSeconds(),
                r.findings().isEmpty() ? "no findings" : r.findings().size() + " FINDING(S), log " + r.log());
    }

    /** Every @FuzzTest method in the repository's test sources, by module. */
    static List<Target> discover(Path repo) throws IOException {
        List<Target> targets = new ArrayList<>();
        try (Stream<Path> files = Files.walk(repo)) {
            for (Path f : files.filter(p -> p.toString().endsWith("FuzzTest.java")).sorted().toList()) {
                String path = repo.relativize(f).toString();
                int src = path.indexOf("/src/test/java/");
                if (src < 0 || path.contains("/target/") || path.startsWith(".")) {
                    continue;
                }
                String text = Files.readString(f);
                Matcher pkg = PACKAGE.matcher(text);
                if (!pkg.find()) {
                    continue;
                }
                String className = pkg.group(1) + "." + f.getFileName().toString().replace(".java", "");
                Matcher m = FUZZ_METHOD.matcher(text);
                while (m.find()) {
                    targets.add(new Target(repo.resolve(path.substring(0, src)), className, m.group(1)));
                }
            }
        }
        return targets;
    }

    /**
     * Packages the targets' modules and what they need, and writes each module's test class path to
     * {@code target/fuzz-classpath.txt} (one Maven run: the reactor's own jars stand for its modules).
     */
    static void buildClassPaths(Path repo, List<Target> targets, List<String> mavenArgs) throws Exception {
        Set<String> modules = new LinkedHashSet<>();
        targets.forEach(t -> modules.add(repo.relativize(t.module()).toString()));
        List<String> cmd = new ArrayList<>(List.of("mvn", "-B", "-q", "-Dstyle.color=never", "-DskipTests", "-DskipITs",
                "package", "dependency:build-classpath", "-Dmdep.includeScope=test",
                "-Dmdep.outputFile=target/fuzz-classpath.txt", "-pl", String.join(",", modules), "-am"));
        cmd.addAll(mavenArgs);
        Path log = repo.resolve("target/fuzz-build.log");
        Files.createDirectories(log.getParent());
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).directory(repo.toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile()).start();
        if (!p.waitFor(30, TimeUnit.MINUTES) || p.exitValue() != 0) {
            p.destroyForcibly();
            System.out.println(Files.readString(log));
            throw new IllegalStateException("fuzz: building the targets' class paths failed: " + String.join(" ", cmd));
        }
        System.out.printf("fuzz: %s built and their class paths written in %d s%n", String.join(", ", modules),
                TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0));
    }

    /** Compiles bench/FuzzTarget.java once (against any target's class path: it needs only the JUnit Platform). */
    static Path compileLauncher(Path repo, Target any) throws IOException {
        Path out = repo.resolve("target/fuzz-launcher");
        Files.createDirectories(out);
        int status = javax.tools.ToolProvider.getSystemJavaCompiler().run(null, null, null, "-d", out.toString(),
                "-cp", classPath(any), repo.resolve("bench/FuzzTarget.java").toString());
        if (status != 0) {
            throw new IllegalStateException("fuzz: bench/FuzzTarget.java does not compile");
        }
        return out;
    }

    private static String classPath(Target t) throws IOException {
        return t.module().resolve("target/test-classes") + ":" + t.module().resolve("target/classes") + ":"
                + Files.readString(t.module().resolve("target/fuzz-classpath.txt")).trim();
    }

    static Result run(Path repo, Path launcher, Target t, long seconds, long executions) throws Exception {
        Path log = t.module().resolve("target/fuzz/" + t.name().replace('#', '.') + ".log");
        Files.createDirectories(log.getParent());
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow",
                "-XX:+EnableDynamicAgentLoading", "-Xmx2g",
                "-Djazzer.instrument=org.krun.**",
                // The harness (test classes: the target, its model, mock drivers, test guest memory) is not the
                // code under test: without coverage and compare tracing there it ran 33% faster (virtqueue,
                // 1,202 -> 1,603/s, JFR: a third of the samples in Jazzer's compare hooks, half from the harness).
                "-Djazzer.instrumentation_excludes=" + String.join(":", harnessClasses(t)),
                // JUnit's @Timeout would bound the whole fuzzing run; Jazzer passes it to libFuzzer per input
                "-Djunit.jupiter.execution.timeout.mode=disabled",
                "-Djazzer.internal.arg.0=fuzz", "-Djazzer.internal.arg.1=-print_final_stats=1"));
        if (executions > 0) {
            cmd.add("-Djazzer.max_executions=" + executions);
            cmd.add("-Djazzer.max_duration=1000h");
        } else {
            cmd.add("-Djazzer.max_duration=" + seconds + "s");
        }
        cmd.addAll(List.of("-cp", launcher + ":" + classPath(t), "FuzzTarget", t.className(), t.method()));
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(t.module().toFile()).redirectErrorStream(true)
                .redirectOutput(log.toFile());
        pb.environment().put("JAZZER_FUZZ", "1");
        long t0 = System.nanoTime();
        Process p = pb.start();
        // Bounded: the fuzzing time, JVM start and agent set-up, or a generous allowance per execution.
        Duration limit = executions > 0 ? Duration.ofHours(24) : Duration.ofSeconds(seconds + 300);
        boolean finished = p.waitFor(limit.toSeconds(), TimeUnit.SECONDS);
        if (!finished) {
            p.descendants().forEach(ProcessHandle::destroyForcibly);
            p.destroyForcibly();
            p.waitFor(30, TimeUnit.SECONDS);
        }
        long wall = TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - t0);
        String out = Files.readString(log, StandardCharsets.ISO_8859_1);
        List<String> findings = new ArrayList<>();
        if (!finished) {
            findings.add("did not finish within " + limit.toSeconds() + " s");
        }
        for (String l : out.split("\n")) {
            if (l.contains("slow-unit-")) {
                continue; // libFuzzer keeps inputs slower than 10 s; the target's own wall-time bound judges them
            }
            if (l.startsWith("== Java Exception:") || l.contains("ERROR: libFuzzer:") || l.contains("Test unit written to")
                    || l.startsWith("Base64:") || l.startsWith("fuzz-target: FAILED") || l.startsWith("fuzz-target: cause")
                    || l.startsWith("fuzz-target: skipped")) {
                findings.add(l.trim());
            }
        }
        if (finished && p.exitValue() != 0 && findings.isEmpty()) {
            findings.add("exited with status " + p.exitValue() + " (see the log)");
        }
        if (finished && p.exitValue() == 0) {
            findings.removeIf(f -> f.startsWith("fuzz-target: skipped")); // other methods of the class, not this one
        }
        long runs = last(DONE, out, 1);
        long secs = last(DONE, out, 2);
        long executed = last(EXECUTED, out, 1);
        long perSecond = last(PER_SECOND, out, 1);
        if (executed > 0) {
            runs = executed;
        }
        if (runs < 0) { // a crash before the end: the last status line says how far it got
            runs = last(STATUS_LINE, out, 1);
        }
        if (secs < 0) {
            secs = wall;
        }
        if (perSecond < 0) {
            perSecond = secs > 0 ? Math.max(runs, 0) / secs : Math.max(runs, 0);
        }
        Matcher status = STATUS_LINE.matcher(out);
        String coverage = "cov ?";
        while (status.find()) {
            coverage = "cov " + status.group(2) + " ft " + status.group(3) + " corp " + status.group(4);
        }
        return new Result(t, Math.max(runs, 0), secs, perSecond, coverage, Math.max(0, last(SLOWEST, out, 1)), findings,
                repo.relativize(log));
    }

    /**
     * The names of the classes of the target's harness: its module's test classes and those of the test
     * jars on its class path (shared mocks such as MockDriverQueue and TestGuestMemory), every one exactly.
     */
    static List<String> harnessClasses(Target t) throws IOException {
        Set<String> names = new java.util.TreeSet<>();
        Path testClasses = t.module().resolve("target/test-classes");
        if (Files.isDirectory(testClasses)) {
            try (Stream<Path> files = Files.walk(testClasses)) {
                files.map(f -> testClasses.relativize(f).toString()).filter(f -> f.endsWith(".class"))
                        .forEach(f -> names.add(className(f)));
            }
        }
        for (String entry : Files.readString(t.module().resolve("target/fuzz-classpath.txt")).trim().split(":")) {
            if (entry.endsWith("-tests.jar") && Files.isRegularFile(Path.of(entry))) {
                try (java.util.zip.ZipFile jar = new java.util.zip.ZipFile(entry)) {
                    jar.stream().map(java.util.zip.ZipEntry::getName)
                            .filter(n -> n.endsWith(".class") && !n.endsWith("module-info.class"))
                            .forEach(n -> names.add(className(n)));
                }
            }
        }
        names.remove(FuzzBench.class.getName());
        return List.copyOf(names);
    }

    private static String className(String classFile) {
        return classFile.substring(0, classFile.length() - ".class".length()).replace('/', '.');
    }

    private static long last(Pattern p, String text, int group) {
        Matcher m = p.matcher(text);
        long v = -1;
        while (m.find()) {
            v = Long.parseLong(m.group(group));
        }
        return v;
    }
}
