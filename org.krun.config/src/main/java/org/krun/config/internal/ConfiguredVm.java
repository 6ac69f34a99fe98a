package org.krun.config.internal;

import java.lang.System.Logger.Level;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.Map;
import java.util.Optional;

import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfigException;
import org.osgi.framework.BundleContext;
import org.osgi.framework.Constants;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.ConfigurationPolicy;
import org.osgi.service.component.annotations.Deactivate;
import org.osgi.service.component.annotations.Reference;

/**
 * One VM per factory configuration of {@value #FACTORY_PID} (see {@link VmConfiguration} for its
 * properties): activation creates and starts the VM; deleting the configuration (or losing the Krun
 * service, or stopping this bundle) kills it and releases everything. Changing the configuration restarts
 * the VM with the new one. A VM that ends by itself stays ended until its configuration changes.
 *
 * <p>With Apache Felix File Install, a file {@code org.krun.vm-NAME.config} (or {@code .cfg}) dropped into
 * the watched folder is such a configuration, and removing the file deletes it.
 */
@Component(configurationPid = ConfiguredVm.FACTORY_PID, configurationPolicy = ConfigurationPolicy.REQUIRE)
public final class ConfiguredVm {
    /** The factory PID of VM configurations. */
    public static final String FACTORY_PID = "org.krun.vm";

    private static final System.Logger LOG = System.getLogger(ConfiguredVm.class.getName());

    private final OutputStream output;
    private final VirtualMachine vm;

    @Activate
    public ConfiguredVm(@Reference Krun krun, VmConfiguration configuration, Map<String, Object> properties,
            BundleContext context) throws IOException {
        String pid = String.valueOf(properties.get(Constants.SERVICE_PID));
        output = configuration.output().isBlank() ? OutputStream.nullOutputStream()
                : new FileOutputStream(configuration.output(), true);
        try {
            vm = krun.create(VmConfigs.from(configuration, path(context.getProperty("krun.kernel")),
                    path(context.getProperty("krun.rootfs")), output));
            vm.start();
        } catch (RuntimeException e) {
            output.close();
            LOG.log(Level.ERROR, "configuration " + pid + ": no VM: " + e.getMessage());
            throw e instanceof VmConfigException ? e : new IllegalStateException(pid + ": " + e.getMessage(), e);
        }
        LOG.log(Level.INFO, "configuration " + pid + ": started " + vm.id());
        vm.exit().thenAccept(exit -> LOG.log(Level.INFO, "configuration " + pid + ": " + vm.id() + " stopped: " + exit));
    }

    private static Optional<Path> path(String p) {
        return p == null || p.isBlank() ? Optional.empty() : Optional.of(Path.of(p));
    }

    @Deactivate
    void deactivate() throws IOException {
        try {
            vm.close();
        } finally {
            output.close();
        }
    }
}
