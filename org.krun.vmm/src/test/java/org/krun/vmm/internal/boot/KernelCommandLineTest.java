package org.krun.vmm.internal.boot;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.krun.api.VmConfigException;

class KernelCommandLineTest {
    private static final long CMDLINE = 0x20000;

    private static String readLine(TestMemory t, int length) {
        byte[] b = new byte[length];
        t.memory.read(CMDLINE, b, 0, length);
        return new String(b, StandardCharsets.UTF_8);
    }

    @Test
    void argumentsAreJoinedBySpacesAndWrittenNulTerminatedAt0x20000() {
        try (TestMemory t = new TestMemory(0x30000, (byte) 0xff)) {
            KernelCommandLine c = new KernelCommandLine().add("console=hvc0").addAll(List.of("reboot=k", "quiet"));
            assertEquals("console=hvc0 reboot=k quiet", c.toString());
            assertEquals(27, c.write(t.memory));
            assertEquals("console=hvc0 reboot=k quiet", readLine(t, 27));
            assertEquals(0, t.memory.getByte(CMDLINE + 27));
        }
    }

    @Test
    void aLineOf2047BytesFits() {
        try (TestMemory t = new TestMemory(0x30000, (byte) 0xff)) {
            String arg = "x=" + "a".repeat(2045);
            assertEquals(2047, new KernelCommandLine().add(arg).write(t.memory));
            assertEquals(arg, readLine(t, 2047));
            assertEquals(0, t.memory.getByte(CMDLINE + 2047));
        }
    }

    @Test
    void aLineOf2048BytesIsRefusedBeforeAnythingIsWritten() {
        try (TestMemory t = new TestMemory(0x30000, (byte) 0xff)) {
            KernelCommandLine c = new KernelCommandLine().add("x=" + "a".repeat(1000)).add("y=" + "b".repeat(1043));
            VmConfigException e = assertThrows(VmConfigException.class, () -> c.write(t.memory));
            assertTrue(e.getMessage().contains("2048") && e.getMessage().contains("2047"), e.getMessage());
            assertEquals((byte) 0xff, t.memory.getByte(CMDLINE));
        }
    }

    @Test
    void theLimitCountsUtf8BytesNotCharacters() {
        try (TestMemory t = new TestMemory(0x30000, (byte) 0xff)) {
            KernelCommandLine c = new KernelCommandLine().add("é".repeat(1024));
            assertThrows(VmConfigException.class, () -> c.write(t.memory));
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "a\nb", "a\0b"})
    void argumentsTheKernelCannotParseAreRefused(String arg) {
        KernelCommandLine c = new KernelCommandLine();
        assertThrows(VmConfigException.class, () -> c.add(arg));
        assertTrue(c.args().isEmpty());
    }

    @Test
    void argsIsASnapshot() {
        KernelCommandLine c = new KernelCommandLine().add("a");
        List<String> args = c.args();
        c.add("b");
        assertEquals(List.of("a"), args);
        assertThrows(UnsupportedOperationException.class, () -> args.add("c"));
        assertFalse(c.args().isEmpty());
    }
}
