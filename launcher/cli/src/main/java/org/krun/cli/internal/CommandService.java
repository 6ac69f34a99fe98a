package org.krun.cli.internal;

import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.OutputStreamWriter;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.util.function.Function;

import org.krun.api.Krun;
import org.osgi.service.component.annotations.Component;
import org.osgi.service.component.annotations.Reference;

/**
 * The command line as a service the launcher calls: a {@code Function<String[], Integer>} (plain JDK
 * types, so the launcher outside the framework shares them) with {@code krun.command=main}.
 */
@Component(service = Function.class, property = "krun.command=main")
public final class CommandService implements Function<String[], Integer> {

    @Reference
    private Krun krun;

    @Override
    public Integer apply(String[] args) {
        PrintWriter out = new PrintWriter(new OutputStreamWriter(new FileOutputStream(FileDescriptor.out), StandardCharsets.UTF_8), true);
        PrintWriter err = new PrintWriter(new OutputStreamWriter(new FileOutputStream(FileDescriptor.err), StandardCharsets.UTF_8), true);
        return KrunCli.execute(krun, args, out, err);
    }
}
