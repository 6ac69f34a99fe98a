package org.krun.example.embedding;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.Objects;

import org.krun.api.ConsoleSpec;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.osgi.annotation.versioning.ProviderType;

/**
 * Runs several microVMs concurrently, each through its own {@link org.krun.api.VirtualMachine} handle, and
 * reports for each what it wrote and how it ended. Thread-safe; several batches may run at once.
 */
@ProviderType
public interface ParallelVms {

    /**
     * One VM to run.
     *
     * @param name how the caller tells this job's outcome apart (not interpreted)
     * @param config the VM; its console is replaced by one that captures the output (see {@code mode})
     * @param mode {@link ConsoleSpec.Mode#PIPES}: stdout and stderr captured apart, stdin from {@code input};
     *        {@link ConsoleSpec.Mode#TERMINAL}: one terminal, everything captured as stdout
     * @param input the command's standard input; it ends (end-of-file) after these bytes. Input larger than
     *        the console's buffer (64 KiB) is written as the guest reads it.
     */
    record Job(String name, VmConfig config, ConsoleSpec.Mode mode, byte[] input) {
        public Job {
            Objects.requireNonNull(name, "name");
            Objects.requireNonNull(config, "config");
            Objects.requireNonNull(mode, "mode");
            input = input == null ? new byte[0] : input.clone();
        }

        /** A job in pipes mode with no input. */
        public static Job of(String name, VmConfig config) {
            return new Job(name, config, ConsoleSpec.Mode.PIPES, null);
        }
    }

    /**
     * How one job ended.
     *
     * @param name the job's name
     * @param vmId the id of the VM that ran it
     * @param exit why the VM stopped and the command's status ({@link VmExit.Reason#KILLED} if it overstayed
     *        the batch's timeout, {@link VmExit.Reason#FAILED} if it could not start)
     * @param stdout what the command wrote to its standard output (everything, in terminal mode)
     * @param stderr what the command wrote to its standard error, and the console's messages
     */
    record Outcome(String name, String vmId, VmExit exit, byte[] stdout, byte[] stderr) {

        public String out() {
            return new String(stdout, StandardCharsets.UTF_8);
        }

        public String err() {
            return new String(stderr, StandardCharsets.UTF_8);
        }
    }

    /**
     * Starts one VM per job, all at once, and waits until every one has stopped and released its resources.
     * A VM still running after {@code timeout} (counted from when the last one started) is killed.
     *
     * @return the outcomes in the order of {@code jobs}
     * @throws InterruptedException if the caller is interrupted; every VM of the batch is then killed
     */
    List<Outcome> runAll(List<Job> jobs, Duration timeout) throws InterruptedException;
}
