package org.krun.device.balloon.internal;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Whether this host runs guests with hardware virtualisation or through kvm-pvm (see KVM-HOST.md). */
record HostKind(boolean hardwareVirtualisation, boolean kvmPvm) {

    static HostKind detect() {
        boolean vmx;
        try {
            vmx = Files.readAllLines(Path.of("/proc/cpuinfo")).stream()
                    .filter(l -> l.startsWith("flags"))
                    .anyMatch(l -> l.matches(".*\\b(vmx|svm)\\b.*"));
        } catch (IOException e) {
            vmx = false;
        }
        return new HostKind(vmx, Files.exists(Path.of("/sys/module/kvm_pvm")));
    }

    /** Guest kernel code runs at hardware speed: first touches of guest pages are cheap. */
    boolean fast() {
        return hardwareVirtualisation && !kvmPvm;
    }

    @Override
    public String toString() {
        return fast() ? "hardware virtualisation (vmx/svm)"
                : kvmPvm ? "kvm-pvm (no vmx/svm: guest kernel code is emulated)" : "no vmx/svm flags";
    }
}
