package org.krun.vmm.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

import org.krun.api.ConsoleSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.krun.vmm.internal.snapshot.SnapshotException;
import org.krun.vmm.internal.snapshot.SnapshotFile;
import org.krun.vmm.internal.snapshot.SnapshotState;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Deactivate;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicy;
import org.osgi.service.component.annotations.ReferencePolicyOption;

/**
 * The {@link Krun} service. Each VM is built from the hypervisor and device factories present when it is
 * created: a device bundle that stops vanishes from VMs created afterwards, while running VMs keep the
 * devices they have. Where several services offer the same thing (two factories of one device type, two
 * hypervisor backends), the best ranked one serves (highest {@code service.ranking}, then the earliest
 * registered), and when it goes away the next one takes over.
 */
@Component(service = Krun.class)
public final class KrunService implements Krun {
    static final String INIT_RESOURCE = "/org/krun/vmm/guest/krun-init";

    private final AtomicLong ids = new AtomicLong();
    private final List<Machine> machines = new CopyOnWriteArrayList<>();
    /** Factories by the device type of their {@value VirtioDeviceFactory#TYPE_PROPERTY} service property. */
    private final Map<String, Ranked<VirtioDeviceFactory>> factories = new ConcurrentHashMap<>();
    private final Ranked<Hypervisor> hypervisors = new Ranked<>();
    private volatile byte[] init;
    private volatile HostMemory hostMemory = HostMemory.system();

    @Reference(cardinality = ReferenceCardinality.MULTIPLE, policy = ReferencePolicy.DYNAMIC,
            policyOption = ReferencePolicyOption.GREEDY)
    void bindHypervisor(Hypervisor h, Map<String, Object> properties) {
        hypervisors.add(h, properties);
    }

    void unbindHypervisor(Hypervisor h) {
        hypervisors.remove(h);
    }

    @Reference(cardinality = ReferenceCardinality.MULTIPLE, policy = ReferencePolicy.DYNAMIC,
            policyOption = ReferencePolicyOption.GREEDY)
    void bindDeviceFactory(VirtioDeviceFactory f, Map<String, Object> properties) {
        factories.computeIfAbsent(typeOf(f, properties), t -> new Ranked<>()).add(f, properties);
    }

    void unbindDeviceFactory(VirtioDeviceFactory f, Map<String, Object> properties) {
        Ranked<VirtioDeviceFactory> r = factories.get(typeOf(f, properties));
        if (r != null) {
            r.remove(f);
        }
    }

    /** Adds a backend outside a framework (tests, plain Java): ranked 0, after any added before. */
    public void addHypervisor(Hypervisor h) {
        bindHypervisor(h, Map.of());
    }

    /** Reads the host's memory limits from the files under {@code root} instead of the host's own (tests). */
    void hostMemoryFrom(java.nio.file.Path root) {
        hostMemory = new HostMemory(root);
    }

    /** Adds a device factory outside a framework (tests, plain Java). */
    public void addDeviceFactory(VirtioDeviceFactory f) {
        bindDeviceFactory(f, Map.of());
    }

    /**
     * The type a factory serves is its service property: the core can pick factories without calling
     * into their bundles. A factory registered without it (a plain registerService) is taken at its word.
     */
    private static String typeOf(VirtioDeviceFactory f, Map<String, Object> properties) {
        return properties.get(VirtioDeviceFactory.TYPE_PROPERTY) instanceof String t && !t.isBlank() ? t : f.type();
    }

    private Optional<VirtioDeviceFactory> factory(String type) {
        Ranked<VirtioDeviceFactory> r = factories.get(type);
        return r == null ? Optional.empty() : r.best();
    }

    @Override
    public VirtualMachine create(VmConfig config) {
        return create(config, null, null);
    }

    /**
     * A VM from the snapshot in {@code dir}: its state file is read and checked (format, backend, host CPU)
     * before anything else, and the configuration's shape against the snapshot's once its devices exist.
     */
    @Override
    public VirtualMachine restore(VmConfig config, Path dir) {
        SnapshotState state = SnapshotFile.read(dir.resolve(SnapshotFile.STATE_FILE));
        Path ram = dir.resolve(SnapshotFile.RAM_FILE);
        long size;
        try {
            size = Files.size(ram);
        } catch (IOException e) {
            throw new SnapshotException("snapshot " + dir + " has no readable RAM file " + ram);
        }
        if (size != state.ramBytes()) {
            throw new SnapshotException("snapshot RAM " + ram + " has " + size + " bytes; its state says " + state.ramBytes());
        }
        return create(config, dir, state);
    }

    private VirtualMachine create(VmConfig config, Path snapshotDir, SnapshotState snapshot) {
        Hypervisor hv = hypervisors.best().orElseThrow(() -> new VmConfigException(
                "no hypervisor backend is available: no active backend bundle can use this host (KVM needs a usable /dev/kvm)"));
        if (config.cpus() > hv.capabilities().maxVcpus()) {
            throw new VmConfigException("this host allows at most " + hv.capabilities().maxVcpus() + " vCPUs per VM");
        }
        hostMemory.check(config.memoryMib(), config.memoryOvercommit());
        if (snapshot == null) {
            checkReadableFile(config.kernel(), "kernel");
            config.initrd().ifPresent(p -> checkReadableFile(p, "initrd"));
        } else {
            checkSnapshotHost(snapshotDir, snapshot, hv);
        }
        config.root().ifPresent(p -> {
            if (!Files.isDirectory(p)) {
                throw new VmConfigException("root directory " + p + " does not exist or is not a directory");
            }
        });
        config = withRootFilesystem(config);
        if (config.signals() && !config.console().signals()) {
            // Signals for the command travel on a console port the init waits on (no polling in the guest).
            config = config.toBuilder().console(config.console().withSignals(true)).build();
        }
        ConsoleTail tail = new ConsoleTail(VirtualMachine.CONSOLE_TAIL_BYTES);
        BootConsoleGate bootGate = new BootConsoleGate(config.kernelLog());
        ConsoleSpec console = tail.tee(bootGate.wrap(config.console()));
        // The console is the one device the core asks for itself: VirtualMachine's console streams
        // (consoleInput, resizeConsole, consoleTail) and the init's stdio are part of the API's contract, so
        // every VM has one, first, and hvc0 is the first virtio device the guest finds. Whichever device
        // serves the "console" type provides it; the core talks to it only through HostConsole.
        List<DeviceSpec> specs = new ArrayList<>();
        specs.add(console);
        specs.addAll(config.devices());
        if (config.defaultDevices()) {
            Set<String> asked = new HashSet<>(config.withoutDefaults());
            specs.forEach(s -> asked.add(s.type()));
            VmConfig withRoot = config;
            factories.keySet().stream().sorted().filter(t -> !asked.contains(t)).map(this::factory).flatMap(Optional::stream)
                    .forEach(f -> f.defaultSpec(withRoot).filter(s -> !asked.contains(s.type())).ifPresent(specs::add));
        }
        List<VirtioDevice> devices = new ArrayList<>();
        try {
            for (DeviceSpec spec : specs) {
                VirtioDeviceFactory f = factory(spec.type()).orElseThrow(() -> new VmConfigException("no '" + spec.type()
                        + "' device is available: install and start bundle org.krun.device." + spec.type()
                        + " (or another bundle that offers this device type)"));
                devices.add(f.create(spec));
            }
        } catch (RuntimeException e) {
            devices.forEach(VirtioDevice::close);
            throw e;
        }
        if (snapshot != null) {
            String shape = Machine.shape(config, devices);
            if (!shape.equals(snapshot.shape())) {
                devices.forEach(VirtioDevice::close);
                throw new SnapshotException("snapshot " + snapshotDir + " is of a VM with " + snapshot.shape()
                        + "; this configuration makes " + shape);
            }
        }
        Machine m = new Machine("vm" + ids.incrementAndGet(), config, console, tail, bootGate, hv, devices, initBinary(),
                machines::remove, snapshotDir, snapshot);
        machines.add(m);
        return m;
    }

    /**
     * A root directory becomes the root filesystem that a device bundle offers for it (virtio-fs: a share
     * with tag /dev/root, as libkrun's krun_set_root), which the guest init switches to; an ephemeral root
     * is offered read-only and the init lays a tmpfs over it. Without such a bundle the directory is packed
     * into the initramfs instead (fine for small trees, and ephemeral by nature).
     */
    private VmConfig withRootFilesystem(VmConfig config) {
        if (config.root().isEmpty() || config.rootMount().isPresent()) {
            return config;
        }
        Path dir = config.root().get();
        Optional<VirtioDeviceFactory.RootFilesystem> rootFs = factories.keySet().stream().sorted(Comparator.naturalOrder())
                .map(this::factory).flatMap(Optional::stream)
                .map(f -> f.rootFilesystem(dir, config.ephemeralRoot())).flatMap(Optional::stream).findFirst();
        if (rootFs.isEmpty()) {
            return config;
        }
        List<DeviceSpec> devices = new ArrayList<>();
        devices.add(rootFs.get().device());
        devices.addAll(config.devices());
        return config.toBuilder().rootMount(rootFs.get().mount()).devices(devices).build();
    }

    private static void checkSnapshotHost(Path dir, SnapshotState s, Hypervisor hv) {
        if (!hv.name().equals(s.backend())) {
            throw new SnapshotException("snapshot " + dir + " was taken with hypervisor backend " + s.backend()
                    + "; this host's is " + hv.name());
        }
        if (!hv.supportsSnapshots()) {
            throw new SnapshotException("hypervisor backend " + hv.name() + " cannot restore snapshots");
        }
        if (!hv.hostCpuSignature().equals(s.cpuSignature())) {
            throw new SnapshotException("snapshot " + dir + " was taken on another CPU (" + s.cpuSignature()
                    + "); this host is " + hv.hostCpuSignature());
        }
    }

    private static void checkReadableFile(Path p, String what) {
        if (!Files.isRegularFile(p)) {
            throw new VmConfigException(what + " " + p + " does not exist or is not a file");
        }
        if (!Files.isReadable(p)) {
            throw new VmConfigException(what + " " + p + " is not readable");
        }
    }

    private byte[] initBinary() {
        byte[] b = init;
        if (b == null) {
            try (InputStream in = KrunService.class.getResourceAsStream(INIT_RESOURCE)) {
                if (in == null) {
                    throw new IllegalStateException("the guest init is missing from bundle org.krun.vmm");
                }
                b = in.readAllBytes();
            } catch (IOException e) {
                throw new IllegalStateException("cannot load the guest init", e);
            }
            init = b;
        }
        return b;
    }

    @Override
    public List<VirtualMachine> list() {
        return List.copyOf(machines);
    }

    @Deactivate
    void deactivate() {
        for (Machine m : machines) {
            m.close();
        }
    }
}
