package org.krun.shell.internal;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Deque;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeoutException;

import org.krun.api.ConsoleSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmExit;
import org.krun.api.VmState;

/**
 * The management commands' behaviour, apart from Gogo and the framework: each returns the text the shell
 * prints. VMs started here are remembered (the newest {@value #HISTORY}) after they stop, so that their
 * exit and console tail can still be read; other VMs are those the Krun service lists.
 */
final class Commands {
    static final int HISTORY = 16;
    static final int COMMAND_COLUMN_WIDTH = 40;

    /** What {@code start} takes besides the command. */
    record StartOptions(int cpus, int memoryMib, Optional<Path> kernel, Optional<Path> root, String workdir,
            List<String> kernelArgs, boolean terminal, Duration timeout, boolean defaultDevices,
            Optional<org.krun.api.GpuSpec> gpu) {
    }

    private final Krun krun;
    private final Registry registry;
    private final Clock clock;
    private final Optional<Path> defaultKernel;
    private final Optional<Path> defaultRoot;
    private final Deque<VirtualMachine> started = new ArrayDeque<>();
    /** What each VM made here was started (or restored) with, by id: a snapshot of it restores with the same. */
    private final Map<String, StartCommandLine> startedWith = new java.util.concurrent.ConcurrentHashMap<>();
    /** What the VM of each snapshot taken here was started with, by the snapshot's folder. */
    private final Map<Path, StartCommandLine> snapshots = new java.util.concurrent.ConcurrentHashMap<>();
    /** The VMs paused with {@code pause} (a snapshot of one leaves it paused). */
    private final java.util.Set<String> paused = java.util.concurrent.ConcurrentHashMap.newKeySet();

    /**
     * @param defaultKernel the kernel {@code start} boots when none is given
     * @param defaultRoot the root {@code start} gives a VM that boots the default kernel and names no root
     */
    Commands(Krun krun, Registry registry, Clock clock, Optional<Path> defaultKernel, Optional<Path> defaultRoot) {
        this.krun = krun;
        this.registry = registry;
        this.clock = clock;
        this.defaultKernel = defaultKernel;
        this.defaultRoot = defaultRoot;
    }

    /** Every VM of the Krun service and those started here: state, uptime, resources, exit, command. */
    String list() {
        Table t = new Table("ID", "STATE", "UPTIME", "CPUS", "MEMORY", "EXIT", "COMMAND");
        for (VirtualMachine vm : known()) {
            VmState state = vm.state();
            VmExit exit = vm.exit().getNow(null);
            String uptime = state == VmState.RUNNING ? vm.startedAt().map(s -> uptime(s)).orElse("-") : "-";
            t.row(vm.id(), state, uptime, vm.config().cpus(), vm.config().memoryMib() + " MiB",
                    exit == null ? "-" : describe(exit), abbreviate(String.join(" ", vm.config().command())));
        }
        return t.toString();
    }

    /** Creates and starts a VM whose console output is kept only as its tail; returns its id. */
    String start(StartOptions o, List<String> command) {
        VirtualMachine vm = krun.create(config(o, command));
        remember(vm);
        startedWith.put(vm.id(), new StartCommandLine(o, command));
        vm.start();
        return vm.id() + " started\n";
    }

    /** Pauses a running VM: its vCPUs stop, its devices take no new work, its clock stands still. */
    String pause(String id) {
        VirtualMachine vm = running(id);
        vm.pause();
        paused.add(id);
        return id + " paused\n";
    }

    /** Lets a paused VM go on. */
    String resume(String id) {
        VirtualMachine vm = running(id);
        vm.resume();
        paused.remove(id);
        return id + " resumed\n";
    }

    /**
     * Writes a snapshot of a running VM into {@code dir}: a VM that was not paused is paused for it and goes on
     * after; one paused with {@code pause} stays paused.
     */
    String snapshot(String id, Path dir) {
        VirtualMachine vm = running(id);
        boolean wasPaused = paused.contains(id);
        if (!wasPaused) {
            vm.pause();
        }
        try {
            vm.snapshot(dir);
        } finally {
            if (!wasPaused) {
                vm.resume();
            }
        }
        StartCommandLine how = startedWith.get(id);
        if (how != null) {
            snapshots.put(dir.toAbsolutePath().normalize(), how);
        }
        return id + ": snapshot in " + dir + (wasPaused ? " (still paused)" : "") + "\n";
    }

    /**
     * Starts a new VM where the snapshot in {@code dir} was taken. It needs the shape of the VM the snapshot was
     * taken of: the options and command that VM was started with, given again or, for a snapshot taken in
     * this shell, remembered.
     */
    String restore(Path dir, StartCommandLine given) {
        StartCommandLine how = given != null ? given : snapshots.get(dir.toAbsolutePath().normalize());
        if (how == null) {
            throw new IllegalArgumentException("the snapshot in " + dir + " was not taken in this shell: give the "
                    + "options and command its VM was started with (krun:restore DIR [options] COMMAND [ARGS...])");
        }
        VirtualMachine vm = krun.restore(config(how.options(), how.command()), dir);
        remember(vm);
        startedWith.put(vm.id(), how);
        vm.start();
        return vm.id() + " restored from " + dir + "\n";
    }

    private VirtualMachine running(String id) {
        VirtualMachine vm = find(id);
        if (vm.state() != VmState.RUNNING) {
            throw new IllegalStateException(id + " is not running");
        }
        return vm;
    }

    /** The configuration {@code start} gives a VM. */
    private VmConfig config(StartOptions o, List<String> command) {
        if (command.isEmpty()) {
            throw new IllegalArgumentException("no command given: krun:start [options] COMMAND [ARGS...]");
        }
        boolean defaultKernelUsed = o.kernel().isEmpty();
        Path kernel = o.kernel().or(() -> defaultKernel).orElseThrow(() -> new IllegalArgumentException(
                "no kernel given (-k FILE) and no default (framework property krun.kernel)"));
        VmConfig.Builder b = VmConfig.builder()
                .cpus(o.cpus())
                .memoryMib(o.memoryMib())
                .kernel(kernel)
                .command(command)
                .workdir(o.workdir())
                .defaultDevices(o.defaultDevices())
                .console(o.terminal() ? ConsoleSpec.terminal(OutputStream.nullOutputStream(), 80, 24)
                        : ConsoleSpec.pipes(OutputStream.nullOutputStream(), OutputStream.nullOutputStream(), true));
        if (o.root().isPresent()) {
            b.root(o.root().get());
        } else if (defaultKernelUsed && defaultRoot.isPresent()) {
            // krun's own tree, shared by every VM: read-only to each, with a writable layer of its own
            b.root(defaultRoot.get()).ephemeralRoot(true);
        }
        o.kernelArgs().forEach(b::kernelArg);
        o.gpu().ifPresent(b::device);
        if (!o.timeout().isZero()) {
            b.timeout(o.timeout());
        }
        return b.build();
    }

    /**
     * Ends the VM's input (end-of-file for its command), gives it {@code grace} to finish, then kills it;
     * returns once everything is released.
     */
    String stop(String id, Duration grace) throws InterruptedException {
        VirtualMachine vm = find(id);
        if (vm.state() == VmState.CREATED) {
            vm.close();
            return id + ": closed before it started\n";
        }
        try {
            vm.consoleInput().close();
        } catch (IOException e) {
            // the VM stopped meanwhile
        }
        VmExit exit;
        try {
            exit = vm.waitFor(grace);
        } catch (TimeoutException e) {
            vm.kill();
            exit = vm.waitFor();
        }
        vm.close();
        return id + ": " + describe(exit) + "\n";
    }

    /** Stops the VM at once and waits until everything is released. */
    String kill(String id) throws InterruptedException {
        VirtualMachine vm = find(id);
        vm.kill();
        vm.close();
        return id + ": " + describe(vm.waitFor()) + "\n";
    }

    /** The last {@code lines} lines of the VM's console tail; all of it for 0. */
    /**
     * Saves what scanout {@code scanout} of the VM's GPU shows (or last showed, for a VM that stopped or a
     * scanout the guest turned off) as a PNG.
     */
    String screenshot(String id, Path file, int scanout) throws IOException {
        VirtualMachine vm = find(id);
        List<org.krun.api.Display> displays = vm.displays();
        if (displays.isEmpty()) {
            throw new IllegalArgumentException(id + " has no display (start it with a GPU)");
        }
        if (scanout < 0 || scanout >= displays.size()) {
            throw new IllegalArgumentException(id + " has scanouts 0 to " + (displays.size() - 1) + ", not " + scanout);
        }
        org.krun.api.Frame frame = displays.get(scanout).lastFrame()
                .orElseThrow(() -> new IllegalArgumentException(id + "'s guest has shown nothing on scanout " + scanout + " yet"));
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp");
        if (!javax.imageio.ImageIO.write(frame.toImage(), "png", tmp.toFile())) {
            throw new IOException("no PNG writer in this Java runtime");
        }
        java.nio.file.Files.move(tmp, abs, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        return id + ": scanout " + scanout + " (" + frame.width() + "x" + frame.height() + ") saved as " + abs + "\n";
    }

    String console(String id, int lines) {
        String text = new String(find(id).consoleTail(), StandardCharsets.UTF_8);
        if (lines > 0) {
            int at = text.length();
            if (text.endsWith("\n")) {
                at--;
            }
            for (int n = 0; n < lines && at > 0; n++) {
                at = text.lastIndexOf('\n', at - 1);
                if (at < 0) {
                    break;
                }
            }
            if (at > 0) {
                text = text.substring(at + 1);
            }
        }
        return text;
    }

    /** Writes {@code text} and a newline to the VM's console input. */
    String send(String id, String text) throws IOException {
        VirtualMachine vm = find(id);
        if (vm.state() != VmState.RUNNING) {
            throw new IllegalStateException(id + " is not running");
        }
        OutputStream in = vm.consoleInput();
        in.write((text + "\n").getBytes(StandardCharsets.UTF_8));
        in.flush();
        return "";
    }

    /** Device factories present now: what new VMs can have. */
    String devices() {
        Table t = new Table("TYPE", "DEFAULT", "BUNDLE");
        for (Registry.DeviceFactoryInfo d : registry.deviceFactories()) {
            t.row(d.type(), d.offeredByDefault() ? "yes" : "no", d.bundle() + " " + d.version());
        }
        return t.toString();
    }

    /** Hypervisor backends present now and what they found on this host. */
    String hypervisors() {
        Table t = new Table("NAME", "HARDWARE", "MAX-VCPUS", "BUNDLE", "DESCRIPTION");
        for (Registry.HypervisorInfo h : registry.hypervisors()) {
            t.row(h.name(), h.capabilities().hardwareVirtualization() ? "yes" : "no", h.capabilities().maxVcpus(),
                    h.bundle() + " " + h.version(), h.capabilities().description());
        }
        return t.toString();
    }

    private synchronized void remember(VirtualMachine vm) {
        started.addLast(vm);
        while (started.size() > HISTORY) {
            VirtualMachine gone = started.removeFirst();
            if (gone.state() == VmState.STOPPED) {
                startedWith.remove(gone.id());
                paused.remove(gone.id());
            }
        }
        started.stream().filter(v -> v.state() == VmState.STOPPED).forEach(v -> paused.remove(v.id()));
    }

    /** The service's VMs and those started here, by id in creation order ({@code vm2} before {@code vm10}). */
    private List<VirtualMachine> known() {
        Map<String, VirtualMachine> byId = new LinkedHashMap<>();
        synchronized (this) {
            started.forEach(vm -> byId.put(vm.id(), vm));
        }
        krun.list().forEach(vm -> byId.put(vm.id(), vm));
        List<VirtualMachine> out = new ArrayList<>(byId.values());
        out.sort(Comparator.comparing((VirtualMachine vm) -> vm.id().length()).thenComparing(VirtualMachine::id));
        return out;
    }

    private VirtualMachine find(String id) {
        return known().stream().filter(vm -> vm.id().equals(id)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("no VM " + id + " (krun:list shows them)"));
    }

    private String uptime(Instant since) {
        long s = Math.max(0, Duration.between(since, clock.instant()).toSeconds());
        if (s < 60) {
            return s + "s";
        }
        if (s < 3600) {
            return String.format("%dm%02ds", s / 60, s % 60);
        }
        return String.format("%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60);
    }

    static String describe(VmExit exit) {
        String d = switch (exit.reason()) {
            case COMMAND_EXITED -> "exited " + exit.status();
            case KILLED -> "killed";
            case TIMED_OUT -> "timed out";
            case GUEST_STOPPED -> "guest stopped";
            case FAILED -> "failed";
        };
        return exit.detail().isEmpty() || exit.reason() == VmExit.Reason.KILLED ? d : d + " (" + exit.detail() + ")";
    }

    private static String abbreviate(String s) {
        return s.length() <= COMMAND_COLUMN_WIDTH ? s : s.substring(0, COMMAND_COLUMN_WIDTH - 3) + "...";
    }

    /** Splits kernel arguments given as one option value on blanks. */
    static List<String> words(String s) {
        return s == null || s.isBlank() ? List.of() : Arrays.asList(s.trim().split("\\s+"));
    }

}
