package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.VmConfig;

import picocli.CommandLine;

/** How {@code krun run}'s options become a {@link VmConfig} (no VM is created). */
class RunCommandTest {

    private static VmConfig parse(String... args) {
        RunCommand run = new RunCommand(null);
        new CommandLine(run).parseArgs(args);
        return run.config(ConsoleSpec.discard(), false);
    }

    @Test
    void defaultDevicesAreOnUnlessTurnedOff() {
        assertTrue(parse("--kernel", "/k", "--root", "/r", "--", "/bin/true").defaultDevices());
        assertFalse(parse("--no-default-devices", "--kernel", "/k", "--root", "/r", "--", "/bin/true").defaultDevices());
    }
}
