package org.krun.shell.internal;

import java.util.List;

import org.krun.spi.hypervisor.HostCapabilities;

/** What the framework offers krun now: device factories and hypervisor backends, with their bundles. */
interface Registry {

    /** One registered device factory. */
    record DeviceFactoryInfo(String type, String bundle, String version, boolean offeredByDefault) {
    }

    /** One registered hypervisor backend. */
    record HypervisorInfo(String name, HostCapabilities capabilities, String bundle, String version) {
    }

    List<DeviceFactoryInfo> deviceFactories();

    List<HypervisorInfo> hypervisors();
}
