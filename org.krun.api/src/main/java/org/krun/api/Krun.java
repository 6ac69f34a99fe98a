package org.krun.api;

import java.nio.file.Path;
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

    /**
     * Creates a VM that {@link VirtualMachine#start() starts} where the snapshot in directory
     * {@code snapshot} was taken ({@link VirtualMachine#snapshot(Path)}), instead of booting. The
     * configuration must have the snapshot's shape (memory, vCPUs, and the same devices in the same order);
     * its kernel is not loaded. Guest RAM is mapped copy-on-write from the snapshot, so VMs restored from
     * one snapshot share its unchanged pages, and the snapshot must stay in place while they run.
     *
     * @throws VmConfigException when the snapshot is missing, truncated, corrupt, from another backend or
     *         host CPU, or of another shape than {@code config} (one line)
     * @since 1.2
     */
    default VirtualMachine restore(VmConfig config, Path snapshot) {
        throw new UnsupportedOperationException("this krun service cannot restore snapshots");
    }

    /** The VMs created by this service that have not been closed yet. */
    List<VirtualMachine> list();
}
