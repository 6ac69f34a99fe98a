package org.krun.vmm.internal.template;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/**
 * What a template depends on, as a SHA-256 digest: everything the guest kernel saw or ran before the init's
 * template point. Parts are added by name, each length-prefixed, so no two different lists of parts share a
 * digest. Bump {@link #FORMAT} when the meaning of a part or the template protocol changes.
 */
public final class TemplateKey {
    /** The template protocol and key layout; part of every key. */
    public static final String FORMAT = "krun-template-1";

    private final MessageDigest digest = sha256();
    private final StringBuilder description = new StringBuilder();

    public TemplateKey() {
        add("format", FORMAT);
    }

    /** Adds a named part. */
    public TemplateKey add(String name, String value) {
        return add(name, value.getBytes(StandardCharsets.UTF_8), value);
    }

    /** Adds a named binary part (e.g. a device's config space). */
    public TemplateKey add(String name, byte[] value) {
        return add(name, value, HexFormat.of().formatHex(value));
    }

    /** Adds a file by the digest of its contents (the kernel, the init): a new build is a new key. */
    public TemplateKey addFile(String name, Path file) throws IOException {
        return add(name, digestOf(file));
    }

    /** The SHA-256 of a file's contents, as 64 hex digits. */
    static String digestOf(Path file) throws IOException {
        MessageDigest d = sha256();
        byte[] buf = new byte[1 << 16];
        try (InputStream in = Files.newInputStream(file)) {
            for (int n; (n = in.read(buf)) > 0;) {
                d.update(buf, 0, n);
            }
        }
        return HexFormat.of().formatHex(d.digest());
    }

    /** The SHA-256 of bytes, as 64 hex digits. */
    static String digestOf(byte[] bytes) {
        return HexFormat.of().formatHex(sha256().digest(bytes));
    }

    /** Adds bytes by their digest (the init binary inside the bundle). */
    public TemplateKey addDigestOf(String name, byte[] contents) {
        return add(name, HexFormat.of().formatHex(sha256().digest(contents)));
    }

    private TemplateKey add(String name, byte[] value, String shown) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        digest.update(lengthOf(n.length));
        digest.update(n);
        digest.update(lengthOf(value.length));
        digest.update(value);
        description.append(name).append(": ").append(shown).append('\n');
        return this;
    }

    /** The key: 64 hex digits. The key cannot be added to afterwards. */
    public String digest() {
        return HexFormat.of().formatHex(digest.digest());
    }

    /** The parts as lines of {@code name: value}, kept beside a template to say what it is. */
    public String description() {
        return description.toString();
    }

    private static byte[] lengthOf(int n) {
        return new byte[] {(byte) (n >>> 24), (byte) (n >>> 16), (byte) (n >>> 8), (byte) n};
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("SHA-256 is missing from this JVM", e);
        }
    }
}
