package org.krun.api;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Everything that describes one microVM: its vCPUs and memory, the guest kernel, the root, the
 * command to run and its environment, the console, and any further devices.
 *
 * <p>Made only by {@link #builder()} (or {@link #toBuilder()}), so new properties can be added without
 * breaking callers. The builder validates what it can without touching the host (ranges, empty command);
 * {@link Krun#create(VmConfig)} checks the rest. Immutable.
 */
public final class VmConfig {

    public static final int MAX_CPUS = 64;
    public static final int MIN_MEMORY_MIB = 64;
    /** 1 TiB: far beyond what any host here has, but a bound against typos. */
    public static final int MAX_MEMORY_MIB = 1 << 20;

    private final int cpus;
    private final int memoryMib;
    private final boolean memoryOvercommit;
    private final Path kernel;
    private final Optional<Path> initrd;
    private final Optional<Path> root;
    private final boolean ephemeralRoot;
    private final Optional<GuestMount> rootMount;
    private final List<GuestMount> mounts;
    private final List<String> command;
    private final Map<String, String> env;
    private final String workdir;
    private final String hostname;
    private final Optional<GuestUser> user;
    private final boolean signals;
    private final long execPort;
    private final List<Rlimit> rlimits;
    private final ConsoleSpec console;
    private final List<DeviceSpec> devices;
    private final boolean defaultDevices;
    private final java.util.Set<String> withoutDefaults;
    private final List<String> kernelArgs;
    private final boolean kernelLog;
    private final Optional<Duration> timeout;
    private final Optional<Path> templateCache;

    private VmConfig(Builder b) {
        if (b.cpus < 1 || b.cpus > MAX_CPUS) {
            throw new VmConfigException("cpus must be between 1 and " + MAX_CPUS + ", not " + b.cpus);
        }
        if (b.memoryMib < MIN_MEMORY_MIB || b.memoryMib > MAX_MEMORY_MIB) {
            throw new VmConfigException("memory must be between " + MIN_MEMORY_MIB + " and " + MAX_MEMORY_MIB
                    + " MiB, not " + b.memoryMib);
        }
        this.cpus = b.cpus;
        this.memoryMib = b.memoryMib;
        this.memoryOvercommit = b.memoryOvercommit;
        this.kernel = Objects.requireNonNull(b.kernel, "kernel");
        this.initrd = Optional.ofNullable(b.initrd);
        this.root = Optional.ofNullable(b.root);
        this.ephemeralRoot = b.ephemeralRoot;
        this.rootMount = Optional.ofNullable(b.rootMount);
        rootMount.ifPresent(m -> {
            if (!m.target().equals("/")) {
                throw new VmConfigException("the root mount's target must be /, not " + m.target());
            }
        });
        this.mounts = List.copyOf(b.mounts);
        requireDistinctTargets(mounts);
        this.command = List.copyOf(b.command);
        if (command.isEmpty() || command.get(0).isEmpty()) {
            throw new VmConfigException("no command to run");
        }
        for (String arg : command) {
            requireNoNul(arg, "command argument");
        }
        this.env = Collections.unmodifiableMap(new LinkedHashMap<>(b.env));
        for (Map.Entry<String, String> e : env.entrySet()) {
            String name = e.getKey();
            if (name == null || name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0) {
                throw new VmConfigException("invalid environment variable name '" + name + "'");
            }
            requireNoNul(e.getValue(), "value of environment variable " + name);
        }
        String w = b.workdir == null || b.workdir.isEmpty() ? "/" : b.workdir;
        if (!w.startsWith("/")) {
            throw new VmConfigException("workdir must be an absolute guest path, not '" + w + "'");
        }
        requireNoNul(w, "workdir");
        this.workdir = w;
        String h = b.hostname == null || b.hostname.isEmpty() ? "krun" : b.hostname;
        requireHostName(h);
        this.hostname = h;
        this.user = Optional.ofNullable(b.user);
        this.signals = b.signals;
        if (b.execPort < 0 || b.execPort >= VsockPort.RESERVED_FIRST) {
            throw new VmConfigException("exec port " + b.execPort + " is out of range (1 to " + (VsockPort.RESERVED_FIRST - 1) + ")");
        }
        this.execPort = b.execPort;
        this.rlimits = List.copyOf(b.rlimits);
        this.console = Objects.requireNonNull(b.console, "console");
        this.devices = List.copyOf(b.devices);
        this.defaultDevices = b.defaultDevices;
        this.withoutDefaults = java.util.Collections.unmodifiableSet(new java.util.TreeSet<>(b.withoutDefaults));
        this.kernelArgs = List.copyOf(b.kernelArgs);
        for (String arg : kernelArgs) {
            requireKernelArg(arg);
        }
        this.kernelLog = b.kernelLog;
        this.timeout = Optional.ofNullable(b.timeout);
        this.templateCache = Optional.ofNullable(b.templateCache);
        timeout.ifPresent(t -> {
            if (t.isNegative() || t.isZero()) {
                throw new VmConfigException("timeout must be positive");
            }
        });
    }

    /** Linux's HOST_NAME_MAX. */
    private static final int MAX_HOSTNAME = 64;

    /**
     * A host name as RFC 1123 has it (what {@code hostname(1)} and resolvers accept): dot-separated labels of
     * letters, digits and hyphens, 1 to 63 characters each, neither starting nor ending with a hyphen; at most
     * {@value #MAX_HOSTNAME} characters in all, as the guest kernel keeps it.
     */
    private static void requireHostName(String h) {
        requireNoNul(h, "hostname");
        if (h.length() > MAX_HOSTNAME) {
            throw new VmConfigException("hostname '" + h + "' is longer than " + MAX_HOSTNAME + " characters");
        }
        for (String label : h.split("\\.", -1)) {
            if (label.isEmpty() || label.length() > 63 || label.startsWith("-") || label.endsWith("-")
                    || !label.chars().allMatch(c -> c < 128 && (Character.isLetterOrDigit(c) || c == '-'))) {
                throw new VmConfigException("hostname '" + h + "' is not a valid host name (letters, digits and "
                        + "hyphens, in dot-separated labels that neither start nor end with a hyphen)");
            }
        }
    }

    /** Two mounts at one guest path: the later would hide the earlier without a word. */
    private static void requireDistinctTargets(List<GuestMount> mounts) {
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (GuestMount m : mounts) {
            String target = java.nio.file.Path.of(m.target()).normalize().toString();
            if (!seen.add(target)) {
                throw new VmConfigException("two mounts at guest path " + target + ": each guest path takes one");
            }
        }
    }

    /** One argument of the kernel command line: it must stay one, and must not end the kernel's own arguments. */
    private static void requireKernelArg(String arg) {
        requireNoNul(arg, "kernel argument");
        if (arg.isBlank() || arg.equals("--") || arg.chars().anyMatch(c -> c < 0x20)) {
            throw new VmConfigException("kernel argument '" + arg + "' is not a kernel parameter");
        }
    }

    /** The guest receives these as C strings: a NUL would cut them short. */
    private static void requireNoNul(String s, String what) {
        if (s == null) {
            throw new VmConfigException(what + " is missing");
        }
        if (s.indexOf('\0') >= 0) {
            throw new VmConfigException(what + " contains a NUL character");
        }
    }

    /** Number of vCPUs, 1 to {@link #MAX_CPUS}. */
    public int cpus() {
        return cpus;
    }

    /** Guest RAM in MiB, {@link #MIN_MEMORY_MIB} to {@link #MAX_MEMORY_MIB}. */
    public int memoryMib() {
        return memoryMib;
    }

    /**
     * Whether the VM may have more memory than the host can give it (its RAM and swap, the cgroup's limit).
     * Guest memory is taken only as the guest touches it, so such a VM runs as long as the guest leaves enough
     * of its memory untouched; past that, the host's out-of-memory killer ends the whole JVM. False (the
     * default): {@link Krun#create} refuses it. Limits that refuse the mapping itself (RLIMIT_AS, strict
     * overcommit) hold either way.
     *
     * @since 1.1
     */
    public boolean memoryOvercommit() {
        return memoryOvercommit;
    }

    /** The guest kernel: an ELF {@code vmlinux} or a {@code bzImage}. */
    public Path kernel() {
        return kernel;
    }

    /** An initramfs (cpio, optionally compressed if the kernel can unpack it) to put under the root. */
    public Optional<Path> initrd() {
        return initrd;
    }

    /** A host directory that becomes the guest's root; empty for a root made only of the initrd. */
    public Optional<Path> root() {
        return root;
    }

    /**
     * Whether the guest sees {@link #root()} read-only, with its writes kept in a layer of its own memory
     * (an overlay on tmpfs) that goes with the VM, so the directory stays exactly as it was for every run
     * (krun's default root is shared this way). False: the directory is shared live and the guest's writes
     * land in it, as libkrun's {@code krun_set_root} does.
     */
    public boolean ephemeralRoot() {
        return ephemeralRoot;
    }

    /**
     * What the guest init mounts as its root instead of the initramfs (a disk, a share); empty to let
     * {@link #root()} decide.
     */
    public Optional<GuestMount> rootMount() {
        return rootMount;
    }

    /** Further filesystems the guest init mounts, in order. */
    public List<GuestMount> mounts() {
        return mounts;
    }

    /** The command and its arguments, run in the guest as process 1's child. */
    public List<String> command() {
        return command;
    }

    /** Environment variables for the command. */
    public Map<String, String> env() {
        return env;
    }

    /** The command's working directory in the guest. */
    public String workdir() {
        return workdir;
    }

    /** The guest's host name. */
    public String hostname() {
        return hostname;
    }

    /** Resource limits set before the command runs. */
    /**
     * The credentials the command runs with; empty: root's.
     *
     * @since 1.4
     */
    public Optional<GuestUser> user() {
        return user;
    }

    /**
     * Whether {@link VirtualMachine#signal} can reach the command: the console then carries one more port,
     * {@code krun-signals}, on which krun's init waits for them with the command (on the port's interrupt:
     * nothing is polled while the VM idles; since 1.5, before which the init polled the VMM ten times a
     * second). Off by default: the port is a little more work at boot, and most VMs have no one to send
     * them signals.
     *
     * @since 1.4
     */
    public boolean signals() {
        return signals;
    }

    /**
     * The guest vsock port on which krun's init serves exec requests (another process in the running guest,
     * as {@code krun oci exec} asks for them: guest/init/exec.c has the protocol), 1 to 262143, or 0: none. The init listens
     * on it once the guest is set up; the host reaches it through a {@link VsockPort} listen map of a
     * {@link VsockSpec} of this VM. Off by default.
     *
     * @since 1.6
     */
    public long execPort() {
        return execPort;
    }

    public List<Rlimit> rlimits() {
        return rlimits;
    }

    /** The console and the command's standard streams. */
    public ConsoleSpec console() {
        return console;
    }

    /** Further devices, in the order they are attached. */
    public List<DeviceSpec> devices() {
        return devices;
    }

    /**
     * Whether the VM also gets the devices that device bundles offer by default (entropy, balloon) when it
     * does not ask for them itself.
     */
    public boolean defaultDevices() {
        return defaultDevices;
    }

    /**
     * Device types whose default device this VM goes without while it keeps the others (a VM without
     * networking has no default vsock device, say).
     *
     * @since 1.1
     */
    public java.util.Set<String> withoutDefaults() {
        return withoutDefaults;
    }

    /** Extra kernel command-line arguments. */
    public List<String> kernelArgs() {
        return kernelArgs;
    }

    /** Whether the kernel's messages go to the host (early serial console, not quiet). */
    public boolean kernelLog() {
        return kernelLog;
    }

    /** Stop the VM after this long; empty for no limit. */
    public Optional<Duration> timeout() {
        return timeout;
    }

    /**
     * Where booted templates of VMs shaped like this one are kept, or empty (the default) to boot cold.
     * With a cache, a VM whose template is there starts from it rather than booting; one whose template is
     * missing boots, is snapshotted into the cache at the init's template point (kernel up, devices probed,
     * nothing of this run read), and goes on. A VM that cannot be templated (a device that cannot snapshot,
     * a root packed into the initramfs, a user initrd) boots cold. Experimental (API 1.3): see docs/templates.md.
     */
    public Optional<Path> templateCache() {
        return templateCache;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from this configuration. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.cpus = cpus;
        b.memoryMib = memoryMib;
        b.memoryOvercommit = memoryOvercommit;
        b.kernel = kernel;
        b.initrd = initrd.orElse(null);
        b.root = root.orElse(null);
        b.ephemeralRoot = ephemeralRoot;
        b.rootMount = rootMount.orElse(null);
        b.mounts = new ArrayList<>(mounts);
        b.command = new ArrayList<>(command);
        b.env = new LinkedHashMap<>(env);
        b.workdir = workdir;
        b.hostname = hostname;
        b.rlimits = new ArrayList<>(rlimits);
        b.console = console;
        b.devices = new ArrayList<>(devices);
        b.defaultDevices = defaultDevices;
        b.withoutDefaults = new java.util.TreeSet<>(withoutDefaults);
        b.kernelArgs = new ArrayList<>(kernelArgs);
        b.kernelLog = kernelLog;
        b.user = user.orElse(null);
        b.signals = signals;
        b.execPort = execPort;
        b.timeout = timeout.orElse(null);
        b.templateCache = templateCache.orElse(null);
        return b;
    }

    /** Equal when every property is (the console by identity of its streams, as {@link ConsoleSpec} is). */
    @Override
    public boolean equals(Object o) {
        return o instanceof VmConfig c && cpus == c.cpus && memoryMib == c.memoryMib
                && memoryOvercommit == c.memoryOvercommit && kernel.equals(c.kernel)
                && initrd.equals(c.initrd) && root.equals(c.root) && ephemeralRoot == c.ephemeralRoot
                && rootMount.equals(c.rootMount)
                && mounts.equals(c.mounts) && command.equals(c.command) && env.equals(c.env)
                && workdir.equals(c.workdir) && hostname.equals(c.hostname) && user.equals(c.user) && signals == c.signals
                && execPort == c.execPort
                && rlimits.equals(c.rlimits)
                && console.equals(c.console) && devices.equals(c.devices) && defaultDevices == c.defaultDevices
                && withoutDefaults.equals(c.withoutDefaults)
                && kernelArgs.equals(c.kernelArgs) && kernelLog == c.kernelLog && timeout.equals(c.timeout)
                && templateCache.equals(c.templateCache);
    }

    @Override
    public int hashCode() {
        return Objects.hash(cpus, memoryMib, memoryOvercommit, kernel, initrd, root, ephemeralRoot, rootMount, mounts, command, env, workdir, hostname,
                user, signals, execPort, rlimits, console, devices, defaultDevices, withoutDefaults, kernelArgs, kernelLog, timeout, templateCache);
    }

    @Override
    public String toString() {
        return "VmConfig[cpus=" + cpus + ", memoryMib=" + memoryMib + ", kernel=" + kernel
                + root.map(r -> ", root=" + r).orElse("") + ", command=" + command + ", devices=" + devices + "]";
    }

    /** Builds a {@link VmConfig}; defaults: 1 vCPU, 512 MiB, discarded console, workdir {@code /}. */
    public static final class Builder {
        private int cpus = 1;
        private int memoryMib = 512;
        private boolean memoryOvercommit;
        private Path kernel;
        private Path initrd;
        private Path root;
        private boolean ephemeralRoot;
        private GuestMount rootMount;
        private List<GuestMount> mounts = new ArrayList<>();
        private List<String> command = new ArrayList<>();
        private Map<String, String> env = new LinkedHashMap<>();
        private String workdir = "/";
        private String hostname = "krun";
        private GuestUser user;
        private boolean signals;
        private long execPort;
        private List<Rlimit> rlimits = new ArrayList<>();
        private ConsoleSpec console = ConsoleSpec.discard();
        private List<DeviceSpec> devices = new ArrayList<>();
        private boolean defaultDevices = true;
        private java.util.Set<String> withoutDefaults = new java.util.TreeSet<>();
        private List<String> kernelArgs = new ArrayList<>();
        private boolean kernelLog;
        private Duration timeout;
        private Path templateCache;

        private Builder() {
        }

        public Builder cpus(int cpus) {
            this.cpus = cpus;
            return this;
        }

        public Builder memoryMib(int memoryMib) {
            this.memoryMib = memoryMib;
            return this;
        }

        /**
         * See {@link VmConfig#memoryOvercommit()}; default false.
         *
         * @since 1.1
         */
        public Builder memoryOvercommit(boolean memoryOvercommit) {
            this.memoryOvercommit = memoryOvercommit;
            return this;
        }

        public Builder kernel(Path kernel) {
            this.kernel = kernel;
            return this;
        }

        public Builder initrd(Path initrd) {
            this.initrd = initrd;
            return this;
        }

        public Builder root(Path root) {
            this.root = root;
            return this;
        }

        /** See {@link VmConfig#ephemeralRoot()}; default false (the root directory is shared live). */
        public Builder ephemeralRoot(boolean ephemeralRoot) {
            this.ephemeralRoot = ephemeralRoot;
            return this;
        }

        public Builder rootMount(GuestMount rootMount) {
            this.rootMount = rootMount;
            return this;
        }

        public Builder mount(GuestMount mount) {
            mounts.add(mount);
            return this;
        }

        public Builder command(List<String> command) {
            this.command = new ArrayList<>(command);
            return this;
        }

        public Builder command(String... command) {
            return command(List.of(command));
        }

        public Builder env(String name, String value) {
            env.put(name, value);
            return this;
        }

        public Builder env(Map<String, String> env) {
            this.env.putAll(env);
            return this;
        }

        public Builder workdir(String workdir) {
            this.workdir = workdir;
            return this;
        }

        public Builder hostname(String hostname) {
            this.hostname = hostname;
            return this;
        }

        /**
         * The credentials the command runs with (null: root's).
         *
         * @since 1.4
         */
        public Builder user(GuestUser user) {
            this.user = user;
            return this;
        }

        /**
         * Lets {@link VirtualMachine#signal} reach the command (see {@link VmConfig#signals()}).
         *
         * @since 1.4
         */
        public Builder signals(boolean signals) {
            this.signals = signals;
            return this;
        }

        /**
         * The guest vsock port krun's init serves exec requests on, 0 for none (see {@link VmConfig#execPort()}).
         *
         * @since 1.6
         */
        public Builder execPort(long port) {
            this.execPort = port;
            return this;
        }

        public Builder rlimit(Rlimit rlimit) {
            rlimits.add(rlimit);
            return this;
        }

        public Builder console(ConsoleSpec console) {
            this.console = console;
            return this;
        }

        public Builder device(DeviceSpec device) {
            devices.add(device);
            return this;
        }

        public Builder defaultDevices(boolean defaultDevices) {
            this.defaultDevices = defaultDevices;
            return this;
        }

        /**
         * Leaves out the default device of {@code type} (see {@link VmConfig#withoutDefaults()}).
         *
         * @since 1.1
         */
        public Builder withoutDefault(String type) {
            withoutDefaults.add(Objects.requireNonNull(type, "type"));
            return this;
        }

        public Builder kernelArg(String arg) {
            kernelArgs.add(arg);
            return this;
        }

        public Builder kernelLog(boolean kernelLog) {
            this.kernelLog = kernelLog;
            return this;
        }

        public Builder timeout(Duration timeout) {
            this.timeout = timeout;
            return this;
        }

        /** See {@link VmConfig#templateCache()}; null (the default) boots cold. */
        public Builder templateCache(Path dir) {
            this.templateCache = dir;
            return this;
        }

        /** Devices replace the ones added so far (for a core that rewrites a configuration). */
        public Builder devices(List<DeviceSpec> devices) {
            this.devices = new ArrayList<>(devices);
            return this;
        }

        /**
         * The configuration, validated as far as possible without touching the host.
         *
         * @throws VmConfigException with a one-line message naming what is wrong
         */
        public VmConfig build() {
            if (kernel == null) {
                throw new VmConfigException("no kernel given");
            }
            return new VmConfig(this);
        }
    }
}
