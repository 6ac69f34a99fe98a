package org.krun.shell.internal;

import java.nio.file.Path;
import java.time.Clock;
import java.time.Duration;
import java.util.Optional;
import java.util.concurrent.Callable;
import java.util.stream.Stream;

import org.apache.felix.service.command.Descriptor;
import org.apache.felix.service.command.Parameter;
import org.krun.api.Krun;
import org.osgi.framework.BundleContext;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;

/**
 * The {@code krun:*} commands of the Gogo shell. Gogo finds them through the service properties and calls
 * the public methods by name; each returns the text to print. The work is done by {@link Commands}.
 *
 * <p>Immediate: Gogo gets and releases the service around each command, and a delayed component would be
 * discarded in between, forgetting the VMs started here. VMs started here belong to the Krun service, not
 * to this component: they keep running when the shell bundle stops (krun:stop and krun:kill end them).
 */
@Component(service = KrunCommands.class, immediate = true, property = {
    "osgi.command.scope=krun",
    "osgi.command.function=list",
    "osgi.command.function=start",
    "osgi.command.function=stop",
    "osgi.command.function=kill",
    "osgi.command.function=console",
    "osgi.command.function=screenshot",
    "osgi.command.function=send",
    "osgi.command.function=pause",
    "osgi.command.function=resume",
    "osgi.command.function=snapshot",
    "osgi.command.function=restore",
    "osgi.command.function=devices",
    "osgi.command.function=hypervisors"
})
public final class KrunCommands {
    /** Framework (or system) properties naming the kernel and root {@code krun:start} uses by default. */
    static final String KERNEL_PROPERTY = "krun.kernel";
    static final String ROOTFS_PROPERTY = "krun.rootfs";

    private final Commands commands;

    @Activate
    public KrunCommands(@Reference Krun krun, BundleContext context) {
        this(new Commands(krun, new OsgiRegistry(context), Clock.systemUTC(), path(context.getProperty(KERNEL_PROPERTY)),
                path(context.getProperty(ROOTFS_PROPERTY))));
    }

    KrunCommands(Commands commands) {
        this.commands = commands;
    }

    private static Optional<Path> path(String p) {
        return p == null || p.isBlank() ? Optional.empty() : Optional.of(Path.of(p));
    }

    @Descriptor("lists the VMs: id, state, uptime, vCPUs, memory, exit, command")
    public String list() {
        return failingAsMessage(commands::list);
    }

    @Descriptor("creates and starts a VM; its console output is kept as its tail (krun:console), its input comes "
            + "from krun:send")
    public String start(@Descriptor("""
            [OPTIONS] [--] CMD ARGS...: options come before the command (anything after the command is the command's, \
            dashes included; -- also ends the options):
              -c, --cpus N              number of vCPUs (1)
              -m, --memory MIB          guest memory in MiB (256)
              -k, --kernel FILE         guest kernel (framework property krun.kernel)
              -r, --root DIR            host directory as the guest's root (with the default kernel: krun.rootfs)
              -w, --workdir DIR         the command's working directory in the guest (/)
              -a, --kernel-args 'ARGS'  extra kernel command-line arguments, blank-separated
              -t, --terminal            one terminal for the command's stdin, stdout and stderr instead of three pipes
              --timeout S               kill the VM after S seconds (0: never)
              --gpu MODE                a virtio GPU: 2d|virgl|venus[,size=WxH][,scanouts=N][,memory=MIB] (krun:screenshot)
              --no-default-devices      do not add the devices that device bundles offer every VM""") String[] args) {
        return failingAsMessage(() -> {
            StartCommandLine line = StartCommandLine.parse(Stream.of(args).map(String::valueOf).toList());
            return commands.start(line.options(), line.command());
        });
    }

    @Descriptor("ends the VM's input (end-of-file for its command), waits for it to finish, kills it after the grace "
            + "period; returns once its resources are released")
    public String stop(
            @Descriptor("seconds to wait before killing") @Parameter(names = {"-g", "--grace"}, absentValue = "10")
            int graceSeconds,
            @Descriptor("the VM's id (krun:list)") String id) {
        return failingAsMessage(() -> commands.stop(id, Duration.ofSeconds(graceSeconds)));
    }

    @Descriptor("stops the VM at once, as pulling the plug would; returns once its resources are released")
    public String kill(@Descriptor("the VM's id (krun:list)") String id) {
        return failingAsMessage(() -> commands.kill(id));
    }

    @Descriptor("shows the VM's most recent console output (kept also after it stopped)")
    public String console(
            @Descriptor("how many lines, 0 for the whole tail (64 KiB)")
            @Parameter(names = {"-n", "--lines"}, absentValue = "40") int lines,
            @Descriptor("the VM's id (krun:list)") String id) {
        return failingAsMessage(() -> commands.console(id, lines));
    }

    @Descriptor("saves what the VM's GPU shows (or last showed) on a scanout as a PNG file")
    public String screenshot(
            @Descriptor("the scanout (0 for the first)") @Parameter(names = {"-s", "--scanout"}, absentValue = "0") int scanout,
            @Descriptor("the VM's id (krun:list)") String id,
            @Descriptor("the PNG file to write (replaced if it exists)") String file) {
        return failingAsMessage(() -> commands.screenshot(id, Path.of(file), scanout));
    }

    @Descriptor("writes a line to the VM's console input (the command's stdin)")
    public String send(@Descriptor("the VM's id (krun:list)") String id,
            @Descriptor("the text; a newline follows it") String[] text) {
        return failingAsMessage(() -> commands.send(id, String.join(" ", text)));
    }

    @Descriptor("pauses a running VM: its vCPUs stop and its clock stands still until krun:resume")
    public String pause(@Descriptor("the VM's id (krun:list)") String id) {
        return failingAsMessage(() -> commands.pause(id));
    }

    @Descriptor("lets a paused VM go on")
    public String resume(@Descriptor("the VM's id (krun:list)") String id) {
        return failingAsMessage(() -> commands.resume(id));
    }

    @Descriptor("writes a snapshot of a running VM into a folder (guest RAM and every device's state); a VM not "
            + "paused is paused for it and goes on after")
    public String snapshot(@Descriptor("the VM's id (krun:list)") String id,
            @Descriptor("the folder (made if absent; a snapshot there is replaced)") String dir) {
        return failingAsMessage(() -> commands.snapshot(id, Path.of(dir)));
    }

    @Descriptor("starts a new VM where a snapshot was taken, instead of booting; many may be restored from one")
    public String restore(@Descriptor("the snapshot's folder (krun:snapshot)") String dir,
            @Descriptor("""
            [OPTIONS] [--] CMD ARGS...: the options and command the snapshot's VM was started with, as krun:start             takes them; for a snapshot taken in this shell they may be left out""") String[] args) {
        return failingAsMessage(() -> commands.restore(Path.of(dir),
                args.length == 0 ? null : StartCommandLine.parse(Stream.of(args).map(String::valueOf).toList())));
    }

    @Descriptor("lists the device factories present now (what new VMs can have) and their bundles")
    public String devices() {
        return failingAsMessage(commands::devices);
    }

    @Descriptor("lists the hypervisor backends present now and what they found on this host")
    public String hypervisors() {
        return failingAsMessage(commands::hypervisors);
    }

    /** Runs a command; its failure reaches the console as its message alone ({@link CommandFailure}). */
    private static String failingAsMessage(Callable<String> command) {
        try {
            return command.call();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new CommandFailure(e);
        } catch (Exception e) {
            throw new CommandFailure(e);
        }
    }
}
