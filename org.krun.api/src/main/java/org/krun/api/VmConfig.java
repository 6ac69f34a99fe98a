package org.krun.api;

import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * Everything that describes one microVM: its vCPUs and memory, the guest kernel, the root, the
 * command to run and its environment, the console, and any further devices.
 *
 * <p>Build one with {@link #builder()}. The record validates what it can without touching the host
 * (ranges, empty command); {@link Krun#create(VmConfig)} checks the rest.
 *
 * @param cpus number of vCPUs, 1 to {@link #MAX_CPUS}
 * @param memoryMib guest RAM in MiB, {@link #MIN_MEMORY_MIB} to {@link #MAX_MEMORY_MIB}
 * @param kernel the guest kernel: an ELF {@code vmlinux} or a {@code bzImage}
 * @param initrd an initramfs (cpio, optionally compressed if the kernel can unpack it) to put under the root
 * @param root a host directory that becomes the guest's root; empty for a root made only of the initrd
 * @param rootMount what the guest init mounts as its root instead of the initramfs (a disk, a share);
 *        empty to let {@code root} decide
 * @param mounts further filesystems the guest init mounts, in order
 * @param command the command and its arguments, run in the guest as process 1's child
 * @param env environment variables for the command
 * @param workdir the command's working directory in the guest
 * @param hostname the guest's host name
 * @param rlimits resource limits set before the command runs
 * @param console the console and the command's standard streams
 * @param devices further devices, in the order they are attached
 * @param defaultDevices whether the VM also gets the devices that device bundles offer by default
 *        (entropy, balloon) when it does not ask for them itself
 * @param kernelArgs extra kernel command-line arguments
 * @param kernelLog whether the kernel's messages go to the host (early serial console, not quiet)
 * @param timeout stop the VM after this long; empty for no limit
 */
public record VmConfig(
        int cpus,
        int memoryMib,
        Path kernel,
        Optional<Path> initrd,
        Optional<Path> root,
        Optional<GuestMount> rootMount,
        List<GuestMount> mounts,
        List<String> command,
        Map<String, String> env,
        String workdir,
        String hostname,
        List<Rlimit> rlimits,
        ConsoleSpec console,
        List<DeviceSpec> devices,
        boolean defaultDevices,
        List<String> kernelArgs,
        boolean kernelLog,
        Optional<Duration> timeout) {

    public static final int MAX_CPUS = 64;
    public static final int MIN_MEMORY_MIB = 64;
    /** 1 TiB: far beyond what any host here has, but a bound against typos. */
    public static final int MAX_MEMORY_MIB = 1 << 20;

    public VmConfig {
        if (cpus < 1 || cpus > MAX_CPUS) {
            throw new VmConfigException("cpus must be between 1 and " + MAX_CPUS + ", not " + cpus);
        }
        if (memoryMib < MIN_MEMORY_MIB || memoryMib > MAX_MEMORY_MIB) {
            throw new VmConfigException("memory must be between " + MIN_MEMORY_MIB + " and " + MAX_MEMORY_MIB
                    + " MiB, not " + memoryMib);
        }
        Objects.requireNonNull(kernel, "kernel");
        initrd = Objects.requireNonNull(initrd, "initrd");
        root = Objects.requireNonNull(root, "root");
        rootMount = Objects.requireNonNull(rootMount, "rootMount");
        rootMount.ifPresent(m -> {
            if (!m.target().equals("/")) {
                throw new VmConfigException("the root mount's target must be /, not " + m.target());
            }
        });
        mounts = List.copyOf(mounts);        command = List.copyOf(command);
        if (command.isEmpty() || command.get(0).isEmpty()) {
            throw new VmConfigException("no command to run");
        }
        for (String arg : command) {
            requireNoNul(arg, "command argument");
        }
        env = java.util.Collections.unmodifiableMap(new LinkedHashMap<>(env));
        for (Map.Entry<String, String> e : env.entrySet()) {
            String name = e.getKey();
            if (name.isEmpty() || name.indexOf('=') >= 0 || name.indexOf('\0') >= 0) {
                throw new VmConfigException("invalid environment variable name '" + name + "'");
            }
            requireNoNul(e.getValue(), "value of environment variable " + name);
        }
        workdir = workdir == null || workdir.isEmpty() ? "/" : workdir;
        if (!workdir.startsWith("/")) {
            throw new VmConfigException("workdir must be an absolute guest path, not '" + workdir + "'");
        }
        requireNoNul(workdir, "workdir");
        hostname = hostname == null || hostname.isEmpty() ? "krun" : hostname;
        requireNoNul(hostname, "hostname");
        if (hostname.length() > 64) {
            throw new VmConfigException("hostname is longer than 64 characters");
        }
        rlimits = List.copyOf(rlimits);
        Objects.requireNonNull(console, "console");
        devices = List.copyOf(devices);
        kernelArgs = List.copyOf(kernelArgs);
        timeout = Objects.requireNonNull(timeout, "timeout");
        timeout.ifPresent(t -> {
            if (t.isNegative() || t.isZero()) {
                throw new VmConfigException("timeout must be positive");
            }
        });
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

    public static Builder builder() {
        return new Builder();
    }

    /** A builder starting from this configuration. */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.cpus = cpus;
        b.memoryMib = memoryMib;
        b.kernel = kernel;
        b.initrd = initrd.orElse(null);
        b.root = root.orElse(null);
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
        b.kernelArgs = new ArrayList<>(kernelArgs);
        b.kernelLog = kernelLog;
        b.timeout = timeout.orElse(null);
        return b;
    }

    /** Builds a {@link VmConfig}; defaults: 1 vCPU, 512 MiB, discarded console, workdir {@code /}. */
    public static final class Builder {
        private int cpus = 1;
        private int memoryMib = 512;
        private Path kernel;
        private Path initrd;
        private Path root;
        private GuestMount rootMount;
        private List<GuestMount> mounts = new ArrayList<>();
        private List<String> command = new ArrayList<>();
        private Map<String, String> env = new LinkedHashMap<>();
        private String workdir = "/";
        private String hostname = "krun";
        private List<Rlimit> rlimits = new ArrayList<>();
        private ConsoleSpec console = ConsoleSpec.discard();
        private List<DeviceSpec> devices = new ArrayList<>();
        private boolean defaultDevices = true;
        private List<String> kernelArgs = new ArrayList<>();
        private boolean kernelLog;
        private Duration timeout;

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

        public VmConfig build() {
            if (kernel == null) {
                throw new VmConfigException("no kernel given");
            }
            return new VmConfig(cpus, memoryMib, kernel, Optional.ofNullable(initrd), Optional.ofNullable(root),
                    Optional.ofNullable(rootMount), mounts, command, env, workdir, hostname, rlimits, console, devices, defaultDevices, kernelArgs, kernelLog,
                    Optional.ofNullable(timeout));
        }
    }
}
