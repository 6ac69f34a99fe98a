package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.DeviceSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.GuestMount;
import org.krun.api.KrunException;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;
import org.krun.spi.hypervisor.HostCapabilities;
import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.hypervisor.HypervisorVm;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.VirtioDevice;
import org.krun.spi.virtio.VirtioDeviceFactory;

/** How the Krun service picks among the backends and factories present; no VM is started (no KVM needed). */
class KrunServiceTest {

    @TempDir
    Path dir;
    private Path kernel;
    private final List<String> created = new ArrayList<>();
    private final List<String> asked = new ArrayList<>();
    private KrunService krun;

    @BeforeEach
    void setUp() throws Exception {
        kernel = Files.writeString(dir.resolve("vmlinux"), "not really a kernel");
        krun = new KrunService();
    }

    private VmConfig.Builder config() {
        return VmConfig.builder().kernel(kernel).command("/bin/true").defaultDevices(false);
    }

    /** A factory of {@code type} that records which of them created a device. */
    private VirtioDeviceFactory factory(String type, String name) {
        return new VirtioDeviceFactory() {
            @Override
            public String type() {
                return type;
            }

            @Override
            public VirtioDevice create(DeviceSpec spec) {
                created.add(name);
                return new NoDevice();
            }
        };
    }

    private static Map<String, Object> props(String type, int ranking, long id) {
        return Map.of(VirtioDeviceFactory.TYPE_PROPERTY, type, Ranked.SERVICE_RANKING, ranking, Ranked.SERVICE_ID, id);
    }

    private static final class NoDevice extends AbstractVirtioDevice<Void> {
        NoDevice() {
            super("none", 63, 0, 1, 16, 0);
        }

        @Override
        protected Void onActivate(Active<Void> a) {
            return null;
        }

        @Override
        protected void onQueueNotify(Active<Void> a, int queue) {
        }
    }

    /** A backend whose VMs cannot be made: starting says which backend was asked. */
    private static Hypervisor hypervisor(String name) {
        return new Hypervisor() {
            @Override
            public String name() {
                return name;
            }

            @Override
            public HostCapabilities capabilities() {
                return new HostCapabilities(name, false, 8);
            }

            @Override
            public HypervisorVm createVm(int vcpuCount) {
                throw new KrunException("backend " + name + " asked");
            }
        };
    }

    @Test
    void theBestRankedFactoryOfATypeServesItAndTheNextTakesOverWhenItLeaves() {
        krun.addHypervisor(hypervisor("h"));
        krun.bindDeviceFactory(factory("console", "console"), props("console", 0, 1));
        VirtioDeviceFactory low = factory("x", "low");
        VirtioDeviceFactory high = factory("x", "high");
        VirtioDeviceFactory early = factory("x", "early");
        krun.bindDeviceFactory(early, props("x", 5, 2));
        krun.bindDeviceFactory(low, props("x", 1, 3));
        krun.bindDeviceFactory(high, props("x", 5, 4));
        VmConfig c = config().device(new GenericDeviceSpec("x", Map.of())).build();

        krun.create(c).close();
        assertEquals(List.of("console", "early"), created, "highest ranking, then the earliest registered");

        created.clear();
        krun.unbindDeviceFactory(early, props("x", 5, 2));
        krun.create(c).close();
        assertEquals(List.of("console", "high"), created);

        created.clear();
        krun.unbindDeviceFactory(high, props("x", 5, 4));
        krun.create(c).close();
        assertEquals(List.of("console", "low"), created);

        krun.unbindDeviceFactory(low, props("x", 1, 3));
        VmConfigException none = assertThrows(VmConfigException.class, () -> krun.create(c));
        assertTrue(none.getMessage().contains("no 'x' device is available"), none.getMessage());
    }

    @Test
    void defaultDevicesComeFromTheFactoriesUnlessTheVmAsksForTheTypeOrGoesWithoutIt() {
        krun.addHypervisor(hypervisor("h"));
        krun.addDeviceFactory(factory("console", "console"));
        krun.addDeviceFactory(defaulting("a"));
        krun.addDeviceFactory(defaulting("b"));
        VmConfig.Builder b = VmConfig.builder().kernel(kernel).command("/bin/true");

        krun.create(b.build()).close();
        assertEquals(List.of("console", "a default for /bin/true", "b default for /bin/true"), created);
        created.clear();
        krun.create(b.build().toBuilder().withoutDefault("a").build()).close();
        assertEquals(List.of("console", "b default for /bin/true"), created, "only the named default is left out");
        created.clear();
        krun.create(b.build().toBuilder().device(new GenericDeviceSpec("b", Map.of("own", "1"))).build()).close();
        assertEquals(List.of("console", "b {own=1}", "a default for /bin/true"), created, "asked-for types have no default");
        created.clear();
        krun.create(b.defaultDevices(false).build()).close();
        assertEquals(List.of("console"), created);
    }

    /** A factory of {@code type} whose default device depends on the VM's command. */
    private VirtioDeviceFactory defaulting(String type) {
        return new VirtioDeviceFactory() {
            @Override
            public String type() {
                return type;
            }

            @Override
            public VirtioDevice create(DeviceSpec spec) {
                created.add(type + " " + (spec instanceof GenericDeviceSpec g ? g.options().toString() : spec.toString()));
                return new NoDevice();
            }

            @Override
            public Optional<DeviceSpec> defaultSpec(VmConfig config) {
                return Optional.of(new DeviceSpec() {
                    @Override
                    public String type() {
                        return type;
                    }

                    @Override
                    public String toString() {
                        return "default for " + String.join(" ", config.command());
                    }
                });
            }
        };
    }

    @Test
    void factoriesAreKnownByTheirServicePropertyType() {
        krun.addHypervisor(hypervisor("h"));
        krun.bindDeviceFactory(factory("console", "console"), props("console", 0, 1));
        // A factory whose service property names another type than its type() method: the property wins,
        // since the core picks factories without calling into their bundles.
        krun.bindDeviceFactory(factory("y", "registered as x"), props("x", 0, 2));
        krun.create(config().device(new GenericDeviceSpec("x", Map.of())).build()).close();
        assertEquals(List.of("console", "registered as x"), created);
    }

    @Test
    void theBestRankedHypervisorRunsTheVmAndTheNextTakesOverWhenItLeaves() {
        krun.bindDeviceFactory(factory("console", "console"), Map.of());
        Hypervisor a = hypervisor("a");
        Hypervisor b = hypervisor("b");
        krun.bindHypervisor(a, Map.of(Ranked.SERVICE_RANKING, 1, Ranked.SERVICE_ID, 10L));
        krun.bindHypervisor(b, Map.of(Ranked.SERVICE_RANKING, 7, Ranked.SERVICE_ID, 11L));
        assertEquals("backend b asked", startFailure());
        krun.unbindHypervisor(b);
        assertEquals("backend a asked", startFailure());
        krun.unbindHypervisor(a);
        VmConfigException none = assertThrows(VmConfigException.class, () -> krun.create(config().build()));
        assertTrue(none.getMessage().startsWith("no hypervisor backend is available"), none.getMessage());
    }

    private String startFailure() {
        try (VirtualMachine vm = krun.create(config().build())) {
            return assertThrows(KrunException.class, vm::start).getMessage();
        }
    }

    @Test
    void aRootDirectoryBecomesTheRootFilesystemAFactoryOffers() throws Exception {
        krun.addHypervisor(hypervisor("h"));
        krun.addDeviceFactory(factory("console", "console"));
        GenericDeviceSpec share = new GenericDeviceSpec("share", Map.of());
        GuestMount mount = new GuestMount("rootfs", "/", "sharefs", "");
        krun.addDeviceFactory(new VirtioDeviceFactory() {
            @Override
            public String type() {
                return "share";
            }

            @Override
            public VirtioDevice create(DeviceSpec spec) {
                created.add("share " + spec);
                return new NoDevice();
            }

            @Override
            public Optional<RootFilesystem> rootFilesystem(Path directory, boolean readOnly) {
                asked.add(directory + (readOnly ? " ro" : " rw"));
                return Optional.of(new RootFilesystem(share, mount));
            }
        });
        Path root = Files.createDirectory(dir.resolve("root"));
        try (VirtualMachine vm = krun.create(config().root(root).build())) {
            assertEquals(Optional.of(mount), vm.config().rootMount());
            assertEquals(List.of(share), vm.config().devices());
        }
        assertEquals(List.of("console", "share " + share), created);
        krun.create(config().root(root).ephemeralRoot(true).build()).close();
        assertEquals(List.of(root + " rw", root + " ro"), asked, "an ephemeral root is asked for read-only");
    }

    @Test
    void withoutAFactoryForRootsTheRootDirectoryStaysForTheInitramfs() throws Exception {
        krun.addHypervisor(hypervisor("h"));
        krun.addDeviceFactory(factory("console", "console"));
        Path root = Files.createDirectory(dir.resolve("root"));
        try (VirtualMachine vm = krun.create(config().root(root).build())) {
            assertEquals(Optional.empty(), vm.config().rootMount());
            assertEquals(Optional.of(root), vm.config().root());
        }
    }

    @Test
    void memoryBeyondWhatTheHostCanGiveIsRefusedUnlessOvercommitIsAllowed() throws Exception {
        krun.addHypervisor(hypervisor("h"));
        krun.addDeviceFactory(factory("console", "console"));
        Path host = HostMemoryTest.host(dir.resolve("host"), 4096, 0, "0", "unlimited", "0::/\n");
        krun.hostMemoryFrom(host);
        VmConfigException e = assertThrows(VmConfigException.class, () -> krun.create(config().memoryMib(4097).build()));
        assertEquals("4097 MiB of guest memory is more than this host can give: at most 4096 MiB (its memory, without swap); "
                + "allow memory overcommit to start it anyway", e.getMessage());
        krun.create(config().memoryMib(4096).build()).close();
        krun.create(config().memoryMib(8192).memoryOvercommit(true).build()).close();
        assertEquals(List.of("console", "console"), created, "no VM was made of the refused size");
    }
}
