package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import org.junit.jupiter.api.Test;

/** The reason a guest gives that stopped without a status, read from its kernel's serial output. */
class KernelLogTest {

    private static byte[] bytes(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    @Test
    void aGarbageInitrdIsNamedByTheUnpackingFailureBeforeThePanic() throws IOException {
        // krun's kernel with --initrd of random bytes, as it wrote to the serial console (--kernel-log)
        byte[] log;
        try (InputStream in = KernelLogTest.class.getResourceAsStream("garbage-initrd-kernel-log.txt")) {
            log = in.readAllBytes();
        }
        assertEquals("the guest's init did not start: guest kernel panic: VFS: Unable to mount root fs on "
                + "unknown-block(0,0) (after: Initramfs unpacking failed: invalid magic at start of compressed archive)",
                KernelLog.stopReason(log, "reboot", false));
    }

    @Test
    void anInitThatDiesPanicsTheKernel() {
        byte[] log = bytes("[    3.100000] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n"
                + "CPU: 0 UID: 0 PID: 1 Comm: init Not tainted 6.12.118 #1\nCall Trace:\n <TASK>\n"
                + "---[ end Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b ]---\n"
                + "reboot: Restarting system\n");
        assertEquals("guest kernel panic: Attempted to kill init! exitcode=0x0000000b",
                KernelLog.stopReason(log, "reboot", true));
    }

    @Test
    void anInitTheKernelCannotExecuteIsNamed() {
        byte[] log = bytes("Failed to execute /krun/init (error -8)\n"
                + "Kernel panic - not syncing: No working init found.  Try passing init= option to kernel.\n");
        assertEquals("the guest's init did not start: guest kernel panic: No working init found.  Try passing init= "
                + "option to kernel. (after: Failed to execute /krun/init (error -8))", KernelLog.stopReason(log, "reboot", false));
    }

    @Test
    void withoutAPanicTheLastKernelMessageIsGiven() {
        assertEquals("guest stopped (reboot) without reporting an exit status (last kernel message: something broke)",
                KernelLog.stopReason(bytes("Warning: unable to open an initial console.\nsomething broke\nreboot: Restarting system\n"),
                        "reboot", true));
        assertEquals("guest stopped (triple fault) without reporting an exit status",
                KernelLog.stopReason(new byte[0], "triple fault", true));
    }

    @Test
    void aLineCutByTheFullTailIsNotQuoted() {
        byte[] full = new byte[KernelLog.TAIL_BYTES];
        byte[] text = bytes("ut-short line\nsomething broke\n");
        java.util.Arrays.fill(full, (byte) 'x');
        System.arraycopy(text, 0, full, full.length - text.length, text.length);
        assertEquals("guest stopped (reboot) without reporting an exit status (last kernel message: something broke)",
                KernelLog.stopReason(full, "reboot", true));
    }
}
