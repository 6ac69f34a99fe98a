package org.krun.platform;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Pattern;

import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * bnd baselining as krun's API bundles get it (krun-parent's plugin configuration, a release in the project's
 * cnf/releases made by scripts/release-baseline.sh): a small bundle, src/test/projects/baseline, is released
 * as 1.0.0; removing a method from its exported interface then fails the build unless the package and the
 * bundle take a major version step.
 */
class BaselineTest {
    private static final String PROJECT = "org.krun.baseline.probe";

    @TempDir
    static Path work;
    private static Path released;

    @BeforeAll
    static void releaseTheProbeAsOnePointZero() throws IOException {
        released = work.resolve("released");
        MavenRun.copyTree(MavenRun.ROOT.resolve("platform/src/test/projects/baseline"), released);
        MavenRun.replace(released.resolve("pom.xml"), "@krun.parent.version@", System.getProperty("krun.parent.version"));
        MavenRun.Result r = MavenRun.run(released, List.of("bash", MavenRun.ROOT.resolve("scripts/release-baseline.sh").toString(),
                released.toString(), "1.0.0", "-o", MavenRun.REPO_LOCAL));
        assertEquals(0, r.status(), "release-baseline.sh: " + r);
        Path jar = released.resolve("cnf/releases/org/krun/" + PROJECT + "/1.0.0/" + PROJECT + "-1.0.0.jar");
        assertTrue(Files.isRegularFile(jar), "the release is in the project's cnf/releases: " + r);
        assertTrue(Files.readString(released.resolve("cnf/releases/org/krun/" + PROJECT + "/maven-metadata.xml"))
                .contains("<version>1.0.0</version>"), "and listed in its metadata");
        assertTrue(r.output().contains("Bundle-Version: 1.0.0\n"), "built as 1.0.0, not as the snapshot: " + r);
    }

    /** A fresh copy of the released project, to change. */
    private static Path copy(Path dir) throws IOException {
        Path project = dir.resolve("project");
        MavenRun.copyTree(released, project);
        Path target = project.resolve("target");
        if (Files.exists(target)) {
            throw new AssertionError("the release build ran in the project's own folder");
        }
        return project;
    }

    private static void removeTheHandleMethod(Path project) throws IOException {
        MavenRun.replace(project.resolve("src/main/java/org/krun/baseline/probe/Notifier.java"),
                "    /** The host primitive behind this notifier. */\n    Handle handle();\n", "");
    }

    @Test
    void removingAMethodWithoutAMajorVersionBumpFailsTheBuild(@TempDir Path dir) throws IOException {
        Path project = copy(dir);
        removeTheHandleMethod(project);

        MavenRun.Result r = MavenRun.mvn(project, "verify");

        assertNotEquals(0, r.status(), r.toString());
        assertTrue(r.output().contains("Baseline problems detected"), r.toString());
        assertTrue(Pattern.compile("\\* " + Pattern.quote(PROJECT) + " +PACKAGE +MAJOR +1\\.0\\.0 +1\\.0\\.0 +2\\.0\\.0")
                .matcher(r.output()).find(), "the package needs 2.0.0: " + r);
        assertTrue(Pattern.compile("REMOVED +METHOD +handle\\(\\)").matcher(r.output()).find(), "and says why: " + r);
    }

    @Test
    void removingAMethodWithAMajorVersionBumpPasses(@TempDir Path dir) throws IOException {
        Path project = copy(dir);
        removeTheHandleMethod(project);
        MavenRun.replace(project.resolve("src/main/java/org/krun/baseline/probe/package-info.java"),
                "@Version(\"1.0.0\")", "@Version(\"2.0.0\")");
        MavenRun.replace(project.resolve("pom.xml"), "<version>1.0.1-SNAPSHOT</version>", "<version>2.0.0-SNAPSHOT</version>");

        MavenRun.Result r = MavenRun.mvn(project, "verify");

        assertEquals(0, r.status(), r.toString());
        assertTrue(r.output().contains("The baseline version was found to be 1.0.0"), r.toString());
        assertTrue(r.output().contains("Baseline check succeeded"), r.toString());
    }
}
