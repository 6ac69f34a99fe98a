package org.krun.cli.internal;

import java.io.PrintWriter;

import org.krun.api.Krun;
import org.krun.api.KrunException;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** The {@code krun} command and its global options. */
@Command(name = "krun", mixinStandardHelpOptions = true, version = "krun 0.1.0",
        description = "Runs a command in a lightweight KVM virtual machine (a Java libkrun).",
        subcommands = {RunCommand.class, org.krun.cli.internal.oci.OciCommand.class, ProfilesCommand.class, AssembleCommand.class, TemplateCommand.class, CommandLine.HelpCommand.class},
        footer = {"", "Run 'krun run --help' for the run command's options."})
final class KrunCli implements Runnable {

    @Option(names = "--profile", paramLabel = "NAME",
            description = "Bundle profile to start (default: default; see 'krun profiles'); read by the launcher.")
    String profile;

    @Option(names = "--log-level", paramLabel = "LEVEL",
            description = "Log level: error, warn (default), info, debug, trace; read by the launcher.")
    String logLevel;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public void run() {
        throw new CommandLine.ParameterException(spec.commandLine(), "missing a command");
    }

    /** Runs {@code args}; returns the process exit status. Every error is one line on stderr. */
    static int execute(Krun krun, String[] args, PrintWriter out, PrintWriter err) {
        CommandLine cl = new CommandLine(new KrunCli(), new Factory(krun));
        cl.setOut(out);
        cl.setErr(err);
        cl.setStopAtPositional(true);
        cl.getSubcommands().get("run").setStopAtPositional(true);
        cl.setParameterExceptionHandler((e, a) -> {
            String which = e.getCommandLine().getCommandName().equals("krun") ? "krun --help"
                    : "krun " + e.getCommandLine().getCommandName() + " --help";
            err.println("krun: " + e.getMessage() + " (see '" + which + "')");
            err.flush();
            return 2;
        });
        cl.setExecutionExceptionHandler((e, c, r) -> {
            err.println("krun: " + message(e));
            err.flush();
            return 1;
        });
        return cl.execute(args);
    }

    static String message(Throwable e) {
        if (e instanceof KrunException && e.getMessage() != null) {
            return e.getMessage();
        }
        return e.getMessage() == null ? e.toString() : e.getMessage();
    }

    /** Gives subcommands the Krun service. */
    private record Factory(Krun krun) implements CommandLine.IFactory {
        @Override
        public <K> K create(Class<K> cls) throws Exception {
            if (cls == RunCommand.class) {
                return cls.cast(new RunCommand(krun));
            }
            if (cls == org.krun.cli.internal.oci.OciCommand.class) {
                return cls.cast(new org.krun.cli.internal.oci.OciCommand(krun));
            }
            return CommandLine.defaultFactory().create(cls);
        }
    }
}
