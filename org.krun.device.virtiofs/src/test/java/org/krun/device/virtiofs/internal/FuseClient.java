package org.krun.device.virtiofs.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.List;

import org.krun.spi.memory.TestGuestMemory;
import org.krun.spi.virtio.DescriptorChain;
import org.krun.spi.virtio.MockDriverQueue;
import org.krun.spi.virtio.Virtqueue;

/**
 * The guest kernel's side of FUSE for tests: builds requests as struct fuse_in_header + arguments, sends
 * each through a real descriptor chain (MockDriverQueue) to a {@link FuseServer}, and decodes replies.
 */
final class FuseClient implements AutoCloseable {

    /** A reply: the header's error (0 or -errno), and the body after the header. */
    record Reply(int len, int error, long unique, ByteBuffer body) {
        long u64() {
            return body.getLong();
        }

        int u32() {
            return body.getInt();
        }
    }

    /** What fuse_entry_out says. */
    record Entry(long nodeid, long ino, long size, int mode, int nlink, int uid, int gid) {
    }

    /** Largest request and reply a client sends: a 1 MiB write plus headers, a 1 MiB read plus header. */
    static final int BUFFER_SIZE = (1 << 20) + 4096;

    private final TestGuestMemory ram;
    private final MockDriverQueue driver;
    private final Virtqueue queue;
    /** One request and one reply buffer in guest RAM, reused by every request (it is one at a time). */
    private final long requestBuffer;
    private final long replyBuffer;
    private final long replyCapacity;
    private final int[] descriptors;
    final FuseServer server;
    private long unique = 1;
    int uid;
    int gid;

    FuseClient(FuseServer server) {
        this(server, BUFFER_SIZE);
    }

    /** A client whose reply buffer holds {@code replyCapacity} bytes (for replies into huge guest buffers). */
    FuseClient(FuseServer server, long replyCapacity) {
        this.server = server;
        this.replyCapacity = replyCapacity;
        this.ram = TestGuestMemory.create(BUFFER_SIZE + replyCapacity + (1 << 20));
        this.driver = new MockDriverQueue(ram, 64);
        this.queue = driver.configuredQueue();
        this.requestBuffer = ram.allocate(BUFFER_SIZE, 8);
        this.replyBuffer = ram.allocate(replyCapacity, 8);
        this.descriptors = driver.reserveDescriptors(2);
    }

    /** The request bytes: struct fuse_in_header then the arguments. */
    static byte[] request(int opcode, long nodeid, long uniqueId, byte[] args) {
        return cat(le(40).putInt(40 + args.length).putInt(opcode).putLong(uniqueId).putLong(nodeid).putInt(0).putInt(0)
                .putInt(4242).putInt(0).array(), args);
    }

    static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    static byte[] cstr(String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        byte[] r = new byte[b.length + 1];
        System.arraycopy(b, 0, r, 0, b.length);
        return r;
    }

    static byte[] cat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        ByteBuffer b = ByteBuffer.allocate(n);
        for (byte[] p : parts) {
            b.put(p);
        }
        return b.array();
    }

    byte[] header(int opcode, long nodeid, int argLen) {
        return header(opcode, nodeid, 40 + argLen, unique++);
    }

    byte[] header(int opcode, long nodeid, int len, long uniqueId) {
        return le(40).putInt(len).putInt(opcode).putLong(uniqueId).putLong(nodeid).putInt(uid).putInt(gid).putInt(4242)
                .putShort((short) 0).putShort((short) 0).array();
    }

    /**
     * Sends the readable bytes (as one device-readable buffer) with a device-writable buffer of
     * {@code replyRoom} bytes (none when 0) through a real chain; returns the used length and what the
     * server wrote.
     */
    MockDriverQueue.Used sendRaw(List<byte[]> readable, long replyRoom) {
        byte[] request = cat(readable.toArray(byte[][]::new));
        if (request.length > BUFFER_SIZE || replyRoom > replyCapacity) {
            throw new IllegalArgumentException("request or reply larger than the client's buffers");
        }
        ram.memory().write(requestBuffer, request);
        if (replyRoom > 0) {
            ram.memory().fill(replyBuffer, Math.min(replyRoom, BUFFER_SIZE), (byte) 0);
            driver.writeDescriptor(descriptors[0], requestBuffer, request.length, MockDriverQueue.DESC_F_NEXT, descriptors[1]);
            driver.writeDescriptor(descriptors[1], replyBuffer, (int) replyRoom, MockDriverQueue.DESC_F_WRITE, 0);
        } else {
            driver.writeDescriptor(descriptors[0], requestBuffer, request.length, 0, 0);
        }
        driver.makeAvailable(descriptors[0]);
        DescriptorChain chain = queue.pop(ram.memory());
        int len = server.handle(chain.reader(ram.memory()), chain.writer(ram.memory()));
        queue.addUsed(ram.memory(), chain.head(), len);
        byte[] written = new byte[Math.min(len, BUFFER_SIZE)];
        ram.memory().read(replyBuffer, written, 0, written.length);
        return new MockDriverQueue.Used(chain.head(), len, written);
    }

    Reply send(int opcode, long nodeid, byte[] args) {
        return send(opcode, nodeid, args, 1 << 20);
    }

    Reply send(int opcode, long nodeid, byte[] args, long replyRoom) {
        MockDriverQueue.Used u = sendRaw(List.of(header(opcode, nodeid, args.length), args), replyRoom);
        return decode(u.written());
    }

    static Reply decode(byte[] w) {
        if (w.length < 16) {
            return null;
        }
        ByteBuffer b = ByteBuffer.wrap(w).order(ByteOrder.LITTLE_ENDIAN);
        int len = b.getInt();
        int error = b.getInt();
        long u = b.getLong();
        return new Reply(len, error, u, b.slice().order(ByteOrder.LITTLE_ENDIAN));
    }

    Reply init() {
        byte[] args = le(64).putInt(7).putInt(41).putInt(128 * 1024).putInt(0xffffffff).array();
        return send(Fuse.INIT, 0, args);
    }

    static Entry entry(Reply r) {
        ByteBuffer b = r.body();
        long nodeid = b.getLong();
        b.position(40);
        long ino = b.getLong();
        long size = b.getLong();
        b.position(40 + 60);
        int mode = b.getInt();
        int nlink = b.getInt();
        int uid = b.getInt();
        int gid = b.getInt();
        return new Entry(nodeid, ino, size, mode, nlink, uid, gid);
    }

    Reply lookup(long parent, String name) {
        return send(Fuse.LOOKUP, parent, cstr(name));
    }

    Reply mkdir(long parent, String name, int mode) {
        return send(Fuse.MKDIR, parent, cat(le(8).putInt(mode).putInt(0).array(), cstr(name)));
    }

    Reply create(long parent, String name, int flags, int mode) {
        return send(Fuse.CREATE, parent, cat(le(16).putInt(flags).putInt(mode).putInt(0).putInt(0).array(), cstr(name)));
    }

    /** CREATE's reply: the entry, then fuse_open_out's fh. */
    static long createdHandle(Reply r) {
        return r.body().getLong(128);
    }

    Reply open(long nodeid, int flags) {
        return send(Fuse.OPEN, nodeid, le(8).putInt(flags).putInt(0).array());
    }

    Reply write(long nodeid, long fh, long offset, byte[] data) {
        byte[] in = le(40).putLong(fh).putLong(offset).putInt(data.length).putInt(0).putLong(0).putInt(0).putInt(0).array();
        return send(Fuse.WRITE, nodeid, cat(in, data));
    }

    Reply read(long nodeid, long fh, long offset, int size) {
        byte[] in = le(40).putLong(fh).putLong(offset).putInt(size).putInt(0).putLong(0).putInt(0).putInt(0).array();
        return send(Fuse.READ, nodeid, in);
    }

    Reply release(long nodeid, long fh, boolean dir) {
        return send(dir ? Fuse.RELEASEDIR : Fuse.RELEASE, nodeid, le(24).putLong(fh).array());
    }

    Reply readdir(long nodeid, long fh, long offset, int size, boolean plus) {
        byte[] in = le(40).putLong(fh).putLong(offset).putInt(size).array();
        return send(plus ? Fuse.READDIRPLUS : Fuse.READDIR, nodeid, in);
    }

    /** SETLK (or SETLKW when {@code sleep}) of a byte range, or a BSD lock when {@code flock}. */
    Reply setlk(long nodeid, long fh, long owner, int type, long start, long end, boolean flock, boolean sleep) {
        return send(sleep ? Fuse.SETLKW : Fuse.SETLK, nodeid, lkIn(fh, owner, type, start, end, flock));
    }

    /** struct fuse_lk_in. */
    static byte[] lkIn(long fh, long owner, int type, long start, long end, boolean flock) {
        return le(48).putLong(fh).putLong(owner).putLong(start).putLong(end).putInt(type).putInt(0)
                .putInt(flock ? Fuse.FUSE_LK_FLOCK : 0).putInt(0).array();
    }

    Reply getlk(long nodeid, long fh, long owner, int type, long start, long end) {
        return send(Fuse.GETLK, nodeid, lkIn(fh, owner, type, start, end, false));
    }

    /** FLUSH: the guest closed a descriptor of {@code fh} in the process {@code owner} stands for. */
    Reply flush(long nodeid, long fh, long owner) {
        return send(Fuse.FLUSH, nodeid, le(24).putLong(fh).putInt(0).putInt(0).putLong(owner).array());
    }

    Reply opendir(long nodeid) {
        return send(Fuse.OPENDIR, nodeid, le(8).array());
    }

    Reply forget(long nodeid, long n) {
        MockDriverQueue.Used u = sendRaw(List.of(header(Fuse.FORGET, nodeid, 8), le(8).putLong(n).array()), 64);
        return decode(u.written());
    }

    @Override
    public void close() {
        ram.close();
    }
}
