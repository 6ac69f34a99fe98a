package org.krun.device.virtiofs.internal;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import com.code_intelligence.jazzer.api.FuzzedDataProvider;

/**
 * FUSE requests made from fuzz data, as a hostile guest would send them: every opcode (and unknown ones),
 * each with its struct filled with interesting or arbitrary values, node ids and file handles the server
 * handed out earlier (so requests reach deep into the server) or made up, names that try to leave the
 * share, headers whose length lies, and now and then plain garbage.
 */
final class FuseFuzzRequests {

    /** Every opcode of enum fuse_opcode up to 52, and some beyond. */
    static final int[] OPCODES = {Fuse.LOOKUP, Fuse.FORGET, Fuse.GETATTR, Fuse.SETATTR, Fuse.READLINK, Fuse.SYMLINK,
            7, Fuse.MKNOD, Fuse.MKDIR, Fuse.UNLINK, Fuse.RMDIR, Fuse.RENAME, Fuse.LINK, Fuse.OPEN, Fuse.READ,
            Fuse.WRITE, Fuse.STATFS, Fuse.RELEASE, 19, Fuse.FSYNC, Fuse.SETXATTR, Fuse.GETXATTR, Fuse.LISTXATTR,
            Fuse.REMOVEXATTR, Fuse.FLUSH, Fuse.INIT, Fuse.OPENDIR, Fuse.READDIR, Fuse.RELEASEDIR, Fuse.FSYNCDIR,
            Fuse.GETLK, Fuse.SETLK, Fuse.SETLKW, Fuse.ACCESS, Fuse.CREATE, Fuse.INTERRUPT, 37, Fuse.DESTROY, 39, 40,
            41, Fuse.BATCH_FORGET, Fuse.FALLOCATE, Fuse.READDIRPLUS, Fuse.RENAME2, Fuse.LSEEK, Fuse.COPY_FILE_RANGE,
            Fuse.SETUPMAPPING, Fuse.REMOVEMAPPING, Fuse.SYNCFS, 51, 52, 4096};

    /** Names that try every way out of a directory, and the planted symlinks. */
    static final String[] NAMES = {"a", "b", "dir", "file", "..", ".", "a/b", "../outside", "", "abs", "rel", "dirlink",
            "outside", "secret.txt", "x".repeat(256), "user.a", "trusted.b", "security.capability", "a\u00e9"};

    /** Sizes and offsets at the edges. */
    static final long[] EDGES = {0, 1, 7, 16, 40, 4095, 4096, 65535, 65536, 131072, Fuse.MAX_READ - 16, Fuse.MAX_READ,
            Fuse.MAX_READ + 1, Integer.MAX_VALUE, 0xffffffffL, 1L << 32, Long.MAX_VALUE, -1, Long.MIN_VALUE, 1L << 40};

    /** Largest FALLOCATE and COPY_FILE_RANGE length sent: real disk space, not a bound of the server's. */
    static final long MAX_SPACE = 1 << 20;

    /** One request: its bytes (header and arguments), and whether it goes to the hiprio queue. */
    record Request(int opcode, long unique, byte[] bytes, boolean hiprio) {
    }

    private final FuzzedDataProvider data;
    /** Node ids and file handles the server handed out (the root is node 1). */
    final List<Long> nodes = new ArrayList<>(List.of(1L));
    final List<Long> handles = new ArrayList<>();
    final List<Long> uniques = new ArrayList<>();
    private long unique = 1;

    FuseFuzzRequests(FuzzedDataProvider data) {
        this.data = data;
    }

    boolean hasMore() {
        return data.remainingBytes() > 0;
    }

    /** The next request. */
    Request next() {
        int opcode = data.consumeInt(0, 15) == 0 ? data.consumeInt() : data.pickValue(OPCODES);
        long nodeid = pick(nodes);
        long u = data.consumeInt(0, 15) == 0 ? data.consumeLong() : unique++;
        uniques.add(u);
        byte[] args = data.consumeInt(0, 15) == 0 ? data.consumeBytes(data.consumeInt(0, 512)) : args(opcode);
        int len = 40 + args.length;
        if (data.consumeInt(0, 15) == 0) {
            len = data.pickValue(new int[] {0, 39, 40, len - 1, len + 1, len + 4096, -1, data.consumeInt()});
        }
        byte[] header = le(40).putInt(len).putInt(opcode).putLong(u).putLong(nodeid).putInt(data.consumeInt(0, 2000))
                .putInt(data.consumeInt(0, 2000)).putInt(4242).putInt(0).array();
        boolean hiprio = Fuse.isHighPriority(opcode) ? data.consumeInt(0, 7) != 0 : data.consumeInt(0, 15) == 0;
        return new Request(opcode, u, cat(header, args), hiprio);
    }

    /** Learns node ids and handles from a successful reply (the body after struct fuse_out_header). */
    void learn(int opcode, ByteBuffer body) {
        switch (opcode) {
            case Fuse.LOOKUP, Fuse.MKNOD, Fuse.MKDIR, Fuse.SYMLINK, Fuse.LINK -> {
                if (body.remaining() >= 8) {
                    nodes.add(body.getLong(0));
                }
            }
            case Fuse.CREATE -> {
                if (body.remaining() >= 136) {
                    nodes.add(body.getLong(0));
                    handles.add(body.getLong(128));
                }
            }
            case Fuse.OPEN, Fuse.OPENDIR -> {
                if (body.remaining() >= 8) {
                    handles.add(body.getLong(0));
                }
            }
            default -> {
            }
        }
    }

    private byte[] args(int opcode) {
        return switch (opcode) {
            case Fuse.INIT -> le(64).putInt(data.consumeInt(0, 3) == 0 ? data.consumeInt() : 7).putInt(data.consumeInt(0, 45))
                    .putInt(data.consumeInt()).putInt(data.consumeInt()).array();
            case Fuse.LOOKUP, Fuse.UNLINK, Fuse.RMDIR, Fuse.REMOVEXATTR -> name();
            case Fuse.FORGET -> le(8).putLong(count()).array();
            case Fuse.BATCH_FORGET -> {
                int n = data.consumeInt(0, 8);
                ByteBuffer b = le(8 + 16 * n).putInt(data.consumeInt(0, 3) == 0 ? data.consumeInt() : n).putInt(0);
                for (int i = 0; i < n; i++) {
                    b.putLong(pick(nodes)).putLong(count());
                }
                yield b.array();
            }
            case Fuse.GETATTR -> le(16).putInt(data.consumeInt(0, 1)).putInt(0).putLong(pick(handles)).array();
            case Fuse.SETATTR -> le(88).putInt(data.consumeInt(0, 511)).putInt(0).putLong(pick(handles)).putLong(size())
                    .putLong(data.consumeLong()).putLong(data.consumeLong()).putLong(data.consumeLong()).putLong(0)
                    .putInt(data.consumeInt()).putInt(data.consumeInt()).putInt(0).putInt(data.consumeInt())
                    .putInt(0).putInt(data.consumeInt(0, 2000)).putInt(data.consumeInt(0, 2000)).putInt(0).array();
            case Fuse.SYMLINK -> cat(name(), name());
            case Fuse.MKNOD -> cat(le(16).putInt(mode()).putInt(data.consumeInt()).putInt(022).putInt(0).array(), name());
            case Fuse.MKDIR -> cat(le(8).putInt(mode()).putInt(022).array(), name());
            case Fuse.RENAME -> cat(le(8).putLong(pick(nodes)).array(), name(), name());
            case Fuse.RENAME2 -> cat(le(16).putLong(pick(nodes)).putInt(data.consumeInt(0, 7)).putInt(0).array(), name(), name());
            case Fuse.LINK -> cat(le(8).putLong(pick(nodes)).array(), name());
            case Fuse.OPEN, Fuse.OPENDIR -> le(8).putInt(openFlags()).putInt(0).array();
            case Fuse.CREATE -> cat(le(16).putInt(openFlags()).putInt(mode()).putInt(022).putInt(0).array(), name());
            case Fuse.READ, Fuse.READDIR, Fuse.READDIRPLUS -> le(40).putLong(pick(handles)).putLong(size())
                    .putInt((int) size()).putInt(0).putLong(0).putInt(0).putInt(0).array();
            case Fuse.WRITE -> {
                byte[] payload = data.consumeBytes(data.consumeInt(0, 8192));
                int size = data.consumeInt(0, 7) == 0 ? (int) size() : payload.length;
                yield cat(le(40).putLong(pick(handles)).putLong(size()).putInt(size).putInt(0).putLong(0).putInt(0).putInt(0)
                        .array(), payload);
            }
            case Fuse.RELEASE, Fuse.RELEASEDIR -> le(24).putLong(pick(handles)).putInt(0).putInt(data.consumeInt(0, 3))
                    .putLong(data.consumeInt(0, 3)).array();
            case Fuse.FSYNC, Fuse.FSYNCDIR -> le(16).putLong(pick(handles)).putInt(data.consumeInt(0, 1)).putInt(0).array();
            case Fuse.SETXATTR -> {
                byte[] value = data.consumeBytes(data.consumeInt(0, 300));
                int size = data.consumeInt(0, 7) == 0 ? (int) size() : value.length;
                yield cat(le(8).putInt(size).putInt(data.consumeInt(0, 3)).array(), name(), value);
            }
            case Fuse.GETXATTR -> cat(le(8).putInt((int) size()).putInt(0).array(), name());
            case Fuse.LISTXATTR -> le(8).putInt((int) size()).putInt(0).array();
            case Fuse.FLUSH -> le(24).putLong(pick(handles)).putInt(0).putInt(0).putLong(data.consumeInt(0, 3)).array();
            case Fuse.GETLK, Fuse.SETLK, Fuse.SETLKW -> le(48).putLong(pick(handles)).putLong(data.consumeInt(0, 3))
                    .putLong(size()).putLong(size()).putInt(data.consumeInt(-1, 3)).putInt(0)
                    .putInt(data.consumeInt(0, 1)).putInt(0).array();
            case Fuse.ACCESS -> le(8).putInt(data.consumeInt(0, 7)).putInt(0).array();
            case Fuse.INTERRUPT -> le(8).putLong(uniques.isEmpty() ? data.consumeLong() : data.pickValue(uniques)).array();
            case Fuse.FALLOCATE -> le(32).putLong(pick(handles)).putLong(Math.floorMod(size(), 1L << 40))
                    .putLong(Math.floorMod(size(), MAX_SPACE + 1)).putInt(data.consumeInt(0, 0x7f)).putInt(0).array();
            case Fuse.LSEEK -> le(24).putLong(pick(handles)).putLong(size()).putInt(data.consumeInt(0, 4)).putInt(0).array();
            case Fuse.COPY_FILE_RANGE -> le(56).putLong(pick(handles)).putLong(size()).putLong(pick(nodes)).putLong(pick(handles))
                    .putLong(size()).putLong(Math.floorMod(size(), MAX_SPACE + 1)).putLong(0).array();
            case Fuse.SETUPMAPPING -> le(40).putLong(data.consumeBoolean() ? -1 : pick(handles)).putLong(mapOffset())
                    .putLong(mapLength()).putLong(data.consumeInt(0, 7) == 0 ? data.consumeLong() : data.consumeInt(0, 3))
                    .putLong(mapOffset()).array();
            case Fuse.REMOVEMAPPING -> {
                int n = data.consumeInt(0, 4);
                ByteBuffer b = le(4 + 16 * n).putInt(data.consumeInt(0, 7) == 0 ? data.consumeInt() : n);
                for (int i = 0; i < n; i++) {
                    b.putLong(mapOffset()).putLong(mapLength());
                }
                yield b.array();
            }
            case Fuse.STATFS, Fuse.READLINK, Fuse.DESTROY -> new byte[0];
            case Fuse.SYNCFS -> new byte[8];
            default -> data.consumeBytes(data.consumeInt(0, 128));
        };
    }

    private long pick(List<Long> known) {
        return switch (data.consumeInt(0, 7)) {
            case 0 -> data.consumeLong();
            case 1 -> data.pickValue(new long[] {0, 1, 2, -1, Long.MAX_VALUE});
            default -> known.isEmpty() ? data.consumeLong() : data.pickValue(known);
        };
    }

    private long size() {
        return data.consumeBoolean() ? data.pickValue(EDGES) : data.consumeLong(-4096, 1 << 21);
    }

    /** Window and file offsets: 2 MiB pieces of a small window mostly, else pages, edges and garbage. */
    private long mapOffset() {
        return switch (data.consumeInt(0, 3)) {
            case 0, 1 -> (long) data.consumeInt(0, 5) << 21;
            case 2 -> (long) data.consumeInt(0, 4096) << 12;
            default -> data.consumeBoolean() ? data.pickValue(EDGES) : data.consumeLong();
        };
    }

    private long mapLength() {
        return switch (data.consumeInt(0, 3)) {
            case 0, 1 -> 2L << 20;
            case 2 -> (long) data.consumeInt(1, 1024) << 12;
            default -> size();
        };
    }

    private long count() {
        return data.consumeBoolean() ? 1 : data.consumeLong();
    }

    private int mode() {
        int type = data.pickValue(new int[] {0100000, 0040000, 0120000, 0010000, 0140000, 0020000, 0060000, 0});
        return data.consumeInt(0, 3) == 0 ? data.consumeInt() : type | data.consumeInt(0, 07777);
    }

    private int openFlags() {
        return data.consumeInt(0, 3) == 0 ? data.consumeInt() : data.consumeInt(0, 2) | (data.consumeInt(0, 0x3f) << 6);
    }

    private byte[] name() {
        byte[] n = data.consumeInt(0, 3) == 0 ? data.consumeBytes(data.consumeInt(0, 300))
                : data.pickValue(NAMES).getBytes(StandardCharsets.UTF_8);
        return data.consumeInt(0, 31) == 0 ? n : cat(n, new byte[1]); // rarely without its NUL
    }

    static ByteBuffer le(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    static byte[] cat(byte[]... parts) {
        return FuseClient.cat(parts);
    }
}
