package org.krun.shell.internal;

import java.util.ArrayList;
import java.util.List;

import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.api.VmState;

/**
 * A Krun service that hands out {@link FakeVm}s and lists those not stopped, as the real one does, or rejects
 * the configuration with {@link #failure}.
 */
final class FakeKrun implements Krun {
    final List<FakeVm> created = new ArrayList<>();
    /** What create throws, as the real service does for a configuration it rejects; null: nothing. */
    RuntimeException failure;

    @Override
    public synchronized VirtualMachine create(VmConfig config) {
        if (failure != null) {
            throw failure;
        }
        FakeVm vm = new FakeVm("vm" + (created.size() + 1), config);
        created.add(vm);
        return vm;
    }

    @Override
    public synchronized VirtualMachine restore(VmConfig config, java.nio.file.Path snapshot) {
        FakeVm vm = (FakeVm) create(config);
        vm.restoredFrom = snapshot;
        return vm;
    }

    @Override
    public synchronized List<VirtualMachine> list() {
        return created.stream().filter(vm -> vm.state != VmState.STOPPED).map(VirtualMachine.class::cast).toList();
    }
}
