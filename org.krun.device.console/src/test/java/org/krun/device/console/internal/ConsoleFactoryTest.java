package org.krun.device.console.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Map;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;
import org.krun.api.GenericDeviceSpec;
import org.krun.api.VmConfigException;

class ConsoleFactoryTest {

    private final ConsoleFactory factory = new ConsoleFactory();

    @Test
    void servesTheConsoleType() {
        assertEquals(ConsoleSpec.TYPE, factory.type());
    }

    @Test
    void createsAConsoleForAConsoleSpec() {
        assertInstanceOf(VirtioConsole.class, factory.create(ConsoleSpec.discard()));
    }

    @Test
    void refusesOtherSpecsWithAConfigError() {
        assertThrows(VmConfigException.class, () -> factory.create(new GenericDeviceSpec("console", Map.of())));
    }
}
