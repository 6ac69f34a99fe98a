package org.krun.launcher;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.Configurator;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.spi.ContextAwareBase;
import org.slf4j.Logger;

/**
 * krun's logging, set up in code rather than from a logback.xml: quiet by default, warnings and errors on
 * stderr as {@code krun: LEVEL Logger: message} ({@code --log-level} raises the root level afterwards).
 * Found by logback through {@code META-INF/services}. Reading an XML configuration loads logback's Joran
 * model and the JDK's SAX parser, about 400 classes (a tenth of those a {@code krun run} loads), for these
 * five lines. A {@code -Dlogback.configurationFile} still wins: this steps aside for it.
 */
public final class LogConfigurator extends ContextAwareBase implements Configurator {
    /** What each line looks like; tests and users read the level and the logger's simple name from it. */
    static final String PATTERN = "krun: %level %logger{0}: %msg%n";

    @Override
    public ExecutionStatus configure(LoggerContext context) {
        if (System.getProperty("logback.configurationFile") != null) {
            return ExecutionStatus.INVOKE_NEXT_IF_ANY;
        }
        PatternLayoutEncoder encoder = new PatternLayoutEncoder();
        encoder.setContext(context);
        encoder.setPattern(PATTERN);
        encoder.start();
        ConsoleAppender<ILoggingEvent> stderr = new ConsoleAppender<>();
        stderr.setContext(context);
        stderr.setName("STDERR");
        stderr.setTarget("System.err");
        stderr.setEncoder(encoder);
        stderr.start();
        ch.qos.logback.classic.Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
        root.setLevel(Level.WARN);
        root.addAppender(stderr);
        return ExecutionStatus.DO_NOT_INVOKE_NEXT_IF_ANY;
    }
}
