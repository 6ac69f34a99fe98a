package org.krun.hv.kvm.internal;

/** ioctl request numbers as the kernel's asm-generic/ioctl.h builds them. */
final class Ioctl {
    private static final int NRSHIFT = 0;
    private static final int TYPESHIFT = 8;
    private static final int SIZESHIFT = 16;
    private static final int DIRSHIFT = 30;
    private static final int NONE = 0;
    private static final int WRITE = 1;
    private static final int READ = 2;

    private Ioctl() {
    }

    static long ioc(int dir, int type, int nr, long size) {
        if (size < 0 || size >= (1 << 14)) {
            throw new IllegalArgumentException("ioctl argument size " + size + " does not fit");
        }
        return ((long) dir << DIRSHIFT) | (size << SIZESHIFT) | ((long) type << TYPESHIFT) | ((long) nr << NRSHIFT);
    }

    static long io(int type, int nr) {
        return ioc(NONE, type, nr, 0);
    }

    static long ior(int type, int nr, long size) {
        return ioc(READ, type, nr, size);
    }

    static long iow(int type, int nr, long size) {
        return ioc(WRITE, type, nr, size);
    }

    static long iowr(int type, int nr, long size) {
        return ioc(READ | WRITE, type, nr, size);
    }
}
