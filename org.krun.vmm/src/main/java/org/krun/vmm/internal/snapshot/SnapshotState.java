package org.krun.vmm.internal.snapshot;

import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * Everything of a VM snapshot besides guest RAM, as the state file holds it: the header that says which
 * VMs may restore it, the backend's opaque VM and vCPU blobs, and each virtio-mmio transport's and
 * device's state in device order, and the legacy devices' state by name.
 *
 * @param backend the hypervisor backend that wrote the blobs ({@code kvm}); only the same kind restores
 * @param cpuSignature the host CPU as the backend describes it; a restore on another refuses
 * @param shape the VM's shape in words (memory, vCPUs, devices in order): a restoring configuration must
 *        have the same
 * @param ramBytes the size of the RAM file
 * @param vm the backend's VM-wide state
 * @param vcpus the backend's state of each vCPU, by index
 * @param transports each virtio-mmio transport's registers and queue state, by device slot
 * @param devices each device's own state, by device slot
 * @param legacy the legacy devices' and the machine's own state, by name
 */
public record SnapshotState(String backend, String cpuSignature, String shape, long ramBytes, byte[] vm,
        List<byte[]> vcpus, List<byte[]> transports, List<byte[]> devices, Map<String, byte[]> legacy) {

    public SnapshotState {
        Objects.requireNonNull(backend, "backend");
        Objects.requireNonNull(cpuSignature, "cpuSignature");
        Objects.requireNonNull(shape, "shape");
        Objects.requireNonNull(vm, "vm");
        vcpus = List.copyOf(vcpus);
        transports = List.copyOf(transports);
        devices = List.copyOf(devices);
        legacy = Map.copyOf(legacy);
        if (transports.size() != devices.size()) {
            throw new IllegalArgumentException(transports.size() + " transports but " + devices.size() + " devices");
        }
    }
}
