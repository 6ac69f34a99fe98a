package org.krun.hv.kvm.internal;

import static java.lang.foreign.ValueLayout.JAVA_INT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.nio.file.Path;

import org.krun.api.KrunException;
import org.krun.posix.Errno;
import org.krun.posix.Posix;
import org.krun.posix.PosixException;

/** The open /dev/kvm: host capabilities and the supported CPUID, shared by all VMs of the backend. */
final class Kvm implements AutoCloseable {
    static final String DEVICE = "/dev/kvm";
    static final int API_VERSION = 12;

    private final int fd;
    private final int vcpuMmapSize;
    private final int maxVcpus;
    private final boolean pvm;
    private final boolean hardwareVirtualization;
    private final CpuidTemplate cpuid;
    /** What KVM_GET_MSR_INDEX_LIST gives, read once. */
    private int[] msrIndexList;
    /** The subset of the MSR list (and a few more) that a vCPU lets krun read, probed once. */
    private int[] savableMsrs;

    private Kvm(int fd) {
        this.fd = fd;
        int api = Posix.check("KVM_GET_API_VERSION", Posix.ioctl(fd, KvmIoctls.KVM_GET_API_VERSION, 0L));
        if (api != API_VERSION) {
            throw new KrunException("KVM API version " + api + " is not supported (need " + API_VERSION + ")");
        }
        for (int cap : new int[] {KvmIoctls.KVM_CAP_IRQCHIP, KvmIoctls.KVM_CAP_USER_MEMORY, KvmIoctls.KVM_CAP_SET_TSS_ADDR,
                KvmIoctls.KVM_CAP_EXT_CPUID, KvmIoctls.KVM_CAP_PIT2, KvmIoctls.KVM_CAP_IOEVENTFD, KvmIoctls.KVM_CAP_IRQFD}) {
            if (checkExtension(cap) <= 0) {
                throw new KrunException("KVM lacks capability " + cap + " that krun needs");
            }
        }
        this.vcpuMmapSize = Posix.check("KVM_GET_VCPU_MMAP_SIZE", Posix.ioctl(fd, KvmIoctls.KVM_GET_VCPU_MMAP_SIZE, 0L));
        int max = checkExtension(KvmIoctls.KVM_CAP_MAX_VCPUS);
        this.maxVcpus = max > 0 ? max : Math.max(checkExtension(KvmIoctls.KVM_CAP_NR_VCPUS), 1);
        this.pvm = Files.isDirectory(Path.of("/sys/module/kvm_pvm"));
        this.hardwareVirtualization = !pvm && cpuHasVirtualization();
        this.cpuid = CpuidTemplate.fromKvm(fd);
    }

    /** Opens /dev/kvm, or throws with a message saying why it cannot be used. */
    static Kvm open() {
        int fd = Posix.open(DEVICE, Posix.O_RDWR | Posix.O_CLOEXEC);
        if (fd < 0) {
            int errno = -fd;
            String why = switch (errno) {
                case Errno.ENOENT -> "does not exist (no KVM on this host)";
                case Errno.EACCES, Errno.EPERM -> "is not accessible to this user (add it to the kvm group)";
                default -> "cannot be opened: " + Errno.name(errno);
            };
            throw new KrunException(DEVICE + " " + why);
        }
        try {
            return new Kvm(fd);
        } catch (RuntimeException e) {
            Posix.close(fd);
            throw e;
        }
    }

    private static boolean cpuHasVirtualization() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/cpuinfo"))) {
                if (line.startsWith("flags")) {
                    return line.contains(" vmx") || line.contains(" svm");
                }
            }
        } catch (java.io.IOException e) {
            // unknown: say no
        }
        return false;
    }

    int checkExtension(int cap) {
        int r = Posix.ioctl(fd, KvmIoctls.KVM_CHECK_EXTENSION, cap);
        return Math.max(r, 0);
    }

    int fd() {
        return fd;
    }

    int vcpuMmapSize() {
        return vcpuMmapSize;
    }

    int maxVcpus() {
        return maxVcpus;
    }

    /** Whether this is kvm-pvm, which emulates guest kernel code. */
    boolean pvm() {
        return pvm;
    }

    boolean hardwareVirtualization() {
        return hardwareVirtualization;
    }

    CpuidTemplate cpuid() {
        return cpuid;
    }

    /**
     * The MSRs KVM says it saves and restores (KVM API: KVM_GET_MSR_INDEX_LIST: the MSRs of the host's
     * CPU KVM virtualises plus the ones it emulates, kvmclock's among them). Asked with a zero count first,
     * which fails with E2BIG and fills in the count.
     */
    synchronized int[] msrIndexList() {
        if (msrIndexList == null) {
            try (Arena a = Arena.ofConfined()) {
                MemorySegment probe = a.allocate(KvmStructs.MSR_LIST);
                int r = Posix.ioctl(fd, KvmIoctls.KVM_GET_MSR_INDEX_LIST, probe);
                int n = probe.get(JAVA_INT, 0);
                if (r < 0 && r != -Errno.E2BIG) {
                    throw new PosixException("KVM_GET_MSR_INDEX_LIST", -r);
                }
                if (n < 0 || n > 4096) {
                    throw new KrunException("KVM_GET_MSR_INDEX_LIST reports " + n + " MSRs");
                }
                MemorySegment list = a.allocate(4L + 4L * n);
                list.set(JAVA_INT, 0, n);
                Posix.check("KVM_GET_MSR_INDEX_LIST", Posix.ioctl(fd, KvmIoctls.KVM_GET_MSR_INDEX_LIST, list));
                int got = Math.min(list.get(JAVA_INT, 0), n);
                msrIndexList = list.asSlice(4, 4L * got).toArray(JAVA_INT);
            }
        }
        return msrIndexList.clone();
    }

    /** The MSRs to save, probed once with {@code probe} (which keeps those a vCPU lets KVM_GET_MSRS read). */
    synchronized int[] savableMsrs(java.util.function.UnaryOperator<int[]> probe) {
        if (savableMsrs == null) {
            savableMsrs = probe.apply(msrIndexList());
        }
        return savableMsrs.clone();
    }

    /**
     * The size of this host's XSAVE buffer (KVM_CAP_XSAVE2 answers with it; 4096 without), or 0 when KVM
     * has no XSAVE state for vCPUs (then the legacy FPU state is saved instead).
     */
    int xsaveSize() {
        int size = checkExtension(KvmIoctls.KVM_CAP_XSAVE2);
        if (size > 0) {
            return Math.max(size, (int) KvmStructs.XSAVE.byteSize());
        }
        return checkExtension(KvmIoctls.KVM_CAP_XSAVE) > 0 ? (int) KvmStructs.XSAVE.byteSize() : 0;
    }

    /**
     * A digest of the CPUID KVM supports here: what a guest saw of the CPU at boot, so what a snapshot
     * depends on. Hosts with the same CPU model, microcode-visible features and KVM give the same value.
     */
    String cpuSignature() {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            for (CpuidEntry e : cpuid.entries()) {
                // The APIC ids of the host CPU that answered (leaf 1 EBX[31:24], leaves 0xb/0x1f EDX) vary
                // with the CPU the thread ran on: not part of what the guest depends on.
                int ebx = e.function() == 1 ? e.ebx() & 0x00ffffff : e.ebx();
                int edx = e.function() == 0xb || e.function() == 0x1f ? 0 : e.edx();
                sha.update(ByteBuffer.allocate(28).putInt(e.function()).putInt(e.index()).putInt(e.flags())
                        .putInt(e.eax()).putInt(ebx).putInt(e.ecx()).putInt(edx).array());
            }
            return "kvm-cpuid-" + HexFormat.of().formatHex(sha.digest(), 0, 12);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Creates a VM fd. */
    int createVm() {
        int r = Posix.ioctl(fd, KvmIoctls.KVM_CREATE_VM, 0L);
        if (r == -Errno.EINTR) {
            r = Posix.ioctl(fd, KvmIoctls.KVM_CREATE_VM, 0L);
        }
        if (r < 0) {
            throw new PosixException("KVM_CREATE_VM", -r);
        }
        return r;
    }

    @Override
    public void close() {
        Posix.close(fd);
    }
}
