import java.util.List;

import org.junit.platform.engine.FilterResult;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.engine.support.descriptor.MethodSource;
import org.junit.platform.launcher.Launcher;
import org.junit.platform.launcher.LauncherDiscoveryRequest;
import org.junit.platform.launcher.PostDiscoveryFilter;
import org.junit.platform.launcher.TestExecutionListener;
import org.junit.platform.launcher.TestIdentifier;
import org.junit.platform.launcher.core.LauncherDiscoveryRequestBuilder;
import org.junit.platform.launcher.core.LauncherFactory;
import org.junit.platform.engine.discovery.DiscoverySelectors;

/**
 * Runs one Jazzer {@code @FuzzTest} method through the JUnit Platform, in a JVM of its own: Jazzer fuzzes one
 * target per JVM. The fuzzing settings come from the environment and system properties bench/FuzzBench sets
 * (JAZZER_FUZZ, jazzer.max_duration, ...). Exit status: 0 when the target ran without a failure, 1 when it
 * failed (a finding, or the target broke), 2 when nothing ran.
 *
 * Usage: java -cp TEST-CLASSPATH bench/FuzzTarget.java CLASS METHOD (bench/FuzzBench compiles it once for all)
 */
public class FuzzTarget {

    public static void main(String[] args) {
        String className = args[0];
        String method = args[1];
        PostDiscoveryFilter onlyThisMethod = descriptor -> descriptor.getSource()
                .filter(s -> s instanceof MethodSource)
                .map(s -> ((MethodSource) s).getMethodName().equals(method)
                        ? FilterResult.included("the target")
                        : FilterResult.excluded("another test"))
                .orElse(FilterResult.included("a container"));
        LauncherDiscoveryRequest request = LauncherDiscoveryRequestBuilder.request()
                .selectors(DiscoverySelectors.selectClass(className))
                .filters(onlyThisMethod)
                .build();
        int[] counts = new int[3]; // succeeded, failed, skipped
        TestExecutionListener listener = new TestExecutionListener() {
            @Override
            public void executionFinished(TestIdentifier id, TestExecutionResult result) {
                if (!id.isTest()) {
                    if (result.getStatus() != TestExecutionResult.Status.SUCCESSFUL) {
                        counts[1]++;
                        report(id, result);
                    }
                    return;
                }
                switch (result.getStatus()) {
                    case SUCCESSFUL -> counts[0]++;
                    default -> {
                        counts[1]++;
                        report(id, result);
                    }
                }
            }

            @Override
            public void executionSkipped(TestIdentifier id, String reason) {
                counts[2]++;
                System.err.println("fuzz-target: skipped " + id.getDisplayName() + ": " + reason);
            }
        };
        Launcher launcher = LauncherFactory.create();
        launcher.execute(request, listener);
        System.err.printf("fuzz-target: %s#%s: %d passed, %d failed, %d skipped%n", className, method, counts[0],
                counts[1], counts[2]);
        System.err.flush();
        // Exit at once: a target's own threads (an event loop) must not keep the JVM, and the status must out.
        Runtime.getRuntime().halt(counts[1] > 0 ? 1 : counts[0] > 0 ? 0 : 2);
    }

    private static void report(TestIdentifier id, TestExecutionResult result) {
        Throwable t = result.getThrowable().orElse(null);
        System.err.println("fuzz-target: FAILED " + id.getDisplayName() + ": " + t);
        Throwable cause = t;
        for (int depth = 0; cause != null && depth < 4; depth++, cause = cause.getCause()) {
            if (cause.getCause() == null || cause.getCause() == cause) {
                List<StackTraceElement> top = List.of(cause.getStackTrace()).subList(0,
                        Math.min(8, cause.getStackTrace().length));
                System.err.println("fuzz-target: cause " + cause);
                top.forEach(e -> System.err.println("fuzz-target:     at " + e));
            }
        }
    }
}
