package org.krun.hv.kvm.internal;

import java.nio.file.Files;
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
