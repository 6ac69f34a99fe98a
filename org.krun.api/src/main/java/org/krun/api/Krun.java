package org.krun.api;

import java.util.List;

import org.osgi.annotation.versioning.ProviderType;

/**
 * The krun service: creates microVMs. One service serves any number of VMs at once; each VM is
 * independent and owns its resources until it is closed.
 */
@ProviderType
public interface Krun {

    /**
     * Validates the configuration and creates a VM that is ready to {@link VirtualMachine#start() start}.
     * Nothing is allocated on the host until the VM starts.
     *
     * @throws VmConfigException if the configuration cannot work on this host (missing files, a device
     *         type whose bundle is not active, no hypervisor, sizes out of range); the message is one line
     */
    VirtualMachine create(VmConfig config);

    /** The VMs created by this service that have not been closed yet. */
    List<VirtualMachine> list();
}
