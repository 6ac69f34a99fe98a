package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.io.ByteArrayOutputStream;
import java.io.IOException;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;

class BootConsoleGateTest {

    @Test
    void pipesModeStderrDropsTheKernelsBootOutputUntilInitStarts() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        BootConsoleGate gate = new BootConsoleGate(false);
        ConsoleSpec spec = gate.wrap(ConsoleSpec.pipes(out, err, false));

        spec.stderr().write("Kernel panic - not syncing\n".getBytes(US_ASCII));
        spec.stderr().write('x');
        spec.stdout().write("stdout is never gated\n".getBytes(US_ASCII));
        gate.open();
        spec.stderr().write("after init\n".getBytes(US_ASCII));

        assertEquals("after init\n", err.toString(US_ASCII));
        assertEquals("stdout is never gated\n", out.toString(US_ASCII));
    }

    @Test
    void terminalModeShowsTheConsoleAsItIs() {
        ByteArrayOutputStream term = new ByteArrayOutputStream();
        ConsoleSpec spec = ConsoleSpec.terminal(term, 80, 24);
        assertSame(spec, new BootConsoleGate(false).wrap(spec));
    }

    @Test
    void withTheKernelLogAskedForNothingIsDropped() throws IOException {
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ConsoleSpec spec = new BootConsoleGate(true).wrap(ConsoleSpec.pipes(new ByteArrayOutputStream(), err, false));
        spec.stderr().write("[    0.000000] Linux version\n".getBytes(US_ASCII));
        assertEquals("[    0.000000] Linux version\n", err.toString(US_ASCII));
    }
}
