package org.krun.vmm.internal;

import java.lang.System.Logger.Level;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.SortedMap;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.locks.LockSupport;
import java.util.function.Consumer;

import org.krun.api.ConsoleSpec;
import org.krun.api.KrunException;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.api.VmExit;
import org.krun.api.VmState;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.hypervisor.Vcpu;
import org.krun.spi.hypervisor.VcpuExit;
import org.krun.spi.hypervisor.X86BootState;
import org.krun.spi.memory.GuestMemory;
import org.krun.spi.virtio.HostConsole;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.RateLimitedLog;
import org.krun.spi.virtio.SnapshottableDevice;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioIds;
import org.krun.vmm.internal.boot.E820;
import org.krun.vmm.internal.boot.Gdt;
import org.krun.vmm.internal.boot.KernelCommandLine;
import org.krun.vmm.internal.boot.KernelImage;
import org.krun.vmm.internal.boot.MpTable;
import org.krun.vmm.internal.boot.PageTables;
import org.krun.vmm.internal.boot.SharedMemoryWindow;
import org.krun.vmm.internal.boot.X86Layout;
import org.krun.vmm.internal.boot.ZeroPage;
import org.krun.vmm.internal.bus.Bus;
import org.krun.vmm.internal.event.EpollEventLoop;
import org.krun.vmm.internal.initramfs.Initramfs;
import org.krun.vmm.internal.legacy.Cmos;
import org.krun.vmm.internal.legacy.I8042;
import org.krun.vmm.internal.legacy.InitPorts;
import org.krun.vmm.internal.legacy.Serial8250;
import org.krun.vmm.internal.memory.GuestRam;
import org.krun.vmm.internal.memory.MemorySlots;
import org.krun.vmm.internal.snapshot.SnapshotException;
import org.krun.vmm.internal.snapshot.SnapshotFile;
import org.krun.vmm.internal.snapshot.SnapshotState;
import org.krun.vmm.internal.template.FileDigests;
import org.krun.vmm.internal.template.TemplateCache;
import org.krun.vmm.internal.template.TemplateKey;
import org.krun.vmm.internal.virtio.MmioTransport;

/**
 * One microVM. {@link #start()} builds it step by step (memory, vCPUs, kernel, devices, boot structures)
 * and starts a thread per vCPU plus the device event loop; a guest reset, a failure, a timeout or
 * {@link #kill()} stops it, and the event-loop thread then drains the devices, joins the vCPUs and
 * releases everything in reverse order of acquisition.
 */
final class Machine implements VirtualMachine {
    private static final System.Logger LOG = System.getLogger(Machine.class.getName());
    private static final long MIB = 1024 * 1024;
    /** Beside the templates: the kernels' digests by path and stamps ({@link FileDigests}), not a template. */
    private static final String KERNEL_DIGESTS = ".kernel-digests";
    private static final long HALT_SLEEP_NANOS = 1_000_000;

    private enum Phase { CREATED, STARTING, RUNNING, STOPPING, STOPPED }

    private final String id;
    private final VmConfig config;
    /** The configuration's console with streams that also feed {@link #tail}. */
    private final ConsoleSpec consoleStreams;
    private final ConsoleTail tail;
    /** The kernel's errors, from its early serial console: why a guest that never reported a status stopped. */
    private final ConsoleTail kernelLog = new ConsoleTail(KernelLog.TAIL_BYTES);
    private volatile boolean initStarted;
    private final BootConsoleGate bootGate;
    private final Hypervisor hypervisor;
    private final List<VirtioDevice> devices;
    private final HostConsole console;
    private final byte[] init;
    private final Consumer<Machine> onClosed;
    private final CompletableFuture<VmExit> exit = new CompletableFuture<>();
    private final ResourceStack resources = new ResourceStack();
    private final Object lock = new Object();
    private final BootTimeline timeline = new BootTimeline();
    /** Device accesses from vCPUs that failed: the guest can cause them in a loop, so at most one line per interval. */
    private final RateLimitedLog accessErrors = new RateLimitedLog(m -> LOG.log(Level.WARNING, m), Duration.ofSeconds(10));

    private Phase phase = Phase.CREATED;
    private Instant startedAt;
    private VmExit stopReason;
    private volatile boolean stopping;
    /** kill() arrived while the VM was being built: stop as soon as it runs. */
    private boolean killWhileStarting;
    private volatile Integer reportedStatus;

    private EpollEventLoop loop;
    private final List<Vcpu> vcpus = new ArrayList<>();
    private final List<Thread> vcpuThreads = new ArrayList<>();
    private final List<MmioTransport> transports = new ArrayList<>();
    private Bus io;
    private Bus mmio;
    private boolean vcpusStuck;
    private GuestRam ram;
    private HypervisorVm hypervisorVm;
    private Serial8250 serial;
    private Cmos cmos;

    /** Where {@link #start()} restores from instead of booting (a snapshot, or a template found); null for a boot. */
    private Path snapshotDir;
    private SnapshotState snapshot;

    /** What the devices need of the guest, asked once when the VM is built. */
    private final List<org.krun.spi.virtio.GuestSetup> setups = new ArrayList<>();
    private GuestFiles files;
    private InitPorts initPorts;
    /** Set when the init reads its configuration from the VMM after the template point (docs/templates.md). */
    private boolean templatedInit;
    /** The template this VM restores, with its cache and key; null unless restoring one. */
    private FoundTemplate restoringTemplate;
    /** The kernel digests the template key used ({@link #rememberKernelDigest}). */
    private volatile FileDigests kernelDigests;

    private record FoundTemplate(TemplateCache cache, TemplateKey key, String digest) {
    }

    /** The cache and key to snapshot this boot into at the template point; null when not making a template. */
    private TemplateCache templateCache;
    private TemplateKey templateKey;
    private String templateDigest;
    private final java.util.concurrent.atomic.AtomicBoolean templatePointSeen = new java.util.concurrent.atomic.AtomicBoolean();

    /** How long {@link #pause()} waits for every vCPU to reach its safe point. */
    static final Duration PAUSE_TIMEOUT = Duration.ofSeconds(10);
    private final Object pauseMonitor = new Object();
    /** Guarded by pauseMonitor. */
    private boolean pauseRequested;
    private int vcpusPaused;
    /** pauseRequested, for the vCPU loop's cheap check. */
    private volatile boolean pausing;

    /**
     * A VM; with a {@code snapshotDir} and its {@code state}, one that starts from that snapshot rather than
     * booting. {@code bootGate} shuts {@code consoleStreams} until init starts.
     */
    Machine(String id, VmConfig config, ConsoleSpec consoleStreams, ConsoleTail tail, BootConsoleGate bootGate,
            Hypervisor hypervisor, List<VirtioDevice> devices, byte[] init, Consumer<Machine> onClosed,
            Path snapshotDir, SnapshotState state) {
        this.snapshotDir = snapshotDir;
        this.snapshot = state;
        this.id = id;
        this.config = config;
        this.consoleStreams = consoleStreams;
        this.tail = tail;
        this.bootGate = bootGate;
        this.hypervisor = hypervisor;
        this.devices = List.copyOf(devices);
        this.console = devices.stream().filter(HostConsole.class::isInstance).map(HostConsole.class::cast)
                .findFirst().orElse(null);
        this.init = init;
        this.onClosed = onClosed;
    }

    @Override
    public String id() {
        return id;
    }

    @Override
    public VmConfig config() {
        return config;
    }

    @Override
    public VmState state() {
        synchronized (lock) {
            return switch (phase) {
                case CREATED -> VmState.CREATED;
                case STARTING, RUNNING, STOPPING -> VmState.RUNNING;
                case STOPPED -> VmState.STOPPED;
            };
        }
    }

    @Override
    public Optional<Instant> startedAt() {
        synchronized (lock) {
            return Optional.ofNullable(startedAt);
        }
    }

    @Override
    public void start() {
        synchronized (lock) {
            if (phase != Phase.CREATED) {
                throw new IllegalStateException("VM " + id + " was already started");
            }
            phase = Phase.STARTING;
            startedAt = Instant.now();
        }
        timeline.mark(BootTimeline.Event.START);
        try {
            if (snapshot == null) {
                for (VirtioDevice d : devices) {
                    setups.add(d.guestSetup());
                }
                files = new GuestFiles();
                setups.forEach(files::add);
                config.templateCache().ifPresent(this::findOrPlanTemplate);
            }
            if (snapshot != null && restoringTemplate != null) {
                restoreTemplateOrBoot();
            } else if (snapshot != null) {
                restore();
            } else {
                boot();
            }
        } catch (RuntimeException | Error e) {
            // Devices first, as finish() does: a restore may have activated them on this RAM.
            closeDevices();
            resources.releaseAll();
            String message = e.getMessage() == null ? e.toString() : e.getMessage();
            synchronized (lock) {
                phase = Phase.STOPPED;
            }
            onClosed.accept(this); // gone from Krun.list() before anyone waiting on exit() wakes up
            exit.complete(VmExit.failed("start failed: " + message));
            if (e instanceof KrunException k) {
                throw k;
            }
            throw new KrunException("VM " + id + " failed to start: " + message, e);
        }
    }

    /** The boot sequence, one step a line. */
    private void boot() {
        long started = System.nanoTime();
        ram = resources.push("guest RAM", GuestRam.allocate(config.memoryMib() * MIB));
        GuestMemory mem = ram.memory();
        HypervisorVm vm = resources.push("hypervisor VM", hypervisor.createVm(config.cpus()));
        hypervisorVm = vm;
        ram.mapInto(vm);
        vm.createInterruptControllers();
        for (int i = 0; i < config.cpus(); i++) {
            vcpus.add(vm.createVcpu(i));
        }
        KernelImage.Loaded kernel = KernelImage.load(config.kernel(), mem);
        if (!kernel.linux()) {
            bootGate.open(); // no krun init will say it started: what the guest prints is all its own
        }
        loop = resources.push("event loop", new EpollEventLoop());
        io = legacyDevices();
        mmio = new Bus("mmio");
        mmio.insert(X86Layout.CONFIG_WINDOW_BASE, InitPorts.CONFIG_WINDOW_SIZE, initPorts.configWindow());
        KernelCommandLine cmdline = baseCommandLine();
        attachDevices(vm, mem, cmdline);
        for (org.krun.spi.virtio.GuestSetup setup : setups) {
            cmdline.addAll(setup.kernelArgs());
        }
        cmdline.addAll(hypervisor.guestKernelArgs()).addAll(config.kernelArgs());
        long[] initrd = loadInitramfs(mem, ram.lowEnd(), kernel.end());
        int cmdlineSize = cmdline.write(mem);
        ZeroPage.write(mem, kernel.isBzImage() ? kernel.setupHeader() : null, X86Layout.CMDLINE_ADDRESS, cmdlineSize,
                initrd[0], initrd[1], E820.of(mem));
        Gdt.write(mem);
        long cr3 = PageTables.write(mem);
        MpTable.write(mem, config.cpus());
        vcpus.get(0).setBootState(bootState(kernel.entry(), cr3));
        LOG.log(Level.DEBUG, () -> "vm " + id + ": built in " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) + " ms; kernel command line: " + cmdline);
        startThreads();
        config.timeout().ifPresent(t -> loop.setDeadline(System.nanoTime() + t.toNanos(),
                () -> stop(VmExit.timedOut("timed out after " + t.toMillis() / 1000.0 + " s: VM stopped"))));
    }

    /**
     * The restore sequence, one step a line: the snapshot's RAM mapped copy-on-write, the VM and its
     * devices made as a boot makes them, then each part's saved state put back (the VM's interrupt
     * controllers and clock, the vCPUs, then transports and devices, which may interrupt), and the threads
     * started.
     */
    private void restore() {
        long started = System.nanoTime();
        bootGate.open(); // the boot is behind a snapshot: what the guest prints now is the run's
        ram = resources.push("guest RAM", GuestRam.mapSnapshot(snapshotDir.resolve(SnapshotFile.RAM_FILE), snapshot.ramBytes()));
        GuestMemory mem = ram.memory();
        hypervisorVm = resources.push("hypervisor VM", hypervisor.createVm(config.cpus()));
        ram.mapInto(hypervisorVm);
        hypervisorVm.createInterruptControllers();
        for (int i = 0; i < config.cpus(); i++) {
            vcpus.add(hypervisorVm.createVcpu(i));
        }
        loop = resources.push("event loop", new EpollEventLoop());
        io = legacyDevices();
        restoreLegacy(snapshot.legacy());
        mmio = new Bus("mmio");
        mmio.insert(X86Layout.CONFIG_WINDOW_BASE, InitPorts.CONFIG_WINDOW_SIZE, initPorts.configWindow());
        attachDevices(hypervisorVm, mem, new KernelCommandLine());
        hypervisorVm.restoreState(snapshot.vm());
        for (int i = 0; i < vcpus.size(); i++) {
            vcpus.get(i).restoreState(snapshot.vcpus().get(i));
        }
        // The devices after the interrupt controllers: an interrupt a device raises as it takes its state (a
        // disk's configuration change) would be lost under the irqchip's and the LAPICs' saved state.
        loop.callBeforeRun(this::restoreDevices);
        LOG.log(Level.DEBUG, () -> "vm " + id + ": restored from " + snapshotDir + " in "
                + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) + " ms");
        if (templatedInit) {
            // A VM restored from a template: its init waits at the template point for this run's configuration.
            initPorts.offerRunConfig(runConfig());
        }
        startThreads();
        config.timeout().ifPresent(t -> loop.setDeadline(System.nanoTime() + t.toNanos(),
                () -> stop(VmExit.timedOut("timed out after " + t.toMillis() / 1000.0 + " s: VM stopped"))));
    }

    /**
     * Restores the template found for this VM; if that fails before the VM ran, undoes the restore and boots
     * cold instead, so a template never costs a run more than the time it took to find out. A template
     * whose state is refused (a device, the hypervisor or the host CPU will not take it) is removed, and the
     * boot makes a new one; after any other failure (the host's: memory, files) the template stays.
     */
    private void restoreTemplateOrBoot() {
        try {
            restore();
            rememberKernelDigest();
            return;
        } catch (RuntimeException e) {
            synchronized (lock) {
                if (phase != Phase.STARTING || !vcpuThreads.isEmpty()) {
                    throw e; // it ran: nothing to fall back from
                }
            }
            String reason = e.getMessage() == null ? e.toString() : e.getMessage();
            boolean refused = e instanceof SnapshotException || e instanceof IllegalArgumentException;
            LOG.log(Level.WARNING, "vm " + id + ": template " + snapshotDir + " could not be restored"
                    + (refused ? " and was removed" : "") + "; booting cold: " + reason.lines().findFirst().orElse(""));
            undoRestore();
            if (refused) {
                restoringTemplate.cache().remove(restoringTemplate.digest());
                templateCache = restoringTemplate.cache();
                templateKey = restoringTemplate.key();
                templateDigest = restoringTemplate.digest();
            } else {
                templatedInit = false; // a plain cold boot: the init finds its configuration in the initramfs
            }
        }
        restoringTemplate = null;
        snapshot = null;
        snapshotDir = null;
        boot();
    }

    /** Takes back what a failed {@link #restore()} built, keeping the devices for a boot. */
    private void undoRestore() {
        if (loop != null) {
            try {
                loop.callBeforeRun(() -> {
                    transports.forEach(MmioTransport::resetDevice);
                    return null;
                });
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "vm " + id + ": resetting devices after a failed restore: " + e);
            }
        }
        resources.releaseAll();
        transports.clear();
        vcpus.clear();
        ram = null;
        hypervisorVm = null;
        loop = null;
        initStarted = false;
        reportedStatus = null;
        bootGate.shut();
    }

    /**
     * Templates (docs/templates.md): a VM that can be templated restores the template of its key when the
     * cache has a sound one, and otherwise boots with an init that stops at the template point, where
     * {@link #takeTemplate()} snapshots it into the cache. A VM that cannot be templated boots cold.
     */
    private void findOrPlanTemplate(Path cacheDir) {
        String why = untemplatable();
        if (why != null) {
            LOG.log(Level.DEBUG, () -> "vm " + id + ": booting cold, no template: " + why);
            return;
        }
        TemplateKey key;
        try {
            key = templateKey(cacheDir);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "vm " + id + ": booting cold, no template key: " + e.getMessage());
            return;
        }
        TemplateCache cache = new TemplateCache(cacheDir, TemplateCache.DEFAULT_MAX_TEMPLATES);
        String digest = key.digest();
        Optional<Path> found = cache.lookup(digest);
        if (found.isPresent()) {
            try {
                SnapshotState state = SnapshotFile.read(found.get().resolve(SnapshotFile.STATE_FILE));
                long size = Files.size(found.get().resolve(SnapshotFile.RAM_FILE));
                if (size != state.ramBytes() || !state.shape().equals(shape(config, devices))
                        || !state.backend().equals(hypervisor.name()) || !state.cpuSignature().equals(hypervisor.hostCpuSignature())) {
                    throw new SnapshotException("its RAM, shape or host differs from its state");
                }
                snapshotDir = found.get();
                snapshot = state;
                restoringTemplate = new FoundTemplate(cache, key, digest);
                templatedInit = true;
                LOG.log(Level.DEBUG, () -> "vm " + id + ": restoring template " + digest);
                return;
            } catch (SnapshotException | IOException e) {
                LOG.log(Level.WARNING, "vm " + id + ": template " + found.get() + " is unusable, removed: " + e.getMessage());
                cache.remove(digest);
            }
        }
        templateCache = cache;
        templateKey = key;
        templateDigest = digest;
        templatedInit = true;
    }

    /** Why this VM cannot be templated, or null if it can. */
    private String untemplatable() {
        if (!hypervisor.supportsSnapshots()) {
            return "hypervisor backend " + hypervisor.name() + " cannot snapshot";
        }
        if (config.initrd().isPresent()) {
            return "a user initrd is unpacked before the template point";
        }
        if (config.root().isPresent() && config.rootMount().isEmpty()) {
            return "the root is packed into the initramfs";
        }
        for (VirtioDevice d : devices) {
            if (!(d instanceof SnapshottableDevice)) {
                return "device " + deviceName(d) + " cannot snapshot";
            }
        }
        return null;
    }

    /** Remembers the kernel's digest once a template of it was restored or made: a run that failed writes nothing. */
    private void rememberKernelDigest() {
        FileDigests d = kernelDigests;
        if (d != null) {
            d.remember();
        }
    }

    /**
     * Everything the guest saw or ran before the template point: the host (backend, CPU), the kernel and init
     * builds, the kernel command line's parts, memory, vCPUs, the devices in order with their features and
     * config space (a virtio-fs tag, a disk's serial and block size). Not in it: what the init reads afterwards (command,
     * environment, root, mounts, hostname, files, the terminal's size, a disk's capacity) and the host side of devices (a share's
     * directory, an image path).
     */
    private TemplateKey templateKey(Path cacheDir) throws IOException {
        kernelDigests = new FileDigests(cacheDir.resolve(KERNEL_DIGESTS));
        TemplateKey k = new TemplateKey()
                .add("backend", hypervisor.name())
                .add("cpu", hypervisor.hostCpuSignature())
                .add("kernel", kernelDigests.digest(config.kernel()))
                .addDigestOf("init", init)
                .add("cmdline", baseCommandLine().toString())
                .add("hypervisor args", String.join(" ", hypervisor.guestKernelArgs()))
                .add("user args", String.join(" ", config.kernelArgs()))
                .add("shape", shape(config, devices));
        for (int i = 0; i < devices.size(); i++) {
            VirtioDevice d = devices.get(i);
            k.add("device " + i + " config", d.templateKeyConfig()).add("device " + i + " args", String.join(" ", setups.get(i).kernelArgs()));
        }
        return k;
    }

    /**
     * Each block device's capacity in sectors (virtio 1.2 §5.2.4: the first field of its configuration space),
     * by its index among the virtio-mmio devices, in order. Not in the template key (a disk blanks it): a
     * restored init waits until the guest kernel has this run's capacity.
     */
    private SortedMap<Integer, Long> diskCapacities() {
        SortedMap<Integer, Long> disks = new TreeMap<>();
        for (int i = 0; i < devices.size(); i++) {
            VirtioDevice d = devices.get(i);
            if (d.deviceType() == VirtioIds.BLOCK && d.configSize() >= Long.BYTES) {
                byte[] capacity = new byte[Long.BYTES];
                d.readConfig(0, capacity);
                disks.put(i, ByteBuffer.wrap(capacity).order(ByteOrder.LITTLE_ENDIAN).getLong());
            }
        }
        return disks;
    }

    /** This run's configuration for an init that reads it after the template point. */
    private byte[] runConfig() {
        byte[] seed = new byte[64];
        new java.security.SecureRandom().nextBytes(seed);
        byte[] json = InitConfig.forTemplatedInit(config, files.replace(), files.append(), Instant.now(), seed,
                diskCapacities());
        LOG.log(Level.DEBUG, () -> "vm " + id + ": the init's configuration is " + json.length + " bytes");
        return json;
    }

    /** The init reached its template point (on the vCPU's thread: the snapshot is taken from another). */
    private void templatePoint() {
        if (!templatedInit || !templatePointSeen.compareAndSet(false, true)) {
            return;
        }
        timeline.mark(BootTimeline.Event.TEMPLATE);
        if (templateCache == null) {
            initPorts.offerRunConfig(runConfig()); // cannot happen: a restored init has its configuration already
            return;
        }
        Thread.ofPlatform().name("krun-" + id + "-template").daemon(true).start(this::takeTemplate);
    }

    /** Pauses the VM at its template point, snapshots it into the cache, hands the init its configuration, resumes. */
    private void takeTemplate() {
        long started = System.nanoTime();
        try {
            pause();
            Path staged = templateCache.stage();
            try {
                snapshot(staged);
                Path dir = templateCache.commit(templateDigest, staged, templateKey.description());
                rememberKernelDigest();
                LOG.log(Level.DEBUG, () -> "vm " + id + ": template " + dir + " made in "
                        + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) + " ms");
            } catch (RuntimeException | IOException e) {
                templateCache.discard(staged);
                throw e;
            }
        } catch (RuntimeException | IOException e) {
            LOG.log(Level.WARNING, "vm " + id + ": no template made, the run goes on: " + e.getMessage());
        } finally {
            initPorts.offerRunConfig(runConfig());
            resume();
        }
    }

    /**
     * Each transport's registers and each device's own state, applied on the loop before any thread of the
     * VM runs: a state a device refuses (a file changed since, or a device configured otherwise) fails the
     * restore with one line naming the device, and {@link #start()} releases what was built.
     */
    private Void restoreDevices() {
        for (int n = 0; n < transports.size(); n++) {
            VirtioDevice d = transports.get(n).device();
            try {
                transports.get(n).restoreState(snapshot.transports().get(n), snapshot.devices().get(n));
            } catch (RuntimeException e) {
                String name = deviceName(d);
                String reason = e.getMessage() == null ? e.toString() : e.getMessage();
                if (reason.startsWith(name + ": ")) {
                    reason = reason.substring(name.length() + 2);
                }
                String line = "cannot restore device " + name + " from snapshot " + snapshotDir + ": "
                        + reason.lines().findFirst().orElse("");
                // A refused state is the snapshot's or the configuration's; anything else is the host's.
                throw e instanceof IllegalArgumentException ? new SnapshotException(line) : new KrunException(line, e);
            }
        }
        return null;
    }

    /**
     * The VM's shape as a snapshot records it: what a configuration restoring the snapshot must make the
     * same (memory, vCPUs, and the devices in slot order with their queue counts and features).
     */
    static String shape(VmConfig config, List<VirtioDevice> devices) {
        StringBuilder b = new StringBuilder();
        b.append(config.memoryMib()).append(" MiB, ").append(config.cpus()).append(config.cpus() == 1 ? " vCPU" : " vCPUs")
                .append(", devices [");
        for (int i = 0; i < devices.size(); i++) {
            VirtioDevice d = devices.get(i);
            b.append(i == 0 ? "" : ", ").append(typeName(d.deviceType())).append(" (type ").append(d.deviceType()).append(", ")
                    .append(d.queueCount()).append(" queues, features 0x").append(Long.toHexString(d.deviceFeatures())).append(')');
        }
        return b.append(']').toString();
    }

    /**
     * A device type's name in a VM's shape: not the device's own name, which may name its host side (a disk's
     * image path), since a snapshot or template restores over other host files (docs/templates.md).
     */
    static String typeName(int type) {
        return switch (type) {
            case VirtioIds.NET -> "net";
            case VirtioIds.BLOCK -> "block";
            case VirtioIds.CONSOLE -> "console";
            case VirtioIds.ENTROPY -> "entropy";
            case VirtioIds.BALLOON -> "balloon";
            case VirtioIds.GPU -> "gpu";
            case VirtioIds.VSOCK -> "vsock";
            case VirtioIds.SOUND -> "sound";
            case VirtioIds.FS -> "fs";
            default -> "virtio";
        };
    }

    static String deviceName(VirtioDevice d) {
        return d instanceof AbstractVirtioDevice<?> a ? a.name() : "virtio device type " + d.deviceType();
    }

    private Map<String, byte[]> saveLegacy() {
        Map<String, byte[]> m = new LinkedHashMap<>();
        m.put("serial", serial.saveState());
        m.put("cmos", cmos.saveState());
        Integer status = reportedStatus;
        m.put("machine", ByteBuffer.allocate(5).put((byte) (initStarted ? 1 : 0)).putInt(status == null ? -1 : status).array());
        return m;
    }

    private void restoreLegacy(Map<String, byte[]> m) {
        for (String name : List.of("serial", "cmos", "machine")) {
            if (!m.containsKey(name)) {
                throw new IllegalArgumentException("the snapshot lacks the state of " + name);
            }
        }
        serial.restoreState(m.get("serial"));
        cmos.restoreState(m.get("cmos"));
        byte[] machine = m.get("machine");
        if (machine.length != 5) {
            throw new IllegalArgumentException("the snapshot's machine state has " + machine.length + " bytes, not 5");
        }
        ByteBuffer b = ByteBuffer.wrap(machine);
        initStarted = b.get() != 0;
        if (initStarted) {
            bootGate.open();
        }
        int status = b.getInt();
        reportedStatus = status < 0 ? null : status;
    }

    @Override
    public void pause() {
        synchronized (lock) {
            if (phase != Phase.RUNNING) {
                throw new IllegalStateException("VM " + id + " is not running");
            }
        }
        synchronized (pauseMonitor) {
            if (pauseRequested) {
                return;
            }
            pauseRequested = true;
            pausing = true;
        }
        vcpus.forEach(Vcpu::kick);
        long deadline = System.nanoTime() + PAUSE_TIMEOUT.toNanos();
        synchronized (pauseMonitor) {
            while (vcpusPaused < vcpus.size()) {
                if (stopping) {
                    throw new IllegalStateException("VM " + id + " stopped while pausing");
                }
                long left = deadline - System.nanoTime();
                if (left <= 0) {
                    int paused = vcpusPaused;
                    resume();
                    throw new KrunException("VM " + id + ": only " + paused + " of " + vcpus.size()
                            + " vCPUs paused within " + PAUSE_TIMEOUT.toSeconds() + " s; resumed");
                }
                try {
                    pauseMonitor.wait(Math.max(1, TimeUnit.NANOSECONDS.toMillis(Math.min(left, 50_000_000L))));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    resume();
                    throw new KrunException("VM " + id + ": interrupted while pausing; resumed");
                }
            }
        }
        // The device loop finishes what it has queued (queue notifications, activations): no chain in flight.
        try {
            loop.call(() -> null);
        } catch (java.util.concurrent.CancellationException e) {
            throw new IllegalStateException("VM " + id + " stopped while pausing");
        }
    }

    @Override
    public void resume() {
        synchronized (pauseMonitor) {
            if (!pauseRequested) {
                return;
            }
            pauseRequested = false;
            pausing = false;
            pauseMonitor.notifyAll();
        }
    }

    /** On a vCPU's thread after an {@link VcpuExit.Interrupted}: waits there while the VM is paused. */
    private void pausePoint() {
        synchronized (pauseMonitor) {
            vcpusPaused++;
            pauseMonitor.notifyAll();
            try {
                while (pauseRequested && !stopping) {
                    pauseMonitor.wait();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                vcpusPaused--;
            }
        }
    }

    @Override
    public void snapshot(Path dir) {
        synchronized (pauseMonitor) {
            if (!pauseRequested || vcpusPaused < vcpus.size() || stopping) {
                throw new IllegalStateException("VM " + id + " must be paused to take a snapshot");
            }
        }
        if (!hypervisor.supportsSnapshots()) {
            throw new KrunException("cannot snapshot VM " + id + ": hypervisor backend " + hypervisor.name() + " cannot save VM state");
        }
        for (VirtioDevice d : devices) {
            if (!(d instanceof SnapshottableDevice)) {
                throw new KrunException("cannot snapshot VM " + id + ": device " + deviceName(d) + " does not support snapshots");
            }
        }
        long started = System.nanoTime();
        try {
            Files.createDirectories(dir);
            Path ramTmp = dir.resolve(SnapshotFile.RAM_FILE + ".tmp");
            // All of it on the loop: no device runs while its state and guest RAM are read, and a kill meanwhile
            // cannot close vCPUs or unmap RAM under the snapshot (the loop thread releases them, afterwards).
            SnapshotState state = loop.call(() -> {
                // Devices first: one that drains requests running off the loop (Active.awaitIdle) returns
                // their chains now, so the interrupts that raises reach the irqchip and vCPU state saved next.
                List<byte[]> deviceStates = new ArrayList<>();
                for (MmioTransport t : transports) {
                    deviceStates.add(((SnapshottableDevice) t.device()).saveState());
                }
                List<byte[]> vcpuStates = new ArrayList<>();
                for (Vcpu v : vcpus) {
                    vcpuStates.add(v.saveState());
                }
                byte[] vmState = hypervisorVm.saveState();
                List<byte[]> transportStates = new ArrayList<>();
                for (MmioTransport t : transports) {
                    transportStates.add(t.saveState());
                }
                long pages;
                try {
                    pages = ram.writeSnapshot(ramTmp);
                } catch (IOException e) {
                    throw new java.io.UncheckedIOException(e);
                }
                LOG.log(Level.DEBUG, () -> "vm " + id + ": snapshot RAM " + pages + " pages of " + (ram.memory().size() >> 12));
                return new SnapshotState(hypervisor.name(), hypervisor.hostCpuSignature(), shape(config, devices),
                        ram.memory().size(), vmState, vcpuStates, transportStates, deviceStates, saveLegacy());
            });
            // A new file renamed over the old: VMs restored from an earlier snapshot here keep their mapping.
            Files.move(ramTmp, dir.resolve(SnapshotFile.RAM_FILE), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            SnapshotFile.write(dir.resolve(SnapshotFile.STATE_FILE), state);
        } catch (IOException e) {
            throw new KrunException("cannot snapshot VM " + id + " to " + dir + ": " + e.getMessage(), e);
        } catch (java.io.UncheckedIOException e) {
            throw new KrunException("cannot snapshot VM " + id + " to " + dir + ": " + e.getCause().getMessage(), e);
        } catch (java.util.concurrent.CancellationException e) {
            throw new KrunException("cannot snapshot VM " + id + ": it stopped meanwhile", e);
        } catch (UnsupportedOperationException | IllegalStateException e) {
            throw new KrunException("cannot snapshot VM " + id + ": " + e.getMessage(), e);
        }
        LOG.log(Level.DEBUG, () -> "vm " + id + ": snapshot to " + dir + " in " + TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started) + " ms");
    }

    private Bus legacyDevices() {
        Bus bus = new Bus("port I/O");
        bus.insert(I8042.BASE, I8042.LENGTH, new I8042(this::guestReset));
        cmos = new Cmos(Clock.systemUTC());
        bus.insert(Cmos.BASE, Cmos.LENGTH, cmos);
        initPorts = new InitPorts(s -> {
            reportedStatus = s;
            timeline.mark(BootTimeline.Event.STATUS);
        }, () -> {
            initStarted = true;
            bootGate.open();
            timeline.mark(BootTimeline.Event.INIT);
        }, this::templatePoint, () -> timeline.mark(BootTimeline.Event.CONFIG),
                step -> timeline.mark(BootTimeline.initStep(step)));
        bus.insert(InitPorts.BASE, InitPorts.LENGTH, initPorts);
        OutputStream serialOut = config.kernelLog() ? consoleStreams.stderr() : OutputStream.nullOutputStream();
        serial = new Serial8250(kernelLog.tee(serialOut));
        bus.insert(Serial8250.COM1, Serial8250.LENGTH, serial);
        return bus;
    }

    private KernelCommandLine baseCommandLine() {
        KernelCommandLine c = new KernelCommandLine();
        c.add("console=hvc0").add("reboot=k").add("panic=-1").add("rdinit=" + Initramfs.INIT_PATH);
        // The kernel's errors always go to the early serial console, which the VM keeps a tail of (KernelLog): a
        // healthy boot writes a line or two there; a panic says why. --kernel-log shows everything, on stderr.
        // The level comes first: the early console prints what was logged before it at the level then in force.
        if (config.kernelLog()) {
            c.add("loglevel=7");
        } else {
            c.add("quiet").add("loglevel=4");
        }
        return c.add("earlyprintk=serial,ttyS0,115200,keep");
    }

    private void attachDevices(HypervisorVm vm, GuestMemory mem, KernelCommandLine cmdline) {
        if (devices.size() > X86Layout.VIRTIO_MAX_DEVICES) {
            throw new VmConfigException("at most " + X86Layout.VIRTIO_MAX_DEVICES + " devices fit in a VM");
        }
        // Devices' shared memory regions go above RAM; their mappings take the slots RAM left.
        SharedMemoryWindow window = new SharedMemoryWindow(mem);
        MemorySlots slots = new MemorySlots(vm, mem.regions().size());
        if (!slots.available() && devices.stream().anyMatch(d -> !d.sharedMemoryRegions().isEmpty())) {
            LOG.log(Level.INFO, () -> "vm " + id + ": the " + hypervisor.name()
                    + " backend cannot map memory into a running VM: devices get no shared memory regions");
        }
        for (int n = 0; n < devices.size(); n++) {
            long base = X86Layout.VIRTIO_MMIO_BASE + n * X86Layout.VIRTIO_MMIO_SIZE;
            int irq = X86Layout.VIRTIO_FIRST_IRQ + n;
            MmioTransport t = new MmioTransport(devices.get(n), mem, base, irq, window, slots);
            resources.pushAction("virtio transport " + n, t::detach);
            t.attach(vm, loop);
            transports.add(t);
            mmio.insert(base, X86Layout.VIRTIO_MMIO_SIZE, t);
            cmdline.add("virtio_mmio.device=4K@0x" + Long.toHexString(base) + ":" + irq);
        }
    }

    /** Places the initramfs at the top of low RAM; returns {address, size}. */
    private long[] loadInitramfs(GuestMemory mem, long lowEnd, long kernelEnd) {
        // With a root mount (a virtio-fs share or a disk) the initramfs carries only the init and its config.
        Optional<java.nio.file.Path> packedRoot = config.rootMount().isPresent() ? Optional.empty() : config.root();
        // A templated init finds no configuration here: it reads this run's from the VMM after its template point.
        Initramfs initramfs = Initramfs.plan(packedRoot, config.initrd(), init,
                templatedInit ? null : InitConfig.json(config, files.replace(), files.append()));
        long size = initramfs.size();
        long top = Math.min(lowEnd, 0x8000_0000L);
        long address = (top - size) & ~0xfffL;
        // The kernel unpacks the archive into page cache: leave it room to do so.
        if (size > Integer.MAX_VALUE || address < kernelEnd || size > (config.memoryMib() * MIB) / 2) {
            throw new VmConfigException("the root (" + (size / MIB) + " MiB as an initramfs) does not fit in "
                    + config.memoryMib() + " MiB of guest memory; give the VM more memory");
        }
        ByteBuffer out = mem.slice(address, size).asByteBuffer();
        initramfs.writeTo(out);
        return new long[] {address, size};
    }

    private static X86BootState bootState(long entry, long cr3) {
        long cr0 = 0x1 /* PE */ | 0x10 /* ET */ | 0x8000_0000L /* PG */;
        long cr4 = 0x20; // PAE
        long efer = 0x100 /* LME */ | 0x400 /* LMA */;
        return new X86BootState(entry, X86Layout.BOOT_STACK_POINTER, X86Layout.BOOT_STACK_POINTER,
                X86Layout.ZERO_PAGE_ADDRESS, 0x2, Gdt.code(), Gdt.data(), Gdt.tss(), Gdt.gdtr(), Gdt.idtr(), cr0, cr3,
                cr4, efer);
    }

    private void startThreads() {
        Thread loopThread = Thread.ofPlatform().name("krun-" + id + "-devices").daemon(true).unstarted(this::loopBody);
        for (Vcpu v : vcpus) {
            vcpuThreads.add(Thread.ofPlatform().name("krun-" + id + "-vcpu" + v.index()).daemon(true)
                    .unstarted(() -> vcpuBody(v)));
        }
        boolean killed;
        synchronized (lock) {
            phase = Phase.RUNNING;
            killed = killWhileStarting;
        }
        loopThread.start();
        vcpuThreads.forEach(Thread::start);
        if (killed) {
            stop(VmExit.killed());
        }
    }

    private void vcpuBody(Vcpu vcpu) {
        try {
            vcpu.attachThread();
            if (vcpu.index() == 0) {
                timeline.mark(BootTimeline.Event.FIRST_RUN);
            }
            while (!stopping) {
                VcpuExit e = vcpu.run();
                switch (e) {
                    case VcpuExit.IoIn in -> vcpu.completeRead(access(() -> io.read(in.port(), in.size()), in.size()));
                    case VcpuExit.IoOut out -> access(() -> {
                        io.write(out.port(), out.size(), out.value());
                        return 0;
                    }, 0);
                    case VcpuExit.MmioRead rd -> vcpu.completeRead(access(() -> mmio.read(rd.address(), rd.size()), rd.size()));
                    case VcpuExit.MmioWrite wr -> access(() -> {
                        mmio.write(wr.address(), wr.size(), wr.value());
                        return 0;
                    }, 0);
                    // With the in-kernel irqchip a halt waits in the hypervisor; a backend that returns it
                    // anyway gets the vCPU back after a short sleep, never a spin that burns a core.
                    case VcpuExit.Halted h -> LockSupport.parkNanos(HALT_SLEEP_NANOS);
                    case VcpuExit.Interrupted i -> {
                        if (pausing) {
                            pausePoint();
                        }
                    }
                    case VcpuExit.Shutdown s -> guestStopped(s.cause());
                    case VcpuExit.Failed f -> stop(VmExit.failed("vCPU " + vcpu.index() + ": " + f.reason()));
                }
            }
        } catch (Throwable e) {
            // Whatever it is (an OutOfMemoryError, a StackOverflowError, a backend bug), it ends this VM with
            // a reason, and nothing else: other VMs of the JVM go on.
            LOG.log(Level.ERROR, "vm " + id + ": vCPU " + vcpu.index() + " failed", e);
            stop(VmExit.failed("vCPU " + vcpu.index() + ": " + (e.getMessage() == null ? e.toString() : e.getMessage())));
        }
    }

    private interface Access {
        long run();
    }

    /** A device access from a vCPU: a device bug must not kill the vCPU; reads then see all ones. */
    private long access(Access a, int size) {
        try {
            return a.run();
        } catch (RuntimeException e) {
            accessErrors.warn("vm " + id + ": device access failed: " + e);
            return size >= 8 || size == 0 ? -1L : (1L << (8 * size)) - 1;
        }
    }

    /** The i8042 reset line: the guest rebooted, which is how a krun guest ends. */
    private void guestReset() {
        guestStopped("reboot");
    }

    private void guestStopped(String cause) {
        Integer status = reportedStatus;
        stop(status != null ? VmExit.commandExited(status)
                : VmExit.guestStopped(KernelLog.stopReason(kernelLog.snapshot(), cause, initStarted)));
    }

    /** Stops the VM for {@code reason}; the first reason wins. Safe from any thread, returns at once. */
    private void stop(VmExit reason) {
        synchronized (lock) {
            if (phase != Phase.RUNNING) {
                return;
            }
            phase = Phase.STOPPING;
            stopReason = reason;
        }
        timeline.mark(BootTimeline.Event.STOP);
        stopping = true;
        synchronized (pauseMonitor) {
            pauseMonitor.notifyAll(); // paused vCPUs leave their pause point
        }
        // quiesce first: once stopped, the loop may return and close everything before a later task arrives.
        loop.execute(this::quiesce);
        loop.stop();
        vcpus.forEach(Vcpu::kick);
    }

    /** On the loop thread: wait for the vCPUs, then let devices finish what the guest left in their queues. */
    private void quiesce() {
        for (int i = 0; i < vcpuThreads.size(); i++) {
            Thread t = vcpuThreads.get(i);
            for (int attempt = 0; t.isAlive() && attempt < 100; attempt++) {
                vcpus.get(i).kick();
                try {
                    t.join(100);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    break;
                }
            }
            if (t.isAlive()) {
                vcpusStuck = true;
                LOG.log(Level.ERROR, "vm " + id + ": vCPU " + i + " does not leave the hypervisor; its memory stays mapped");
            }
        }
        for (MmioTransport t : transports) {
            try {
                t.notifyAllQueues();
            } catch (RuntimeException e) {
                LOG.log(Level.DEBUG, () -> "vm " + id + ": draining device queues", e);
            }
        }
        if (console != null) {
            console.flush();
        }
    }

    private void loopBody() {
        try {
            loop.run();
        } catch (Throwable e) {
            LOG.log(Level.ERROR, "vm " + id + ": device loop failed", e);
            synchronized (lock) {
                if (stopReason == null) {
                    stopReason = VmExit.failed("device loop: " + (e.getMessage() == null ? e.toString() : e.getMessage()));
                }
            }
            stopping = true;
            vcpus.forEach(Vcpu::kick);
            quiesce();
        } finally {
            finish();
        }
    }

    private void finish() {
        if (vcpusStuck) {
            // Unmapping memory under a vCPU still inside KVM_RUN would crash the process: leak instead.
            LOG.log(Level.ERROR, "vm " + id + ": leaking its resources because a vCPU thread is stuck");
        } else {
            closeDevices();
            vcpus.forEach(Vcpu::close);
            resources.releaseAll();
        }
        VmExit reason;
        synchronized (lock) {
            phase = Phase.STOPPED;
            reason = stopReason != null ? stopReason : VmExit.failed("stopped");
        }
        timeline.mark(BootTimeline.Event.RELEASED);
        LOG.log(Level.DEBUG, () -> "vm " + id + " timeline: " + timeline);
        onClosed.accept(this);
        exit.complete(reason);
    }

    /** Closes every device; guest RAM stays mapped if one of them could not stop touching it. */
    private void closeDevices() {
        for (VirtioDevice d : devices) {
            try {
                d.close();
            } catch (RuntimeException e) {
                LOG.log(Level.WARNING, "vm " + id + ": closing device " + d.deviceType() + " failed: " + e);
            }
            if (d.touchesGuestMemoryAfterClose() && ram != null) {
                ram.keepMapped("virtio device " + d.deviceType() + " of vm " + id + " still has requests running");
            }
        }
    }

    @Override
    public CompletableFuture<VmExit> exit() {
        return exit.copy();
    }

    @Override
    public VmExit waitFor() throws InterruptedException {
        try {
            return exit.get();
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    @Override
    public VmExit waitFor(Duration timeout) throws InterruptedException, TimeoutException {
        try {
            return exit.get(timeout.toNanos(), TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw new IllegalStateException(e.getCause());
        }
    }

    @Override
    public OutputStream consoleInput() {
        if (console == null) {
            return OutputStream.nullOutputStream();
        }
        return console.input();
    }

    @Override
    public List<org.krun.api.Display> displays() {
        return devices.stream().filter(org.krun.spi.virtio.HostDisplays.class::isInstance)
                .flatMap(d -> ((org.krun.spi.virtio.HostDisplays) d).displays().stream()).toList();
    }

    @Override
    public byte[] consoleTail() {
        return tail.snapshot();
    }

    @Override
    public void resizeConsole(int columns, int rows) {
        if (console != null) {
            console.resize(columns, rows);
        }
    }

    @Override
    public void signal(int signal) {
        if (signal < 1 || signal > 64) {
            throw new IllegalArgumentException("no signal " + signal + ": signals are 1 to 64");
        }
        if (!config.signals()) {
            throw new IllegalStateException("vm " + id + " was configured without signals (VmConfig.Builder.signals)");
        }
        synchronized (lock) {
            if (phase != Phase.RUNNING && phase != Phase.STARTING) {
                throw new IllegalStateException("vm " + id + " is not running");
            }
        }
        if (console == null || !console.carriesSignals()) {
            throw new IllegalStateException("vm " + id + ": its console device has no port for signals");
        }
        if (!console.signal(signal)) {
            throw new KrunException("vm " + id + ": too many signals are waiting for the guest");
        }
    }

    @Override
    public void kill() {
        boolean neverStarted;
        synchronized (lock) {
            neverStarted = phase == Phase.CREATED;
            if (neverStarted) {
                phase = Phase.STOPPED;
            } else if (phase == Phase.STARTING) {
                killWhileStarting = true;
                return;
            }
        }
        if (neverStarted) {
            closeDevices();
            onClosed.accept(this);
            exit.complete(VmExit.killed());
            return;
        }
        stop(VmExit.killed());
    }

    @Override
    public void close() {
        kill();
        boolean interrupted = false;
        while (true) {
            try {
                exit.get();
                break;
            } catch (InterruptedException e) {
                interrupted = true;
            } catch (ExecutionException e) {
                break;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public String toString() {
        return "vm " + id + " (" + state() + ")";
    }
}
