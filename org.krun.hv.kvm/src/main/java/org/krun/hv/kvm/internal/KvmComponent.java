package org.krun.hv.kvm.internal;

import java.lang.System.Logger.Level;
import java.util.Dictionary;
import java.util.Hashtable;

import org.krun.spi.hypervisor.Hypervisor;
import org.osgi.framework.BundleContext;
import org.osgi.framework.ServiceRegistration;
import org.osgi.service.component.annotations.Activate;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Deactivate;

/**
 * Probes /dev/kvm when the bundle starts and registers the KVM {@link Hypervisor} only if it can be
 * used, so the service's presence means "this host runs KVM guests".
 */
@Component(immediate = true)
public final class KvmComponent {
    private static final System.Logger LOG = System.getLogger(KvmComponent.class.getName());

    private KvmHypervisor hypervisor;
    private ServiceRegistration<Hypervisor> registration;

    @Activate
    void activate(BundleContext context) {
        try {
            hypervisor = KvmHypervisor.open();
        } catch (RuntimeException e) {
            LOG.log(Level.WARNING, "KVM backend not available: " + e.getMessage());
            return;
        }
        Dictionary<String, Object> props = new Hashtable<>();
        props.put(Hypervisor.NAME_PROPERTY, hypervisor.name());
        registration = context.registerService(Hypervisor.class, hypervisor, props);
        LOG.log(Level.DEBUG, () -> "KVM backend registered: " + hypervisor.capabilities().description());
    }

    @Deactivate
    void deactivate() {
        if (registration != null) {
            registration.unregister();
            registration = null;
        }
        if (hypervisor != null) {
            hypervisor.close();
            hypervisor = null;
        }
    }
}
