package org.krun.shell.internal;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.List;
import java.util.function.BiFunction;

import org.krun.spi.hypervisor.Hypervisor;
import org.krun.spi.virtio.VirtioDeviceFactory;
import org.osgi.framework.Bundle;
import org.osgi.framework.BundleContext;
import org.osgi.framework.InvalidSyntaxException;
import org.osgi.framework.ServiceReference;

/** Looks the services up in the framework each time it is asked, so the answer is what is there now. */
final class OsgiRegistry implements Registry {
    private final BundleContext context;

    OsgiRegistry(BundleContext context) {
        this.context = context;
    }

    @Override
    public List<DeviceFactoryInfo> deviceFactories() {
        List<DeviceFactoryInfo> out = each(VirtioDeviceFactory.class, (ref, f) -> new DeviceFactoryInfo(f.type(),
                bundleName(ref), bundleVersion(ref), f.defaultSpec().isPresent()));
        out.sort(Comparator.comparing(DeviceFactoryInfo::type));
        return out;
    }

    @Override
    public List<HypervisorInfo> hypervisors() {
        List<HypervisorInfo> out = each(Hypervisor.class,
                (ref, h) -> new HypervisorInfo(h.name(), h.capabilities(), bundleName(ref), bundleVersion(ref)));
        out.sort(Comparator.comparing(HypervisorInfo::name));
        return out;
    }

    /** Applies {@code f} to every service of {@code type} that is still registered when its turn comes. */
    private <S, T> List<T> each(Class<S> type, BiFunction<ServiceReference<S>, S, T> f) {
        Collection<ServiceReference<S>> refs;
        try {
            refs = context.getServiceReferences(type, null);
        } catch (InvalidSyntaxException e) {
            throw new IllegalStateException(e);
        }
        List<T> out = new ArrayList<>();
        for (ServiceReference<S> ref : refs) {
            S service = context.getService(ref);
            if (service == null) {
                continue; // unregistered meanwhile
            }
            try {
                out.add(f.apply(ref, service));
            } finally {
                context.ungetService(ref);
            }
        }
        return out;
    }

    private static String bundleName(ServiceReference<?> ref) {
        Bundle b = ref.getBundle();
        return b == null ? "?" : b.getSymbolicName();
    }

    private static String bundleVersion(ServiceReference<?> ref) {
        Bundle b = ref.getBundle();
        return b == null ? "?" : b.getVersion().toString();
    }
}
