package org.krun.hv.kvm.internal;

/** One asm/kvm.h struct kvm_cpuid_entry2. */
record CpuidEntry(int function, int index, int flags, int eax, int ebx, int ecx, int edx) {

    CpuidEntry withRegs(int eax, int ebx, int ecx, int edx) {
        return new CpuidEntry(function, index, flags, eax, ebx, ecx, edx);
    }
}
