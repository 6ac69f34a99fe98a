package org.krun.example.embedding.internal;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import org.krun.api.ConsoleSpec;
import org.krun.api.Krun;
import org.krun.api.KrunException;
import org.krun.api.VirtualMachine;
import org.krun.api.VmExit;
import org.krun.example.embedding.ParallelVms;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Deactivate;
import org.osgi.service.component.annotations.Reference;

/**
 * {@link ParallelVms} on the {@link Krun} service. The VMs of a batch run on their own threads (the core's
 * vCPU and device threads); this component only starts them, feeds their input, and waits on their exit
 * futures. If the component goes away (its bundle stops, or the Krun service does), every VM it still runs
 * is killed.
 */
@Component(service = ParallelVms.class)
public final class ParallelVmsComponent implements ParallelVms {
    private final Krun krun;
    /** VMs of batches in progress, so that deactivation can stop them. */
    private final Set<VirtualMachine> running = ConcurrentHashMap.newKeySet();

    @Activate
    public ParallelVmsComponent(@Reference Krun krun) {
        this.krun = krun;
    }

    /** One job in progress: its handle (null if it never started) and the buffers its console writes to. */
    private record Run(Job job, VirtualMachine vm, ByteArrayOutputStream stdout, ByteArrayOutputStream stderr,
            CompletableFuture<VmExit> exit) {
    }

    @Override
    public List<Outcome> runAll(List<Job> jobs, Duration timeout) throws InterruptedException {
        List<Run> runs = new ArrayList<>();
        try {
            for (Job job : jobs) {
                runs.add(start(job));
            }
            for (Run r : runs) {
                feed(r);
            }
            awaitAll(runs, timeout);
        } finally {
            // Whatever happened above, no VM of this batch outlives the call: kill (no-op for stopped ones)
            // and close, which waits until the VM has released its memory, descriptors and threads.
            for (Run r : runs) {
                if (r.vm() != null) {
                    r.vm().close();
                    running.remove(r.vm());
                }
            }
        }
        List<Outcome> outcomes = new ArrayList<>();
        for (Run r : runs) {
            outcomes.add(new Outcome(r.job().name(), r.vm() == null ? "" : r.vm().id(), r.exit().join(),
                    r.stdout().toByteArray(), r.stderr().toByteArray()));
        }
        return outcomes;
    }

    /** Creates and starts the job's VM with a console that writes into fresh buffers. */
    private Run start(Job job) {
        ByteArrayOutputStream stdout = new ByteArrayOutputStream();
        ByteArrayOutputStream stderr = new ByteArrayOutputStream();
        ConsoleSpec console = job.mode() == ConsoleSpec.Mode.TERMINAL
                ? ConsoleSpec.terminal(stdout, 80, 24)
                : ConsoleSpec.pipes(stdout, stderr, true);
        VirtualMachine vm;
        try {
            vm = krun.create(job.config().toBuilder().console(console).build());
        } catch (KrunException e) {
            return new Run(job, null, stdout, stderr, CompletableFuture.completedFuture(
                    VmExit.failed("not created: " + e.getMessage())));
        }
        running.add(vm);
        try {
            vm.start();
        } catch (KrunException e) {
            // start() released what it took; exit() already says why.
        }
        return new Run(job, vm, stdout, stderr, vm.exit());
    }

    /** Writes the job's input and ends it; the console buffers 64 KiB, beyond that this waits for the guest. */
    private static void feed(Run r) {
        if (r.vm() == null) {
            return;
        }
        try (OutputStream in = r.vm().consoleInput()) {
            in.write(r.job().input());
        } catch (IOException e) {
            // the VM stopped before reading it all: its exit says why
        }
    }

    /** Waits for every exit future together; kills those still running when the time is up. */
    private static void awaitAll(List<Run> runs, Duration timeout) throws InterruptedException {
        CompletableFuture<?> all = CompletableFuture.allOf(runs.stream().map(Run::exit).toArray(CompletableFuture[]::new));
        try {
            all.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (TimeoutException e) {
            runs.stream().filter(r -> r.vm() != null && !r.exit().isDone()).forEach(r -> r.vm().kill());
        } catch (ExecutionException e) {
            throw new IllegalStateException("a VM's exit future failed", e.getCause());
        }
    }

    @Deactivate
    void deactivate() {
        running.forEach(VirtualMachine::close);
        running.clear();
    }
}
