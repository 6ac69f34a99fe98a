package org.krun.cli.internal;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

import org.krun.api.ConsoleSpec;
import org.krun.api.GpuSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.Krun;
import org.krun.api.Networking;
import org.krun.api.KrunException;
import org.krun.api.Rlimit;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.SoundSpec;
import org.krun.api.VmConfigException;
import org.krun.api.VmExit;
import org.krun.posix.Posix;
import org.krun.posix.Termios;

import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.ParameterException;
import picocli.CommandLine.Parameters;
import picocli.CommandLine.Spec;

/** {@code krun run}: one command in a fresh VM; exits with the command's status. */
@Command(name = "run", mixinStandardHelpOptions = true,
        description = {"Runs CMD in a new microVM and exits with its status.",
            "With a terminal on stdin and stdout the command gets a terminal (raw mode, window size);",
            "otherwise its stdin, stdout and stderr are binary-safe pipes."},
        footer = {"", "Exit status: the command's own; 125 guest set-up failed, 126 not executable,",
            "127 not found, 128+N killed by signal N; 124 timeout; 1 krun itself failed; 2 bad usage."})
final class RunCommand implements Callable<Integer> {

    @Option(names = "--cpus", paramLabel = "N", description = "Number of vCPUs (default: ${DEFAULT-VALUE}).",
            defaultValue = "1")
    int cpus;

    @Option(names = "--mem", paramLabel = "MiB", description = "Guest memory in MiB (default: ${DEFAULT-VALUE}).",
            defaultValue = "512")
    int memoryMib;

    @Option(names = "--mem-overcommit",
            description = {"Allow --mem beyond what the host can give (its RAM and swap,",
                "the cgroup's limit): the guest gets memory only as it uses it,",
                "and the host kills krun if it uses more than there is."})
    boolean memoryOvercommit;

    @Option(names = "--kernel", paramLabel = "FILE",
            description = "Guest kernel, ELF vmlinux or bzImage (default: krun's own vmlinux).")
    Path kernel;

    @Option(names = "--initrd", paramLabel = "FILE", description = "An initramfs to put under the root.")
    Path initrd;

    @Option(names = "--root", paramLabel = "DIR",
            description = "Host directory to use as the guest's root (default: krun's busybox rootfs).")
    Path root;

    @Option(names = {"-v", "--volume"}, paramLabel = "HOST:GUEST[:ro]",
            description = "Share a host directory at a guest path over virtio-fs (read-only with :ro). Repeatable.")
    List<String> volumes = new ArrayList<>();
    @Option(names = "--disk", paramLabel = "FILE[,OPTION...]",
            description = {"Attach a disk image: /dev/vda, /dev/vdb, ... in the",
                "order given (after --root-disk). Repeatable.",
                "OPTIONs, comma-separated:",
                "ro: read-only (guest writes fail)",
                "id=NAME: the serial, /sys/block/vdX/serial",
                "  (at most 20 ASCII characters)",
                "format=raw|qcow2: the image format (default raw),",
                "  never guessed from the contents",
                "sync=none: guest flushes are ignored (fastest;",
                "  flushed data can be lost if the host crashes)",
                "sync=relaxed (default): a guest flush (fsync)",
                "  syncs the image to the host's disk",
                "sync=full: write-through: every write is on the",
                "  host's disk before it completes",
                "direct: O_DIRECT, bypass the host page cache"})
    List<String> disks = new ArrayList<>();

    @Option(names = "--root-disk", paramLabel = "FILE[,fstype=TYPE][,OPTION...]",
            description = {"Boot with / on this disk image: attached first",
                "(/dev/vda), mounted by the guest init as the root",
                "file system (fstype default ext4; ro mounts it",
                "read-only). Takes the --disk OPTIONs. Not with --root."})
    String rootDisk;

    @Option(names = "--workdir", paramLabel = "DIR", description = "Working directory in the guest (default: /).")
    String workdir;

    @Option(names = {"-e", "--env"}, paramLabel = "NAME[=VALUE]",
            description = "Set an environment variable; NAME alone copies the host's value. Repeatable.")
    List<String> env = new ArrayList<>();

    @Option(names = "--rlimit", paramLabel = "NAME=SOFT[:HARD]",
            description = "Set a resource limit (NOFILE=1024:4096, unlimited allowed). Repeatable.")
    List<String> rlimits = new ArrayList<>();

    @Option(names = "--hostname", paramLabel = "NAME", description = "Guest host name (default: krun).")
    String hostname;

    @Option(names = "--timeout", paramLabel = "SECONDS", description = "Stop the VM after this many seconds.")
    Integer timeoutSeconds;

    @Option(names = "--kernel-log", description = "Show the guest kernel's messages on stderr.")
    boolean kernelLog;

    @Option(names = "--no-template", description = {"Boot the guest kernel even when a booted template of a VM of this",
            "shape is cached (templates: ~/.cache/krun/templates, made by the first run of each shape)."})
    boolean noTemplate;

    @Option(names = "--kernel-arg", paramLabel = "ARG", description = "Extra kernel command-line argument. Repeatable.")
    List<String> kernelArgs = new ArrayList<>();

    @Option(names = "--device", paramLabel = "TYPE[,KEY=VALUE...]",
            description = {"Add a device of TYPE, as a device bundle offers it",
                "(krun --profile full shell: krun:devices lists them),",
                "with options for its factory. Repeatable.",
                "rng: an entropy source; balloon[,free-page-reporting=on|off]"})
    List<String> devices = new ArrayList<>();

    @Option(names = "--sound", paramLabel = "BACKEND[,capture=FILE]",
            description = {"Give the guest a sound card (virtio-snd): null discards",
                "playback and records silence; wav:FILE writes playback into",
                "a WAV file in the format the guest plays; pulse plays to and",
                "records from the host's PulseAudio/PipeWire server. With null",
                "or wav, ,capture=FILE: the guest records that WAV file's",
                "samples. Playback takes real time."})
    String sound;

    @Option(names = "--gpu", paramLabel = "MODE[,size=WxH][,scanouts=N][,memory=MiB]",
            description = {"Give the guest a virtio GPU (/dev/dri/card0): 2d, virgl",
                "(OpenGL through the host's virglrenderer: Debian's",
                "libvirglrenderer1) or venus (Vulkan as well, in virglrenderer's",
                "render server: virgl-server, mesa-vulkan-drivers), with scanouts of WxH (default 1280x800)",
                "and at most MiB of host memory for its resources (default 256)."})
    String gpu;

    @Option(names = "--screenshot-on-exit", paramLabel = "FILE.png",
            description = {"When the VM stops, save what the GPU's first scanout last",
                "showed as a PNG (further scanouts: FILE-1.png, ...). Needs --gpu."})
    Path screenshot;

    @Option(names = "--vsock", paramLabel = "PORT:PATH[,listen]",
            description = {"Tie guest vsock PORT to the host unix socket PATH: a guest",
                "connecting to PORT (host CID 2) reaches PATH; with ,listen krun",
                "listens on PATH and each connection reaches the guest's PORT.",
                "Repeatable."})
    List<String> vsockPorts = new ArrayList<>();

    @Option(names = "--net", paramLabel = "MODE",
            description = {"The guest's networking: tsi (the default) has the guest's",
                "IPv4/IPv6 sockets made on the host by krun, so the guest",
                "reaches what the host reaches (the host's own loopback as",
                "host.krun.internal); tsi,unix impersonates unix sockets too",
                "(the default with --root /); none leaves only loopback.",
                "A network card (eth0, eth1, ... in order; repeatable) instead:",
                "passt (krun starts Debian's passt: DHCP, -p), unixstream=PATH",
                "(passt --socket, QEMU's stream netdev), unixgram=PATH[,vfkit]",
                "(gvproxy, vmnet-helper) or tap=NAME, each with options",
                ",mac=XX:..,ip=A.B.C.D/N,gw=A.B.C.D,dhcp,dns=A,mtu=N,offload=off.",
                "With a card, tsi is off unless also asked for."})
    List<String> net = new ArrayList<>();

    @Option(names = {"-p", "--publish"}, paramLabel = "HOST:GUEST[/udp]",
            description = {"Publish guest port GUEST on host port HOST (all addresses):",
                "connections to it reach a guest server listening on GUEST.",
                "Repeatable."})
    List<String> published = new ArrayList<>();

    @Option(names = "--allow-unprotected",
            description = {"Run even where the profile cannot give the protection it",
                "promises (sev, tdx, nitro while their bundle is missing)."})
    boolean allowUnprotected;

    @Option(names = "--no-default-devices",
            description = {"Do not give the VM the devices it gets by default (entropy",
                "source, memory balloon, the vsock device of --net tsi)."})
    boolean noDefaultDevices;

    @Parameters(paramLabel = "CMD", arity = "0..*",
            description = "The command and its arguments (default: /bin/sh). Use -- before a CMD that starts with -.")
    List<String> command = new ArrayList<>();

    @Spec
    CommandSpec spec;

    private final Krun krun;

    RunCommand(Krun krun) {
        this.krun = krun;
    }

    /** Set by the launcher when the profile's VMs would lack the protection it promises: why. */
    static final String UNPROTECTED_PROPERTY = "krun.profile.unprotected";
    /** Set by the launcher to {@code closed} when krun's stdin is closed: the command reads end-of-file. */
    static final String STDIN_PROPERTY = "krun.stdin";

    @Override
    public Integer call() throws Exception {
        String unprotected = System.getProperty(UNPROTECTED_PROPERTY);
        if (unprotected != null) {
            if (!allowUnprotected) {
                throw new VmConfigException(unprotected + " (pass --allow-unprotected to run the VM without it)");
            }
            System.err.println("krun: warning: " + unprotected + "; running unprotected as asked");
        }
        // fd 0 may belong to the JVM when the caller closed krun's stdin: then it is never read.
        boolean input = !"closed".equals(System.getProperty(STDIN_PROPERTY));
        boolean terminal = input && Posix.isatty(0) && Posix.isatty(1);
        BrokenPipe pipe = new BrokenPipe(BrokenPipe.GRACE);
        OutputStream stdout = pipe.watch(new FileOutputStream(FileDescriptor.out));
        OutputStream stderr = pipe.watch(new FileOutputStream(FileDescriptor.err));
        Termios.Size size = terminal ? Termios.size(1).orElse(null) : null;
        ConsoleSpec console = terminal
                ? ConsoleSpec.terminal(stdout, size == null ? 0 : size.columns(), size == null ? 0 : size.rows())
                : ConsoleSpec.pipes(stdout, stderr, input);
        VmConfig config = usage(() -> config(console, terminal));
        try (VirtualMachine vm = krun.create(config)) {
            Termios.RawMode raw = terminal ? Termios.enterRawMode(0).orElse(null) : null;
            Thread restore = raw == null ? null : new Thread(() -> restore(raw), "krun-terminal-restore");
            if (restore != null) {
                Runtime.getRuntime().addShutdownHook(restore);
            }
            try {
                vm.start();
                pipe.endsAfterGrace(vm);
                if (input) {
                    StdinPump.start(new FileInputStream(FileDescriptor.in), vm.consoleInput());
                }
                if (terminal) {
                    watchWindowSize(vm, size);
                }
                VmExit exit = vm.waitFor();
                restore(raw);
                if (screenshot != null) {
                    Screenshots.saveOnExit(vm, screenshot, new PrintStream(stderr, true));
                }
                if (pipe.killed() && exit.reason() == VmExit.Reason.KILLED) {
                    // Said where it can still be read (stderr, when only stdout's reader went away); lost otherwise.
                    new PrintStream(stderr, true).println("krun: " + BrokenPipe.STOPPED);
                    return BrokenPipe.STATUS;
                }
                if (exit.reason() != VmExit.Reason.COMMAND_EXITED) {
                    PrintStream err = new PrintStream(stderr, true);
                    err.println("krun: " + exit.detail());
                }
                return exit.status();
            } finally {
                if (raw != null) {
                    restore(raw);
                    try {
                        Runtime.getRuntime().removeShutdownHook(restore);
                    } catch (IllegalStateException e) {
                        // already shutting down
                    }
                }
            }
        }
    }

    /**
     * Options that cannot make a VM are usage errors (status 2): the configuration is built before anything
     * else is touched. What the host then refuses (a missing file, a device nobody offers) fails the run (1).
     */
    private <T> T usage(java.util.function.Supplier<T> parse) {
        try {
            return parse.get();
        } catch (VmConfigException e) {
            throw new ParameterException(spec.commandLine(), KrunCli.message(e), e);
        }
    }

    VmConfig config(ConsoleSpec console, boolean terminal) {
        VmConfig.Builder b = VmConfig.builder()
                .cpus(cpus)
                .memoryMib(memoryMib)
                .memoryOvercommit(memoryOvercommit)
                .kernel(kernel != null ? kernel : defaultPath("krun.kernel", "--kernel"))
                .console(console)
                .kernelLog(kernelLog)
                .templateCache(templates())
                .defaultDevices(!noDefaultDevices)
                .command(command.isEmpty() ? List.of("/bin/sh") : command);
        if (initrd != null) {
            b.initrd(initrd);
        }
        if (rootDisk != null) {
            if (root != null) {
                throw new VmConfigException("--root and --root-disk cannot be combined: the root is either a directory or a disk");
            }
            DiskOption option = DiskOption.parse("--root-disk", rootDisk);
            // The core attaches devices in list order: the root disk first is /dev/vda.
            b.device(option.disk());
            b.rootMount(new GuestMount("/dev/vda", "/", option.fstype(), option.disk().readOnly() ? "ro" : ""));
        } else if (root != null) {
            b.root(root);
        } else if (initrd == null) {
            // krun's own busybox tree is shared by every run: the guest gets it read-only with its own
            // writable layer, so one run never sees what another wrote.
            b.root(defaultPath("krun.rootfs", "--root")).ephemeralRoot(true);
        }
        for (String d : disks) {
            b.device(DiskOption.parse("--disk", d).disk());
        }
        for (String d : devices) {
            b.device(DeviceOption.parse(d));
        }
        if (sound != null) {
            try {
                b.device(SoundSpec.parse(sound));
            } catch (VmConfigException e) {
                throw new VmConfigException("--sound " + sound + ": " + e.getMessage(), e);
            }
        }
        if (gpu != null) {
            b.device(GpuSpec.parse(gpu));
        }
        if (screenshot != null) {
            boolean hasGpu = gpu != null || devices.stream().anyMatch(d -> d.equals(GpuSpec.TYPE) || d.startsWith(GpuSpec.TYPE + ","));
            if (!hasGpu) {
                throw new VmConfigException("--screenshot-on-exit needs a GPU: add --gpu 2d");
            }
            if (!screenshot.getFileName().toString().toLowerCase(java.util.Locale.ROOT).endsWith(".png")) {
                throw new VmConfigException("--screenshot-on-exit writes PNG: name a FILE.png, not " + screenshot);
            }
        }
        networking(b);
        if (workdir != null) {
            if (workdir.isEmpty()) {
                throw new VmConfigException("--workdir needs a directory: an absolute guest path");
            }
            b.workdir(workdir);
        }
        if (hostname != null) {
            b.hostname(hostname);
        }
        if (terminal && System.getenv("TERM") != null) {
            b.env("TERM", System.getenv("TERM"));
        }
        for (String e : env) {
            if (e.isEmpty()) {
                throw new VmConfigException("-e needs NAME or NAME=VALUE, not an empty string");
            }
            int eq = e.indexOf('=');
            if (eq < 0) {
                String v = System.getenv(e);
                if (v != null) {
                    b.env(e, v);
                }
            } else {
                b.env(e.substring(0, eq), e.substring(eq + 1));
            }
        }
        for (String r : rlimits) {
            try {
                b.rlimit(Rlimit.parse(r));
            } catch (IllegalArgumentException ex) {
                throw new VmConfigException(ex.getMessage());
            }
        }
        for (int i = 0; i < volumes.size(); i++) {
            addVolume(b, volumes.get(i), "krun-share" + i);
        }
        kernelArgs.forEach(b::kernelArg);
        if (timeoutSeconds != null) {
            if (timeoutSeconds <= 0) {
                throw new VmConfigException("--timeout must be a positive number of seconds");
            }
            b.timeout(Duration.ofSeconds(timeoutSeconds));
        }
        return b.build();
    }

    /** --net, --vsock and -p, as {@link Networking} reads them (a configured VM's properties too). */
    private void networking(VmConfig.Builder b) {
        Networking.apply(b, net, vsockPorts, published, java.util.Optional.ofNullable(root), Networking.OPTIONS);
    }

    /** {@code HOST:GUEST[:ro]}: a virtio-fs share and the mount of it the guest init makes. */
    static void addVolume(VmConfig.Builder b, String volume, String tag) {
        String[] parts = volume.split(":", -1);
        boolean ro = parts.length == 3 && parts[2].equals("ro");
        if (parts.length < 2 || parts.length > 3 || (parts.length == 3 && !ro) || parts[0].isEmpty() || parts[1].isEmpty()) {
            throw new VmConfigException("volume '" + volume + "' is not HOST:GUEST or HOST:GUEST:ro");
        }
        // Whether HOST is a directory is the share device's to check when the VM is made (a failed run, not bad usage).
        Path host = Path.of(parts[0]).toAbsolutePath();
        if (!parts[1].startsWith("/")) {
            throw new VmConfigException("volume target '" + parts[1] + "' must be an absolute guest path");
        }
        if (Path.of(parts[1]).normalize().equals(Path.of("/"))) {
            throw new VmConfigException("volume '" + volume + "' would hide the guest's root: give the directory as --root");
        }
        b.device(new FsShareSpec(tag, host, ro));
        b.mount(new GuestMount(tag, parts[1], "virtiofs", ro ? "ro" : ""));
    }

    /**
     * Where this run's templates are kept, or null to boot cold: with --no-template, with --kernel-log (a
     * restored VM's kernel has nothing to show: the user wants to see it boot), where the launcher names no
     * template folder, and where that folder cannot be written or made (a read-only cache: the run boots).
     */
    private Path templates() {
        String dir = System.getProperty("krun.templates");
        if (noTemplate || kernelLog || dir == null || dir.isEmpty()) {
            return null;
        }
        // Nothing is made here (a run refused for bad input leaves the cache as it was): the template cache
        // makes its folder when it keeps the first template. Writable: the folder, or where it would be made.
        Path p = Path.of(dir).toAbsolutePath();
        Path existing = p;
        while (existing != null && !Files.exists(existing)) {
            existing = existing.getParent();
        }
        return existing != null && Files.isDirectory(existing) && Files.isWritable(existing) ? p : null;
    }

    /** A default the installation provides; without it, krun is installed wrong (a failure, not bad usage). */
    private static Path defaultPath(String property, String flag) {
        String p = System.getProperty(property);
        if (p == null || p.isEmpty()) {
            throw new KrunException("no default for " + flag + " (system property " + property + " is not set): give "
                    + flag + " explicitly");
        }
        return Path.of(p);
    }

    /** Gives the terminal its mode back; says how to repair it when the terminal refuses. */
    private static void restore(Termios.RawMode raw) {
        if (raw != null && !raw.restore()) {
            System.err.println("krun: could not restore the terminal (run 'stty sane')");
        }
    }

    /** Polls the host terminal's size and passes changes to the guest (no signal handling needed). */
    private static void watchWindowSize(VirtualMachine vm, Termios.Size initial) {
        Thread.ofPlatform().daemon(true).name("krun-winsize").start(() -> {
            Termios.Size last = initial;
            while (vm.state() != org.krun.api.VmState.STOPPED) {
                try {
                    Thread.sleep(200);
                } catch (InterruptedException e) {
                    return;
                }
                Termios.Size now = Termios.size(1).orElse(null);
                if (now != null && !now.equals(last)) {
                    vm.resizeConsole(now.columns(), now.rows());
                    last = now;
                }
            }
        });
    }
}
