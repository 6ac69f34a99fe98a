package org.krun.vmm.internal.initramfs;

import java.lang.System.Logger.Level;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.FileVisitResult;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.SimpleFileVisitor;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.krun.api.VmConfigException;

/**
 * The guest's initramfs: the user's own initrd (if any), then a newc archive of the root directory (if
 * any) with krun's init and its configuration on top, under {@code /krun}. Nothing is written to the host:
 * the archive is planned from a directory listing, sized, and written straight into guest memory.
 */
public final class Initramfs {
    private static final System.Logger LOG = System.getLogger(Initramfs.class.getName());

    /** Where krun's files live in the guest. */
    public static final String INIT_PATH = "/krun/init";
    public static final String CONFIG_PATH = "/krun/config.json";
    /** Present instead of the configuration in a templated VM: the init reads it from the VMM after its template point. */
    public static final String TEMPLATE_MARKER_PATH = "/krun/template";

    private final Optional<Path> userInitrd;
    private final long userInitrdSize;
    private final List<CpioEntry> entries;
    private final long archiveSize;

    private Initramfs(Optional<Path> userInitrd, long userInitrdSize, List<CpioEntry> entries) {
        this.userInitrd = userInitrd;
        this.userInitrdSize = userInitrdSize;
        this.entries = entries;
        this.archiveSize = CpioWriter.size(entries);
    }

    /**
     * Lists what the initramfs will hold.
     *
     * @throws VmConfigException if the root or initrd cannot be read
     */
    /** With {@code config} null, the archive holds the template marker instead (docs/templates.md). */
    public static Initramfs plan(Optional<Path> root, Optional<Path> userInitrd, byte[] init, byte[] config) {
        List<CpioEntry> entries = new ArrayList<>();
        if (root.isPresent()) {
            listTree(root.get(), entries);
        }
        long now = System.currentTimeMillis() / 1000;
        entries.add(CpioEntry.directory("dev", 0755, now));
        entries.add(CpioEntry.node("dev/console", CpioEntry.S_IFCHR | 0600, now, 5, 1));
        entries.add(CpioEntry.directory("krun", 0755, now));
        entries.add(CpioEntry.file(INIT_PATH.substring(1), 0755, now, init));
        if (config != null) {
            entries.add(CpioEntry.file(CONFIG_PATH.substring(1), 0644, now, config));
        } else {
            entries.add(CpioEntry.file(TEMPLATE_MARKER_PATH.substring(1), 0644, now, new byte[0]));
        }
        long initrdSize = 0;
        if (userInitrd.isPresent()) {
            try {
                initrdSize = Files.size(userInitrd.get());
            } catch (IOException e) {
                throw new VmConfigException("cannot read initrd " + userInitrd.get() + ": " + e.getMessage(), e);
            }
        }
        return new Initramfs(userInitrd, initrdSize, entries);
    }

    private static void listTree(Path rootGiven, List<CpioEntry> out) {
        try {
            Path root = rootGiven.toRealPath(); // the root itself may be a symlink to the tree
            Files.walkFileTree(root, new SimpleFileVisitor<>() {
                @Override
                public FileVisitResult preVisitDirectory(Path dir, BasicFileAttributes attrs) throws IOException {
                    if (!dir.equals(root)) {
                        add(root, dir, out);
                    }
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFile(Path file, BasicFileAttributes attrs) throws IOException {
                    add(root, file, out);
                    return FileVisitResult.CONTINUE;
                }

                @Override
                public FileVisitResult visitFileFailed(Path file, IOException e) throws IOException {
                    throw e;
                }
            });
        } catch (IOException e) {
            throw new VmConfigException("cannot read root directory " + rootGiven + ": " + e.getMessage(), e);
        }
    }

    private static void add(Path root, Path p, List<CpioEntry> out) throws IOException {
        String name = root.relativize(p).toString();
        Map<String, Object> a = Files.readAttributes(p, "unix:mode,rdev,size,lastModifiedTime", LinkOption.NOFOLLOW_LINKS);
        int mode = (Integer) a.get("mode");
        long mtime = ((FileTime) a.get("lastModifiedTime")).toMillis() / 1000;
        int perm = mode & 07777;
        switch (mode & CpioEntry.S_IFMT) {
            case CpioEntry.S_IFDIR -> out.add(CpioEntry.directory(name, perm, mtime));
            case CpioEntry.S_IFREG -> {
                if (!Files.isReadable(p)) {
                    throw new IOException(p + " is not readable");
                }
                out.add(CpioEntry.hostFile(name, perm, mtime, p, (Long) a.get("size")));
            }
            case CpioEntry.S_IFLNK -> out.add(CpioEntry.symlink(name, mtime,
                    Files.readSymbolicLink(p).toString().getBytes(StandardCharsets.UTF_8)));
            case CpioEntry.S_IFCHR, CpioEntry.S_IFBLK -> {
                long rdev = (Long) a.get("rdev");
                int major = (int) (((rdev >>> 8) & 0xfff) | ((rdev >>> 32) & ~0xfffL));
                int minor = (int) ((rdev & 0xff) | ((rdev >>> 12) & ~0xffL));
                out.add(CpioEntry.node(name, mode, mtime, major, minor));
            }
            case CpioEntry.S_IFIFO -> out.add(CpioEntry.node(name, mode, mtime, 0, 0));
            default -> LOG.log(Level.DEBUG, () -> "initramfs: skipping " + p + " (sockets do not survive archiving)");
        }
    }

    /** Bytes the initramfs occupies in guest memory. */
    public long size() {
        return userInitrdSize == 0 ? archiveSize : CpioWriter.pad4(userInitrdSize) + archiveSize;
    }

    /** Number of archive members krun writes (excluding the user's initrd). */
    public int memberCount() {
        return entries.size();
    }

    /** Writes the whole initramfs into {@code out} (at least {@link #size()} bytes, positioned at a 4-byte boundary). */
    public void writeTo(ByteBuffer out) {
        try {
            if (userInitrd.isPresent()) {
                try (FileChannel ch = FileChannel.open(userInitrd.get(), StandardOpenOption.READ)) {
                    ByteBuffer window = out.slice(out.position(), (int) userInitrdSize);
                    long pos = 0;
                    while (window.hasRemaining()) {
                        int n = ch.read(window, pos);
                        if (n < 0) {
                            throw new IOException("initrd shrank while loading");
                        }
                        pos += n;
                    }
                }
                out.position(out.position() + (int) userInitrdSize);
                for (long i = userInitrdSize; i < CpioWriter.pad4(userInitrdSize); i++) {
                    out.put((byte) 0); // the unpacker skips only NULs between archives
                }
            }
            CpioWriter.write(entries, out);
        } catch (IOException e) {
            throw new VmConfigException("cannot build the initramfs: " + e.getMessage(), e);
        }
    }
}
