package org.krun.launcher;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.Configurator.ExecutionStatus;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.LoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import java.nio.charset.StandardCharsets;
import java.util.ServiceLoader;

import org.junit.jupiter.api.Test;
import org.slf4j.Logger;

/** krun's logging set-up in code: the lines it writes to stderr, its default level, and how logback finds it. */
@SuppressWarnings("unchecked") // the root logger's appender, of the type the configurator made
class LogConfiguratorTest {

    /** The line the root logger's stderr appender writes for {@code message} at {@code level} from {@code logger}. */
    private static String line(LoggerContext context, String logger, Level level, String message) {
        ConsoleAppender<ILoggingEvent> stderr = (ConsoleAppender<ILoggingEvent>) context.getLogger(Logger.ROOT_LOGGER_NAME)
                .getAppender("STDERR");
        LoggingEvent event = new LoggingEvent(Logger.class.getName(), context.getLogger(logger), level, message, null, null);
        return new String(stderr.getEncoder().encode(event), StandardCharsets.UTF_8);
    }

    @Test
    void warningsAndErrorsGoToStderrWithTheLoggersSimpleName() {
        LoggerContext context = new LoggerContext();
        assertEquals(ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY, new LogConfigurator().configure(context));
        ConsoleAppender<ILoggingEvent> stderr = (ConsoleAppender<ILoggingEvent>) context.getLogger(Logger.ROOT_LOGGER_NAME)
                .getAppender("STDERR");
        assertEquals("System.err", stderr.getTarget());
        assertTrue(stderr.isStarted());
        Logger machine = context.getLogger("org.krun.vmm.internal.Machine");
        assertFalse(machine.isInfoEnabled(), "quiet by default");
        assertTrue(machine.isWarnEnabled());
        assertEquals("krun: WARN Machine: vm vm1: a warning" + System.lineSeparator(),
                line(context, "org.krun.vmm.internal.Machine", Level.WARN, "vm vm1: a warning"));
        assertEquals("krun: ERROR RunCommand: an error" + System.lineSeparator(),
                line(context, "org.krun.cli.internal.RunCommand", Level.ERROR, "an error"));
        context.stop();
    }

    @Test
    void aRaisedRootLevelShowsDebugLines() {
        LoggerContext context = new LoggerContext();
        new LogConfigurator().configure(context);
        context.getLogger(Logger.ROOT_LOGGER_NAME).setLevel(Level.DEBUG); // what --log-level debug does
        assertTrue(context.getLogger("org.krun.vmm.internal.Machine").isDebugEnabled());
        assertEquals("krun: DEBUG Machine: vm vm1: template here" + System.lineSeparator(),
                line(context, "org.krun.vmm.internal.Machine", Level.DEBUG, "vm vm1: template here"));
        context.stop();
    }

    @Test
    void anExplicitConfigurationFileWins() {
        LoggerContext context = new LoggerContext();
        System.setProperty("logback.configurationFile", "elsewhere.xml");
        try {
            assertEquals(ExecutionStatus.INVOKE_NEXT_IF_ANY, new LogConfigurator().configure(context));
        } finally {
            System.clearProperty("logback.configurationFile");
        }
        assertFalse(context.getLogger(Logger.ROOT_LOGGER_NAME).iteratorForAppenders().hasNext(),
                "nothing set up: " + context.getLogger(Logger.ROOT_LOGGER_NAME));
    }

    @Test
    void logbackFindsItAsAService() {
        assertTrue(ServiceLoader.load(Configurator.class, LogConfigurator.class.getClassLoader()).stream()
                .anyMatch(p -> p.type() == LogConfigurator.class), "META-INF/services names LogConfigurator");
    }
}
