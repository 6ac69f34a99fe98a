package org.krun.vmm.internal.template;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TemplateKeyTest {
    @TempDir
    Path dir;

    @Test
    void samePartsGiveTheSameKey() {
        assertEquals(new TemplateKey().add("shape", "256 MiB").digest(), new TemplateKey().add("shape", "256 MiB").digest());
    }

    @Test
    void partsCannotRunIntoEachOther() {
        assertNotEquals(new TemplateKey().add("a", "bc").add("d", "").digest(), new TemplateKey().add("a", "b").add("cd", "").digest());
    }

    @Test
    void aRebuiltKernelIsANewKey() throws Exception {
        Path kernel = dir.resolve("vmlinux");
        Files.write(kernel, new byte[] {1, 2, 3});
        String before = new TemplateKey().addFile("kernel", kernel).digest();
        Files.write(kernel, new byte[] {1, 2, 4});
        assertNotEquals(before, new TemplateKey().addFile("kernel", kernel).digest());
    }

    @Test
    void aNewInitIsANewKey() {
        assertNotEquals(new TemplateKey().addDigestOf("init", new byte[] {1}).digest(),
                new TemplateKey().addDigestOf("init", new byte[] {2}).digest());
    }

    @Test
    void theDescriptionNamesEveryPart() {
        TemplateKey k = new TemplateKey().add("shape", "256 MiB").add("device 0 config", new byte[] {0x0a, (byte) 0xff});
        assertTrue(k.description().contains("format: " + TemplateKey.FORMAT + "\n"), k.description());
        assertTrue(k.description().contains("shape: 256 MiB\n"), k.description());
        assertTrue(k.description().contains("device 0 config: 0aff\n"), k.description());
        assertEquals(64, k.digest().length());
    }
}
