package org.krun.device.net.internal;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_SHORT;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;

import org.krun.api.VmConfigException;
import org.krun.posix.Errno;
import org.krun.posix.Posix;

/**
 * A TAP device of the host (linux/if_tun.h), opened with virtio-net headers ({@code IFF_VNET_HDR}, 12
 * bytes): the guest's frames and their offload requests go to the host's stack as they are, and the
 * offloads the driver accepted for its own receive side are switched on with {@code TUNSETOFFLOAD}. Which
 * offloads the host's kernel takes is probed when the device opens.
 *
 * <p>Bounds: one receive buffer for the largest frame with its header; nothing is held for sending (a TAP
 * takes or refuses a whole frame).
 */
final class TapBackend implements Backend {

    /** linux/if_tun.h ioctls: _IOW('T', n, int). */
    static final long TUNSETIFF = 0x400454caL;
    static final long TUNSETOFFLOAD = 0x400454d0L;
    static final long TUNSETVNETHDRSZ = 0x400454d8L;
    static final short IFF_TAP = 0x0002;
    static final short IFF_NO_PI = 0x1000;
    static final short IFF_VNET_HDR = 0x4000;
    static final int TUN_F_CSUM = 0x01;
    static final int TUN_F_TSO4 = 0x02;
    static final int TUN_F_TSO6 = 0x04;
    static final int TUN_F_TSO_ECN = 0x08;
    static final int TUN_F_UFO = 0x10;
    /** struct ifreq: char ifr_name[16], then a 24-byte union whose first member here is short ifr_flags. */
    static final int IFREQ_SIZE = 40;
    static final int IFNAMSIZ = 16;

    private final int fd;
    private final String name;
    private final long offloads;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment rx;
    private int frameLength = -1;
    private long droppedShort;
    private long droppedDown;
    private long droppedInvalid;
    private boolean closed;

    private TapBackend(int fd, String name, long offloads) {
        this.fd = fd;
        this.name = name;
        this.offloads = offloads;
        this.rx = arena.allocate(VnetHeader.SIZE + VnetHeader.MAX_FRAME, 64);
    }

    /**
     * Attaches to TAP device {@code name}, or makes it (a device krun makes goes when the VM ends); with
     * {@code offloads}, probes which the kernel takes. One-line errors for what the user can fix.
     */
    static TapBackend open(String name, boolean offloads) {
        int fd = Posix.open("/dev/net/tun", Posix.O_RDWR | Posix.O_NONBLOCK | Posix.O_CLOEXEC);
        if (fd < 0) {
            throw new VmConfigException("tap " + name + ": cannot open /dev/net/tun: " + Errno.name(-fd)
                    + (fd == -Errno.ENOENT ? " (the host has no TUN/TAP support: modprobe tun)" : ""));
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment ifr = a.allocate(IFREQ_SIZE, 8);
            byte[] n = name.getBytes(StandardCharsets.US_ASCII);
            if (n.length >= IFNAMSIZ) {
                throw new VmConfigException("tap " + name + ": the name is longer than " + (IFNAMSIZ - 1) + " characters");
            }
            MemorySegment.copy(n, 0, ifr, JAVA_BYTE, 0, n.length);
            ifr.set(JAVA_SHORT, IFNAMSIZ, (short) (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR));
            int r = Posix.ioctl(fd, TUNSETIFF, ifr);
            if (r < 0) {
                throw new VmConfigException("tap " + name + ": " + switch (-r) {
                    case Errno.EPERM, Errno.EACCES -> "making or attaching to a TAP device needs CAP_NET_ADMIN (run krun as root, "
                            + "or make the device for your user first: ip tuntap add " + name + " mode tap user $USER vnet_hdr)";
                    case Errno.EBUSY -> "the device is in use by another program";
                    case Errno.EINVAL -> "an interface of that name exists and is not a TAP device that takes virtio-net headers";
                    default -> "TUNSETIFF: " + Errno.name(-r);
                });
            }
            MemorySegment size = a.allocateFrom(JAVA_INT, VnetHeader.SIZE);
            r = Posix.ioctl(fd, TUNSETVNETHDRSZ, size);
            if (r < 0) {
                throw new VmConfigException("tap " + name + ": TUNSETVNETHDRSZ: " + Errno.name(-r));
            }
            long features = offloads ? probeOffloads(fd) : 0;
            Posix.ioctl(fd, TUNSETOFFLOAD, 0L); // nothing for the guest until its driver says what it takes
            return new TapBackend(fd, name, features);
        } catch (RuntimeException e) {
            Posix.close(fd);
            throw e;
        }
    }

    /** The virtio-net offloads the host's TAP takes: checksum and TSO always, ECN and UFO where it allows. */
    private static long probeOffloads(int fd) {
        long f = 0;
        if (Posix.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) < 0) {
            if (Posix.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM) < 0) {
                return 0;
            }
            return NetFeatures.CSUM | NetFeatures.GUEST_CSUM;
        }
        f |= NetFeatures.CSUM | NetFeatures.GUEST_CSUM | NetFeatures.HOST_TSO4 | NetFeatures.HOST_TSO6
                | NetFeatures.GUEST_TSO4 | NetFeatures.GUEST_TSO6;
        if (Posix.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN) == 0) {
            f |= NetFeatures.HOST_ECN | NetFeatures.GUEST_ECN;
        }
        if (Posix.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_UFO) == 0) {
            f |= NetFeatures.HOST_UFO | NetFeatures.GUEST_UFO;
        }
        return f;
    }

    /** The TUN_F_* flags for what the driver accepted to receive. */
    static int tunOffloads(long features) {
        int t = 0;
        if ((features & NetFeatures.GUEST_CSUM) != 0) {
            t |= TUN_F_CSUM;
            if ((features & NetFeatures.GUEST_TSO4) != 0) {
                t |= TUN_F_TSO4;
            }
            if ((features & NetFeatures.GUEST_TSO6) != 0) {
                t |= TUN_F_TSO6;
            }
            if ((features & NetFeatures.GUEST_ECN) != 0 && (t & (TUN_F_TSO4 | TUN_F_TSO6)) != 0) {
                t |= TUN_F_TSO_ECN;
            }
            if ((features & NetFeatures.GUEST_UFO) != 0) {
                t |= TUN_F_UFO;
            }
        }
        return t;
    }

    @Override
    public int fd() {
        return fd;
    }

    @Override
    public boolean vnetHeader() {
        return true;
    }

    @Override
    public long offloads() {
        return offloads;
    }

    @Override
    public void negotiated(long features) {
        int r = Posix.ioctl(fd, TUNSETOFFLOAD, tunOffloads(features & offloads));
        if (r < 0) {
            Posix.ioctl(fd, TUNSETOFFLOAD, 0L);
        }
    }

    @Override
    public boolean send(MemorySegment buf, long offset, int length) {
        long n = Posix.write(fd, buf.asSlice(offset, length), length);
        if (n >= 0) {
            return true;
        }
        int errno = (int) -n;
        return switch (errno) {
            case Errno.EAGAIN -> false;
            case Errno.EIO -> {
                droppedDown++; // the host's side of the device is down: frames go nowhere, as on an unplugged wire
                yield true;
            }
            case Errno.EINVAL, Errno.EFAULT, Errno.ENOMEM, Errno.ENOBUFS -> {
                droppedInvalid++; // the host's stack refused the frame or its header
                yield true;
            }
            default -> throw new PeerException("tap " + name + ": write: " + Errno.name(errno));
        };
    }

    @Override
    public int receive() {
        if (frameLength >= 0) {
            return frameLength;
        }
        while (true) {
            long n = Posix.read(fd, rx, rx.byteSize());
            if (n == -Errno.EAGAIN) {
                return -1;
            }
            if (n < 0) {
                throw new PeerException("tap " + name + ": read: " + Errno.name((int) -n));
            }
            if (n < VnetHeader.SIZE + VnetHeader.ETH_HLEN) {
                droppedShort++;
                continue;
            }
            frameLength = (int) n;
            return frameLength;
        }
    }

    @Override
    public MemorySegment frameBuffer() {
        return rx;
    }

    @Override
    public long frameOffset() {
        return 0;
    }

    @Override
    public void consumed() {
        frameLength = -1;
    }

    @Override
    public String dropped() {
        if (droppedShort + droppedDown + droppedInvalid == 0) {
            return null;
        }
        String s = "tap " + name + ": dropped " + droppedInvalid + " frames the host refused, " + droppedDown
                + " while its side was down, " + droppedShort + " short ones from it";
        droppedShort = droppedDown = droppedInvalid = 0;
        return s;
    }

    @Override
    public void close() {
        if (!closed) {
            closed = true;
            Posix.close(fd);
            arena.close();
        }
    }

    @Override
    public String toString() {
        return "tap " + name;
    }
}
