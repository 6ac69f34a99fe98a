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

    private final TestGuestMemory ram = TestGuestMemory.create(64 << 20);
    private final MockDriverQueue driver = new MockDriverQueue(ram, 64);
    private final Virtqueue queue = driver.configuredQueue();
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

    /** Sends raw readable bytes with a reply buffer of {@code replyRoom} bytes; returns the used length and reply bytes. */
    MockDriverQueue.Used sendRaw(List<byte[]> readable, int replyRoom) {
        driver.addChain(readable, replyRoom == 0 ? List.of() : List.of(replyRoom));
        DescriptorChain chain = queue.pop(ram.memory());
        int len = server.handle(chain.reader(ram.memory()), chain.writer(ram.memory()), () -> false);
        queue.addUsed(ram.memory(), chain.head(), len);
        List<MockDriverQueue.Used> used = driver.usedEntries();
        return used.get(used.size() - 1);
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
