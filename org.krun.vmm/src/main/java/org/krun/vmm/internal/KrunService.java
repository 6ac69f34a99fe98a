package org.krun.vmm.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicLong;

import org.krun.api.ConsoleSpec;
import org.krun.api.DeviceSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Deactivate;
import org.osgi.service.component.annotations.Reference;
import org.osgi.service.component.annotations.ReferenceCardinality;
import org.osgi.service.component.annotations.ReferencePolicy;
import org.osgi.service.component.annotations.ReferencePolicyOption;

/**
 * The {@link Krun} service. Each VM is built from the hypervisor and device factories present when it is
 * created: a device bundle that stops vanishes from VMs created afterwards, while running VMs keep the
 * devices they have.
 */
@Component(service = Krun.class)
public final class KrunService implements Krun {
    static final String INIT_RESOURCE = "/org/krun/vmm/guest/krun-init";

    private final AtomicLong ids = new AtomicLong();
    private final List<Machine> machines = new CopyOnWriteArrayList<>();
    private final Map<String, VirtioDeviceFactory> factories = new ConcurrentHashMap<>();
    private final List<Hypervisor> hypervisors = new CopyOnWriteArrayList<>();
    private volatile byte[] init;

    @Reference(cardinality = ReferenceCardinality.MULTIPLE, policy = ReferencePolicy.DYNAMIC,
            policyOption = ReferencePolicyOption.GREEDY)
    public void addHypervisor(Hypervisor h) {
        hypervisors.add(h);
    }

    public void removeHypervisor(Hypervisor h) {
        hypervisors.remove(h);
    }

    @Reference(cardinality = ReferenceCardinality.MULTIPLE, policy = ReferencePolicy.DYNAMIC,
            policyOption = ReferencePolicyOption.GREEDY)
    public void addDeviceFactory(VirtioDeviceFactory f) {
        factories.put(f.type(), f);
    }

    public void removeDeviceFactory(VirtioDeviceFactory f) {
        factories.remove(f.type(), f);
    }

    @Override
    public VirtualMachine create(VmConfig config) {
        Hypervisor hv = hypervisors.isEmpty() ? null : hypervisors.get(0);
        if (hv == null) {
            throw new VmConfigException("no hypervisor backend is available: no active backend bundle can use this host (KVM needs a usable /dev/kvm)");
        }
        if (config.cpus() > hv.capabilities().maxVcpus()) {
            throw new VmConfigException("this host allows at most " + hv.capabilities().maxVcpus() + " vCPUs per VM");
        }
        checkReadableFile(config.kernel(), "kernel");
        config.initrd().ifPresent(p -> checkReadableFile(p, "initrd"));
        config.root().ifPresent(p -> {
            if (!Files.isDirectory(p)) {
                throw new VmConfigException("root directory " + p + " does not exist or is not a directory");
            }
        });
        config = withRootShare(config);
        ConsoleTail tail = new ConsoleTail(VirtualMachine.CONSOLE_TAIL_BYTES);
        ConsoleSpec console = tail.tee(config.console());
        List<DeviceSpec> specs = new ArrayList<>();
        specs.add(console);
        specs.addAll(config.devices());
        if (config.defaultDevices()) {
            java.util.Set<String> asked = new java.util.HashSet<>();
            specs.forEach(s -> asked.add(s.type()));
            factories.values().stream()
                    .sorted(java.util.Comparator.comparing(VirtioDeviceFactory::type))
                    .forEach(f -> f.defaultSpec().filter(s -> !asked.contains(s.type())).ifPresent(specs::add));
        }
        List<VirtioDevice> devices = new ArrayList<>();
        try {
            for (DeviceSpec spec : specs) {
                VirtioDeviceFactory f = factories.get(spec.type());
                if (f == null) {
                    throw new VmConfigException("no '" + spec.type() + "' device is available: install and start bundle "
                            + "org.krun.device." + spec.type());
                }
                devices.add(f.create(spec));
            }
        } catch (RuntimeException e) {
            devices.forEach(VirtioDevice::close);
            throw e;
        }
        Machine m = new Machine("vm" + ids.incrementAndGet(), config, console, tail, hv, devices, initBinary(),
                machines::remove);
        machines.add(m);
        return m;
    }

    /**
     * A root directory becomes a virtio-fs share (tag {@value FsShareSpec#ROOT_TAG}) that the guest init
     * switches to, as libkrun's krun_set_root does, when the virtio-fs bundle is present. Without it the
     * directory is packed into the initramfs instead (fine for small trees).
     */
    private VmConfig withRootShare(VmConfig config) {
        if (config.root().isEmpty() || config.rootMount().isPresent() || !factories.containsKey(FsShareSpec.TYPE)) {
            return config;
        }
        List<DeviceSpec> devices = new ArrayList<>();
        devices.add(new FsShareSpec(FsShareSpec.ROOT_TAG, config.root().get(), false));
        devices.addAll(config.devices());
        return new VmConfig(config.cpus(), config.memoryMib(), config.kernel(), config.initrd(), config.root(),
                java.util.Optional.of(new GuestMount(FsShareSpec.ROOT_TAG, "/", "virtiofs", "")), config.mounts(),
                config.command(), config.env(), config.workdir(), config.hostname(), config.rlimits(), config.console(),
                devices, config.defaultDevices(), config.kernelArgs(), config.kernelLog(), config.timeout());
    }

    private static void checkReadableFile(java.nio.file.Path p, String what) {
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
