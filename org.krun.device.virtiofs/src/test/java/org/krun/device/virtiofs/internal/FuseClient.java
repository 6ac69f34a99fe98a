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

    private final TestGuestMemory ram = TestGuestMemory.create(16 << 20);
    private final MockDriverQueue driver = new MockDriverQueue(ram, 64);
    private final Virtqueue queue = driver.configuredQueue();
    /** One request and one reply buffer in guest RAM, reused by every request (it is one at a time). */
    private final long requestBuffer = ram.allocate(BUFFER_SIZE, 8);
    private final long replyBuffer = ram.allocate(BUFFER_SIZE, 8);
    private final int[] descriptors = driver.reserveDescriptors(2);
    final FuseServer server;
    private long unique = 1;
    int uid;
    int gid;

    FuseClient(FuseServer server) {
        this.server = server;
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
    MockDriverQueue.Used sendRaw(List<byte[]> readable, int replyRoom) {
        byte[] request = cat(readable.toArray(byte[][]::new));
        if (request.length > BUFFER_SIZE || replyRoom > BUFFER_SIZE) {
            throw new IllegalArgumentException("request or reply larger than the client's buffers");
        }
        ram.memory().write(requestBuffer, request);
        ram.memory().fill(replyBuffer, Math.max(replyRoom, 0), (byte) 0);
        if (replyRoom > 0) {
            driver.writeDescriptor(descriptors[0], requestBuffer, request.length, MockDriverQueue.DESC_F_NEXT, descriptors[1]);
            driver.writeDescriptor(descriptors[1], replyBuffer, replyRoom, MockDriverQueue.DESC_F_WRITE, 0);
        } else {
            driver.writeDescriptor(descriptors[0], requestBuffer, request.length, 0, 0);
        }
        driver.makeAvailable(descriptors[0]);
        DescriptorChain chain = queue.pop(ram.memory());
        int len = server.handle(chain.reader(ram.memory()), chain.writer(ram.memory()), () -> false);
        queue.addUsed(ram.memory(), chain.head(), len);
        byte[] written = new byte[len];
        ram.memory().read(replyBuffer, written, 0, len);
        return new MockDriverQueue.Used(chain.head(), len, written);
    }

    Reply send(int opcode, long nodeid, byte[] args) {
        return send(opcode, nodeid, args, 1 << 20);
    }

    Reply send(int opcode, long nodeid, byte[] args, int replyRoom) {
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
        return send(FuseServer.INIT, 0, args);
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
        return send(FuseServer.LOOKUP, parent, cstr(name));
    }

    Reply mkdir(long parent, String name, int mode) {
        return send(FuseServer.MKDIR, parent, cat(le(8).putInt(mode).putInt(0).array(), cstr(name)));
    }

    Reply create(long parent, String name, int flags, int mode) {
        return send(FuseServer.CREATE, parent, cat(le(16).putInt(flags).putInt(mode).putInt(0).putInt(0).array(), cstr(name)));
    }

    /** CREATE's reply: the entry, then fuse_open_out's fh. */
    static long createdHandle(Reply r) {
        return r.body().getLong(128);
    }

    Reply open(long nodeid, int flags) {
        return send(FuseServer.OPEN, nodeid, le(8).putInt(flags).putInt(0).array());
    }

    Reply write(long nodeid, long fh, long offset, byte[] data) {
        byte[] in = le(40).putLong(fh).putLong(offset).putInt(data.length).putInt(0).putLong(0).putInt(0).putInt(0).array();
        return send(FuseServer.WRITE, nodeid, cat(in, data));
    }

    Reply read(long nodeid, long fh, long offset, int size) {
        byte[] in = le(40).putLong(fh).putLong(offset).putInt(size).putInt(0).putLong(0).putInt(0).putInt(0).array();
        return send(FuseServer.READ, nodeid, in);
    }

    Reply release(long nodeid, long fh, boolean dir) {
        return send(dir ? FuseServer.RELEASEDIR : FuseServer.RELEASE, nodeid, le(24).putLong(fh).array());
    }

    Reply readdir(long nodeid, long fh, long offset, int size, boolean plus) {
        byte[] in = le(40).putLong(fh).putLong(offset).putInt(size).array();
        return send(plus ? FuseServer.READDIRPLUS : FuseServer.READDIR, nodeid, in);
    }

    Reply forget(long nodeid, long n) {
        MockDriverQueue.Used u = sendRaw(List.of(header(FuseServer.FORGET, nodeid, 8), le(8).putLong(n).array()), 64);
        return decode(u.written());
    }

    @Override
    public void close() {
        ram.close();
    }
}
